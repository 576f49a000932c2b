"""Full resolution through the daemon (issue 7): a real ``neural-style serve`` process with small limits,
a small preview cap and a memory budget, spoken to over real ZeroMQ by the typed client and the CLI.

A job at the content's own size returns a result of the content's size while its previews stay within
the cap; progress carries the scale and the time left; the job's memory budget is the smaller of the
daemon's and the request's, and its plan is one log line; what is over the limits is refused before
``accepted``; ``pong`` reports every limit.
"""

from __future__ import annotations

import os
import platform
import re
import subprocess
import sys

import pytest
from server_fixtures import FAST, own_daemon, png_bytes, rgb_bytes

from neural_style.protocol import Accepted, Client, DaemonError, ImageData, Progress, Result

MAX_PIXELS = 20_000  # 150×120 = 18,000 fits, 160×130 = 20,800 does not
MAX_SIZE = 64
PREVIEW_CAP = 40
DAEMON_MEMORY_MIB = 4096
LIMIT_ARGS = ("--max-pixels", str(MAX_PIXELS), "--max-size", str(MAX_SIZE), "--max-preview-size", str(PREVIEW_CAP),
              "--max-memory", "4G", "--max-iterations", "40")
# Two scales on a content larger than --max-size: 75×60, then the content's own 150×120.
NATIVE = {**FAST, "size": 0, "scales": 2, "iterations": 4, "progress_every": 1, "preview": True}


@pytest.fixture(scope="module")
def daemon(tmp_path_factory):
    yield from own_daemon(tmp_path_factory, "native", *LIMIT_ARGS)


def _image(width: int, height: int, channels: int = 3, seed: int = 0) -> ImageData:
    return ImageData.raw(rgb_bytes(width, height, channels, seed), width, height, channels)


STYLE = _image(24, 24, seed=1)


def _run(client: Client, content: ImageData, params: dict, request_id: str) -> tuple[list, Result]:
    events = list(client.stylize(content, [STYLE], params, request_id=request_id))
    assert isinstance(events[0], Accepted) and isinstance(events[-1], Result)
    return [e for e in events if isinstance(e, Progress)], events[-1]


def _plan_line(daemon, request_id: str) -> str:
    lines = [line for line in daemon.log().splitlines() if f"id={request_id!r}" in line and " plan: " in line]
    assert len(lines) == 1, daemon.log()  # one plan line per job
    return lines[0]


def test_pong_reports_every_limit_the_daemon_applies(daemon):
    with Client(daemon.endpoint) as client:
        limits = client.ping().limits
    assert limits == {"max_pixels": MAX_PIXELS, "max_message_bytes": 256 << 20, "max_iterations": 40,
                      "max_size": MAX_SIZE, "max_queue": 16, "max_styles": 8, "max_earlier": 4,
                      "max_memory": DAEMON_MEMORY_MIB,
                      "max_preview_size": PREVIEW_CAP, "max_connections": 64, "handshake_timeout": 10,
                      "idle_timeout": 300}


def test_a_native_job_returns_the_contents_size_with_capped_previews_and_its_scales(daemon):
    content = _image(150, 120, channels=4, seed=2)  # wider than --max-size: allowed at its own size
    with Client(daemon.endpoint) as client:
        progress, result = _run(client, content, NATIVE, "native")
    assert result.image is not None and (result.image.width, result.image.height, result.image.channels) == \
        (150, 120, 4)
    previews = [p.image for p in progress if p.image is not None]
    assert previews and all(max(i.width, i.height) <= PREVIEW_CAP for i in previews)  # request: no cap of its own
    assert [p.iteration for p in progress] == [1, 2, 3, 4] and {p.scales for p in progress} == {2}
    scales = [p.scale for p in progress]
    assert scales == sorted(scales) and scales[0] == 1 and scales[-1] == 2
    assert all(p.seconds_left is not None and p.seconds_left >= 0 for p in progress[1:])
    assert progress[-1].seconds_left == 0
    line = _plan_line(daemon, "native")
    assert "2 scales: 75×60" in line and "→ 150×120" in line and "predicted peak" in line
    assert re.search(r"L-BFGS|Adam", line) and ("whole image" in line or "blocks" in line)


def test_a_requests_smaller_preview_size_wins_over_the_daemons_cap(daemon):
    with Client(daemon.endpoint) as client:
        progress, result = _run(client, _image(150, 120), {**NATIVE, "preview_size": 20}, "small-previews")
    assert result.image is not None and (result.image.width, result.image.height) == (150, 120)
    assert {(p.image.width, p.image.height) for p in progress if p.image is not None} == {(20, 16)}


@pytest.mark.parametrize("request_id, asked, budget", [
    ("memory-less", "2G", "2.00"),  # the request's smaller budget wins
    ("memory-more", "8G", "4.00"),  # the daemon's caps a larger one
    ("memory-none", None, "4.00"),  # a request without one gets the daemon's
])
def test_a_jobs_memory_budget_is_the_smaller_of_the_daemons_and_the_requests(daemon, request_id, asked, budget):
    params = {**FAST, "iterations": 1}
    if asked is not None:
        params["max_memory"] = int(asked[:-1]) * 1024
    with Client(daemon.endpoint) as client:
        _run(client, _image(40, 32), params, request_id)
    assert f"max_memory {budget} GiB less" in _plan_line(daemon, request_id)
    if sys.platform == "linux" and platform.libc_ver()[0] == "glibc":  # a CPU budget caps RSS (heap_threshold.py)
        assert "mmap threshold pinned at 128 KiB" in daemon.log()


def test_a_memory_budget_below_what_the_daemon_uses_ends_the_accepted_job_in_one_bad_request(daemon):
    """What memory is in use is known only when the job starts: an accepted job whose budget cannot hold even
    the smallest block ends in one ``bad_request`` saying what it needs, and the daemon serves on."""
    with Client(daemon.endpoint) as client:
        events = client.stylize(_image(40, 32), [STYLE], {**FAST, "iterations": 1, "max_memory": 64},
                                request_id="tiny-budget")
        assert isinstance(next(events), Accepted)
        with pytest.raises(DaemonError) as error:
            list(events)
        assert error.value.code == "bad_request" and "needs at least" in error.value.message
        assert "max_memory 0.06 GiB" in error.value.message
        _run(client, _image(40, 32), {**FAST, "iterations": 1}, "after-tiny-budget")


@pytest.mark.parametrize("request_id, content, params, words", [
    ("native-too-many-pixels", _image(160, 130), {"size": 0}, "20800 pixels"),
    ("png-too-many-pixels", ImageData.png(png_bytes(160, 130)), {"size": 0}, "20800 pixels"),
    ("scaled-over-max-size", _image(150, 120), {"size": 100}, "size 100 is over this daemon's max_size of 64"),
])
def test_what_is_over_the_limits_is_refused_before_accepted(daemon, request_id, content, params, words):
    with Client(daemon.endpoint) as client:
        events = client.stylize(content, [STYLE], {**FAST, "iterations": 1, **params}, request_id=request_id)
        with pytest.raises(DaemonError) as error:
            next(events)  # the first reply is the error: nothing was accepted
        assert error.value.code == "too_large" and words in error.value.message
        assert client.ping().queue_length == 0


def test_a_size_above_the_contents_own_is_its_native_size_and_allowed(daemon):
    """The engine never scales up, so size 200 on a 150×120 content is a native job: bounded by max_pixels."""
    with Client(daemon.endpoint) as client:
        _, result = _run(client, _image(150, 120), {**FAST, "iterations": 1, "size": 200}, "size-above")
    assert result.image is not None and (result.image.width, result.image.height) == (150, 120)


def test_the_cli_sends_native_size_and_memory_and_shows_the_scale_and_time_left(daemon, tmp_path):
    from conftest import smooth_image

    from neural_style.daemon.image_files import save_image

    content, style, out = tmp_path / "content.png", tmp_path / "style.png", tmp_path / "out.png"
    save_image(smooth_image(40, 100, seed=1), content)  # 100×40: wider than --max-size 64
    save_image(smooth_image(24, 24, seed=2), style)
    run = subprocess.run([sys.executable, "-m", "neural_style.daemon.cli", "stylize", str(content), str(style),
                          "-o", str(out), "--endpoint", daemon.endpoint, "--no-autostart", "--native",
                          "--max-memory", "2G", "--scales", "2", "--iterations", "4", "--progress-every", "1",
                          "--content-layers", "relu2_1", "--style-layers", "relu1_1,relu2_1"],
                         capture_output=True, text=True, timeout=120, env=dict(os.environ))
    assert run.returncode == 0, run.stderr
    assert "iteration 1/4 scale 1/2" in run.stderr and "iteration 4/4 scale 2/2" in run.stderr
    assert " left" in run.stderr and "(100x40, 4 iterations" in run.stderr
    jobs = re.findall(r"id='(\w+)' client=\w+ accepted at position 0: 4 iterations at the content's own size",
                      daemon.log())
    assert jobs and "max_memory 2.00 GiB less" in _plan_line(daemon, jobs[-1])  # the CLI sent --max-memory
