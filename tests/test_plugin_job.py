"""The plug-in's event loop and error mapping (nsgimp/job.py) against a scripted fake client.

As krita-ai-diffusion's tests/mock/client.py does for its UI: the fake plays back a script
of protocol events (or raises), and a recording view stands in for GIMP's progress bar
and the preview layer.  The real daemon, the real client and real GIMP meet in
tests/test_gimp_plugin.py.
"""
from __future__ import annotations

import sys
from pathlib import Path

import pytest
from fake_client import FakeClient

from neural_style.protocol import (
    Accepted,
    ClientConfig,
    DaemonError,
    DaemonHandle,
    DaemonStartFailed,
    DaemonUnavailable,
    Heartbeat,
    ImageData,
    Loss,
    NoDaemon,
    Pong,
    Progress,
    Result,
)

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "plugin" / "neural_style_gimp"))
from nsgimp import job
from nsgimp import settings as S

PIXEL = ImageData.raw(bytes(3), 1, 1, 3)
LIMITS = {"max_iterations": 5000, "max_size": 2048, "max_styles": 8, "max_pixels": 25_000_000}


class RecordingView:
    def __init__(self, on_paint=None):
        self.shown, self.painted, self.images, self.on_paint = [], [], [], on_paint

    def show(self, text, fraction):
        self.shown.append((text, fraction))

    def paint(self, image, final):
        self.painted.append(final)
        self.images.append(image)
        if self.on_paint:
            self.on_paint()

    @property
    def texts(self):
        return [t for t, _ in self.shown]


def progress(i, n, elapsed, image=PIXEL, **kw):
    return Progress("j", i, n, Loss(total=123456.0), elapsed, image, **kw)


def settings(tmp_path, **kw):
    style = tmp_path / "starry.png"
    style.write_bytes(b"\x89PNG\r\n\x1a\n")
    return S.Settings(style=str(style), **kw)


def connection(client):
    return job.Connection(client, "tcp://127.0.0.1:5570", started=False)


def test_progress_queue_previews_and_result(tmp_path):
    result = Result("j", PIXEL, Loss(), 100, 5.0)
    client = FakeClient([Accepted("j", 2), Heartbeat("j", "queued", 1), Heartbeat("j", "running", 0),
                         progress(10, 100, 3.0), Heartbeat("j", "running", 0), progress(20, 100, 4.0, None), result])
    view = RecordingView()
    st = settings(tmp_path, iterations=100)
    assert job.run_job(connection(client), st, PIXEL, [PIXEL], view) is result
    assert view.texts == ["Neural Style: sending the images…", "Neural Style: queued behind 2 jobs",
                          "Neural Style: queued behind 1 job", "Neural Style: starting…",
                          "Neural Style: iteration 10/100", "Neural Style: iteration 20/100 · about 8 s left"]
    assert view.shown[-1][1] == 0.2 and view.painted == [False]  # the second report had no preview
    assert "loss" not in " ".join(view.texts).lower() and "1.23e" not in " ".join(view.texts)
    request = client.requests[0]
    assert request["params"] == st.params() and request["heartbeats"] and request["style_blend"] is None
    assert not client.cancelled


@pytest.mark.parametrize("error, words, argument", [
    (DaemonError("too_large", "styles[1] is 9000x9000 = 81000000 pixels", "j", "styles[1]"),
     "the style image /s/two.png cannot be used", "style2"),
    (DaemonError("bad_request", "styles[0]: not a readable png image", "j", "styles[0]"), "as a PNG or JPEG", "style"),
    (DaemonError("too_large", "size 4096 is over this daemon's limit of 2048 pixels", "j", "params.size"),
     "over the daemon's limits", "working-size"),
    (DaemonError("too_large", "a request of 300 MB; this daemon reads at most 256 MiB"), "over the daemon's limits",
     "working-size"),  # no field: the request as a whole
    (DaemonError("too_large", "iterations 9000 is over this daemon's limit of 5000", "j", "params.iterations"),
     "over the daemon's limits", "iterations"),
    (DaemonError("bad_request", "params: seed must be …", "j", "params.seed"), "refused the request", "seed"),
    (DaemonError("busy", "16 jobs queued"), "queue is full", None),
    (DaemonUnavailable("no message for job j in 5 s"), "stopped answering in the middle of the job", None),
])
def test_failures_are_worded_for_the_user(tmp_path, error, words, argument):
    st = settings(tmp_path, size=512)
    st.style, st.style2 = "/s/one.png", "/s/two.png"
    client = FakeClient([Accepted("j", 0), progress(1, 200, 0.5), error])
    with pytest.raises(job.JobFailed) as err:
        job.run_job(connection(client), st, PIXEL, [PIXEL, PIXEL], RecordingView())
    assert words in str(err.value) and err.value.argument == argument
    assert str(err.value).startswith("Neural Style:")


def test_regions_travel_with_the_request_and_a_refused_mask_names_its_region(tmp_path):
    """Issue 17: the masks go in the request as given (one per style, nil for the whole layer); none at all when
    every region is the whole layer; the daemon's refusal of a mask blames that style's region."""
    result = Result("j", PIXEL, Loss(), 100, 5.0)
    mask = ImageData.raw(bytes([255]), 1, 1, 1)
    client = FakeClient([Accepted("j", 0), result])
    st = settings(tmp_path, style2=str(tmp_path / "starry.png"), style2_region="channel")
    job.run_job(connection(client), st, PIXEL, [PIXEL, PIXEL], RecordingView(), [None, mask])
    assert client.requests[0]["style_masks"] == [None, mask]
    plain = FakeClient([Accepted("j", 0), result])
    job.run_job(connection(plain), settings(tmp_path), PIXEL, [PIXEL], RecordingView())
    assert plain.requests[0]["style_masks"] is None, "no regions: the request is as before issue 17"
    refused = FakeClient([DaemonError("bad_request", "style_masks[1] is all black", "j", "style_masks[1]")])
    with pytest.raises(job.JobFailed) as err:
        job.run_job(connection(refused), st, PIXEL, [PIXEL, PIXEL], RecordingView(), [None, mask])
    assert err.value.argument == "style2-region" and "'Style 2's region' cannot be used" in str(err.value)


def test_coarse_to_fine_shows_the_scale_and_the_daemons_estimate(tmp_path):
    result = Result("j", PIXEL, Loss(), 100, 5.0)
    client = FakeClient([Accepted("j", 0), progress(10, 100, 1.0, scale=1, scales=3),
                         progress(20, 100, 2.0, scale=1, scales=3, seconds_left=45.0),
                         progress(90, 100, 20.0, scale=3, scales=3), result])
    view = RecordingView()
    job.run_job(connection(client), settings(tmp_path, iterations=100), PIXEL, [PIXEL], view)
    assert view.texts[-3:] == ["Neural Style: scale 1 of 3 · iteration 10/100",
                               "Neural Style: scale 1 of 3 · iteration 20/100 · about 45 s left",  # the daemon's
                               "Neural Style: scale 3 of 3 · iteration 90/100 · about 2 s left"]  # measured


def test_stale_previews_are_skipped_for_the_newest(tmp_path):
    """Every message already waiting (painting is slower than the daemon): only the newest preview is painted."""
    result = Result("j", PIXEL, Loss(), 100, 5.0)
    newest = ImageData.raw(bytes(3), 1, 1, 3)
    client = FakeClient([Accepted("j", 0), progress(10, 100, 1.0), progress(20, 100, 2.0), Heartbeat("j", "running", 0),
                         progress(30, 100, 3.0, newest), Heartbeat("j", "running", 0), result], burst=True)
    view = RecordingView()
    job.run_job(connection(client), settings(tmp_path, iterations=100), PIXEL, [PIXEL], view)
    assert view.painted == [False] and view.images[0] is newest, "a stale preview was painted, or not the newest"
    assert view.texts[-1] == "Neural Style: iteration 30/100 · about 7 s left"  # the text still follows every report
    slow = FakeClient([Accepted("j", 0), progress(10, 100, 1.0), progress(20, 100, 2.0), result])
    job.run_job(connection(slow), settings(tmp_path, iterations=100), PIXEL, [PIXEL], view)
    assert view.painted == [False, False, False], "with nothing waiting, every preview is painted"


def test_the_layers_size_is_checked_against_max_pixels(tmp_path):
    client = FakeClient([])
    handle = DaemonHandle("e", pong(), started=False)
    with pytest.raises(job.JobFailed) as err:
        job.connect(settings(tmp_path), ClientConfig(), RecordingView(), region=(6000, 4500),
                    connect_fn=fake_connect((client, handle), []))
    assert "The layer is 6000 × 4500 pixels (27 megapixels)" in str(err.value)
    assert "at most at 25 megapixels" in str(err.value) and err.value.argument == "full-resolution"
    conn = job.connect(settings(tmp_path, size=1024), ClientConfig(), RecordingView(),
                       region=(6000, 4500), connect_fn=fake_connect((FakeClient([]), handle), []))
    assert conn.endpoint  # a working size fits: the layer's own size does not matter then


def test_a_stream_without_result_is_a_failure(tmp_path):
    with pytest.raises(job.JobFailed, match="without a result"):
        job.run_job(connection(FakeClient([Accepted("j", 0)])), settings(tmp_path), PIXEL, [PIXEL], RecordingView())


def test_gimps_quit_message_cancels_the_job_at_the_daemon(tmp_path):
    """do_quit runs while the plug-in is inside a GIMP call (painting): the stream must be abandoned."""
    client = FakeClient([Accepted("j", 0), progress(10, 100, 1.0), progress(20, 100, 2.0)])

    def quit_now():
        job.abandon_current_job()
        raise SystemExit(0)  # what libgimp's gimp_quit() does next

    with pytest.raises(SystemExit):
        job.run_job(connection(client), settings(tmp_path), PIXEL, [PIXEL], RecordingView(on_paint=quit_now))
    assert client.cancelled
    job.abandon_current_job()  # nothing running any more: a no-op


# --------------------------------------------------------------------------- connecting
def fake_connect(result, calls):
    def connect_fn(endpoint, command, **kw):
        calls.append({"endpoint": endpoint, "command": command, **kw})
        if isinstance(result, BaseException):
            raise result
        kw["on_start"](command)
        return result
    return connect_fn


def pong(limits=LIMITS, loaded=True):
    return Pong("p", "0.1.0", 1, "cpu", loaded, "random", 0, dict(limits))


def test_connect_uses_the_recorded_endpoint_and_command(tmp_path):
    client, calls = FakeClient([]), []
    config = ClientConfig("tcp://127.0.0.1:6000", ["/v/neural-style", "serve"])
    handle = DaemonHandle("tcp://127.0.0.1:6000", pong(), started=True)
    view = RecordingView()
    conn = job.connect(settings(tmp_path, timeout=30), config, view, connect_fn=fake_connect((client, handle), calls))
    assert conn.client is client and conn.started and conn.endpoint == "tcp://127.0.0.1:6000"
    assert calls[0]["autostart"] and calls[0]["command"] == ["/v/neural-style", "serve"] and calls[0]["timeout"] == 30
    assert view.texts == ["Neural Style: contacting the daemon at tcp://127.0.0.1:6000…",
                          "Neural Style: starting the daemon (it loads VGG19 once, this takes a moment)…"]
    job.connect(settings(tmp_path, endpoint="ipc:///tmp/x"), config, view, connect_fn=fake_connect((client, handle),
                                                                                                calls))
    assert calls[1]["endpoint"] == "ipc:///tmp/x"  # the dialog's address wins


def test_no_daemon_with_autostart_off_names_the_dialogs_option(tmp_path):
    calls = []
    config = ClientConfig("tcp://127.0.0.1:6000", ["/v/neural-style", "serve"])
    with pytest.raises(job.JobFailed) as err:
        job.connect(settings(tmp_path, autostart=False), config, RecordingView(),
                    connect_fn=fake_connect(NoDaemon("no daemon answered"), calls))
    assert not calls[0]["autostart"]
    assert "Start it with: /v/neural-style serve --bind tcp://127.0.0.1:6000" in str(err.value)
    assert "tick 'Start the daemon if needed' (under 'Advanced')" in str(err.value)


def test_a_sandboxed_gimp_never_tries_to_start_the_host_command(tmp_path):
    calls = []
    config = ClientConfig("tcp://127.0.0.1:5570", ["/home/u/.venv/bin/neural-style", "serve"], service="systemd")
    with pytest.raises(job.JobFailed) as err:
        job.connect(settings(tmp_path), config, RecordingView(), sandbox="Flatpak",
                    connect_fn=fake_connect(NoDaemon("x"), calls))
    assert not calls[0]["autostart"], "Flatpak cannot run the host's command"
    assert "Flatpak sandbox" in str(err.value)
    assert "systemctl --user enable --now neural-style.service" in str(err.value)


def test_a_start_that_fails_says_why_once(tmp_path):
    failed = DaemonStartFailed("could not start `/v/neural-style`: no such file", None, "")
    with pytest.raises(job.JobFailed) as err:
        job.connect(settings(tmp_path), ClientConfig(daemon_command=["/v/neural-style", "serve"]), RecordingView(),
                    connect_fn=fake_connect(failed, []))
    text = str(err.value)
    assert "could not start `/v/neural-style`: no such file" in text and "did not help" not in text


@pytest.mark.parametrize("kw, limits, loaded, words, argument", [
    ({"size": 4096}, LIMITS, True, "'Working size (px)' is 4096 pixels; this daemon accepts at most 2048",
     "working-size"),
    ({"iterations": 6000}, LIMITS, True, "'Iterations' is 6000", "iterations"),
])
def test_the_daemons_limits_are_checked_before_sending(tmp_path, kw, limits, loaded, words, argument):
    client = FakeClient([])
    handle = DaemonHandle("e", pong(limits, loaded), started=False)
    with pytest.raises(job.JobFailed) as err:
        job.connect(settings(tmp_path, **kw), ClientConfig(), RecordingView(), connect_fn=fake_connect((client, handle),
                                                                                                      []))
    assert words in str(err.value) and err.value.argument == argument and client.closed


def test_a_daemon_still_loading_its_weights_gets_the_job(tmp_path):
    """weights_loaded is false while a fresh daemon loads VGG19: jobs queue meanwhile (no_weights comes later)."""
    client = FakeClient([])
    handle = DaemonHandle("e", pong(loaded=False), started=True)
    conn = job.connect(settings(tmp_path), ClientConfig(), RecordingView(),
                       connect_fn=fake_connect((client, handle), []))
    assert conn.client is client and not client.closed


def test_an_unusable_address_points_at_the_setting(tmp_path):
    with pytest.raises(job.JobFailed) as err:
        job.connect(settings(tmp_path, endpoint="tcp://nowhere"), ClientConfig(), RecordingView(),
                    connect_fn=fake_connect(ValueError("Invalid argument"), []))
    assert "'Daemon address'" in str(err.value) and err.value.argument == "endpoint"


def test_the_fake_and_the_real_client_implement_one_interface(tmp_path):
    """mypy checks tests/fake_client.py against the protocol's DaemonClient (protocol/client.py checks Client)."""
    import os
    import subprocess

    root = Path(__file__).resolve().parents[1]
    (tmp_path / "neural_style").mkdir()
    for name in ("daemon", "protocol"):
        (tmp_path / "neural_style" / name).symlink_to(root / name)
    out = subprocess.run([sys.executable, "-m", "mypy", "--config-file", str(root / "pyproject.toml"),
                          "--cache-dir", str(tmp_path / "cache"), "--follow-imports", "silent",
                          str(root / "tests" / "fake_client.py")],
                         cwd=root, env={**os.environ, "MYPYPATH": str(tmp_path)}, capture_output=True, text=True,
                         timeout=300)
    assert out.returncode == 0, out.stdout + out.stderr
