"""The daemon over real ZeroMQ: round trips, previews, the style cache, cancel, status,
concurrent clients and a client killed mid-job.

One daemon process (random weights, CPU, tcp loopback) serves every test in this module.
"""

from __future__ import annotations

import re
import signal
import subprocess
import sys
import textwrap
import threading
import time
import uuid

import numpy as np
import pytest
from server_fixtures import (
    ENDLESS,
    FAST,
    RawClient,
    png_bytes,
    raw_image,
    rgb_bytes,
    shared_daemon,
    terminal_of,
    wait_until,
)

from neural_style.protocol import Accepted, Client, DaemonError, ImageData, Progress, Result
from neural_style.protocol.heartbeat import ZMTP_HEARTBEAT_IVL_MS


@pytest.fixture(scope="module")
def daemon(tmp_path_factory):
    return shared_daemon(tmp_path_factory)  # one process for this module and its neighbours


def _content(width=40, height=32, channels=3, seed=0) -> ImageData:
    return ImageData.raw(rgb_bytes(width, height, channels, seed), width, height, channels)


def _style(seed=1, size=24) -> ImageData:
    return ImageData.raw(rgb_bytes(size, size, 3, seed), size, size, 3)


def _wait_idle(daemon) -> None:
    """Wait until no job runs or waits (so the next test starts with an empty queue)."""
    with Client(daemon.endpoint) as client:
        wait_until(lambda: client.ping().queue_length == 0, 30, "the daemon's queue to empty")


def test_ping_describes_the_daemon(daemon):
    with Client(daemon.endpoint) as client:
        pong = client.ping()
    assert pong.protocol == 1
    assert pong.weights_loaded is True
    assert "random" in (pong.weights or "")
    assert pong.device == "cpu"
    assert pong.queue_length == 0
    assert {"max_pixels", "max_message_bytes", "max_iterations", "max_queue"} <= set(pong.limits)
    # --threads auto: one thread per physical core, OpenMP threads waiting passively (PERFORMANCE.md)
    assert re.search(r"(\d+) CPU thread\(s\) \(--threads auto, \1 physical core\(s\), OpenMP wait passive\)",
                     daemon.log())


def test_stylize_round_trip_with_previews(daemon):
    params = {**FAST, "iterations": 6, "progress_every": 2, "preview": True}
    with Client(daemon.endpoint) as client:
        events = list(client.stylize(_content(), [_style()], params))
    assert isinstance(events[0], Accepted) and events[0].position == 0
    result = events[-1]
    assert isinstance(result, Result)
    progress = [e for e in events if isinstance(e, Progress)]
    assert [p.iteration for p in progress] == [2, 4, 6]
    assert all(p.iterations == 6 for p in progress)
    image = result.image
    assert image.encoding == "raw" and image.channels == 3
    assert image.width == 32 and abs(image.height - 32 * 32 / 40) < 1  # longest side = size, aspect kept
    assert len(image.data) == image.width * image.height * 3
    for p in progress:  # previews: raw, same size and channels as the result
        assert p.image is not None and (p.image.width, p.image.height, p.image.channels) == \
            (image.width, image.height, 3)
    assert progress[-1].image.data == image.data  # the last preview is the result
    assert result.iterations == 6 and np.isfinite(result.loss.total)
    assert result.loss.total == pytest.approx(result.loss.content + result.loss.style + result.loss.tv)


def test_style_targets_are_cached_between_jobs(daemon):
    params = {**FAST, "iterations": 2}
    style = _style(seed=11)
    with Client(daemon.endpoint) as client:
        first = client.stylize_blocking(_content(seed=3), [style], params)
        second = client.stylize_blocking(_content(seed=4), [style], params)  # new content, same style
        other = client.stylize_blocking(_content(seed=4), [_style(seed=12)], params)
    assert (first.style_cache_hits, first.style_cache_misses) == (0, 1)
    assert (second.style_cache_hits, second.style_cache_misses) == (1, 0)
    assert (other.style_cache_hits, other.style_cache_misses) == (0, 1)


def test_rgba_content_gets_rgba_result_with_its_alpha(daemon):
    w, h = 32, 32
    rgba = np.frombuffer(rgb_bytes(w, h, 4, seed=5), dtype=np.uint8).reshape(h, w, 4).copy()
    rgba[..., 3] = 77
    with Client(daemon.endpoint) as client:
        result = client.stylize_blocking(ImageData.raw(rgba.tobytes(), w, h, 4), [_style()],
                                         {**FAST, "iterations": 2})
    out = np.frombuffer(result.image.data, dtype=np.uint8).reshape(result.image.height, result.image.width, 4)
    assert result.image.channels == 4
    assert np.all(out[..., 3] == 77)


def test_texture_synthesis_and_encoded_inputs(daemon):
    with Client(daemon.endpoint) as client:
        texture = client.stylize_blocking(None, [ImageData.png(png_bytes(24, 24, seed=6))],
                                          {**FAST, "iterations": 2, "width": 32, "height": 24})
        from_png = client.stylize_blocking(ImageData.png(png_bytes(40, 30, seed=7)), [_style()],
                                           {**FAST, "iterations": 2})
    assert (texture.image.width, texture.image.height, texture.image.channels) == (32, 24, 3)
    assert (from_png.image.width, from_png.image.height, from_png.image.channels) == (32, 24, 3)


def test_raw_pyzmq_msgpack_client_written_from_the_protocol_doc(daemon):
    """PROTOCOL.md section 12, with nothing but pyzmq and msgpack."""
    with RawClient(daemon.endpoint) as client:
        pong = client.request({"type": "ping", "id": "p1"})
        assert pong["type"] == "pong" and pong["id"] == "p1" and pong["protocol"] == 1
        job = uuid.uuid4().hex
        content, style = rgb_bytes(40, 32, 3, 8), rgb_bytes(24, 24, 3, 9)
        client.send({"type": "stylize", "id": job, "content": raw_image(1, 40, 32, 3),
                     "styles": [raw_image(2, 24, 24, 3)],
                     "params": {**FAST, "iterations": 5, "progress_every": 2, "preview": False}},
                    content, style)
        stream = client.stream(job)
    kinds = [h["type"] for h, _ in stream]
    assert kinds[0] == "accepted"
    result = terminal_of(stream)
    assert result["type"] == "result", result
    iterations = [h["iteration"] for h, _ in stream if h["type"] == "progress"]
    assert iterations == [2, 4, 5]
    assert all("image" not in h for h, _ in stream if h["type"] == "progress")
    img = result["image"]
    payloads = stream[-1][1]
    assert img["encoding"] == "raw"
    assert len(payloads[img["frame"] - 1]) == img["width"] * img["height"] * img["channels"]
    assert set(result["loss"]) == {"total", "content", "style", "tv"}
    assert {"elapsed", "iterations", "style_cache_hits", "style_cache_misses"} <= set(result)


def test_status_cancel_and_duplicate_ids_while_a_job_runs(daemon):
    with RawClient(daemon.endpoint) as client, RawClient(daemon.endpoint) as other:
        client.stylize("long", ENDLESS)
        assert client.recv_for("long")[0]["type"] == "accepted"
        assert client.recv_for("long")[0]["type"] == "progress"  # it runs
        client.stylize("queued", {**FAST, "iterations": 3})
        assert client.recv_for("queued")[0] == {"v": 1, "type": "accepted", "id": "queued", "position": 1}

        # the socket loop answers while the worker is busy
        status = client.request({"type": "status", "id": "s"})
        assert status["type"] == "status_reply"
        assert status["running"]["id"] == "long" and status["running"]["state"] == "running"
        assert status["running"]["iterations"] == ENDLESS["iterations"]
        assert [j["id"] for j in status["queued"]] == ["queued"] and status["queued"][0]["position"] == 1
        # another connection sees how far jobs got and where they wait, not whose they are
        theirs = other.request({"type": "status", "id": "s"})
        assert theirs["running"]["id"] == "" and theirs["running"]["state"] == "running"
        assert theirs["running"]["iterations"] == ENDLESS["iterations"] and theirs["running"]["iteration"] >= 1
        assert [(j["id"], j["state"], j["position"]) for j in theirs["queued"]] == [("", "queued", 1)]
        assert other.request({"type": "ping", "id": "p"})["queue_length"] == 2

        # ids are per connection: another client cannot cancel this one's job
        assert other.request({"type": "cancel", "id": "c0", "target": "long"})["code"] == "not_found"
        # a duplicate id of an unfinished job is refused, and the original goes on
        client.stylize("long", {**FAST, "iterations": 1})
        dup = client.recv_for("long")
        if dup[0]["type"] == "progress":  # progress of the original may come first
            dup = client.recv_for("long", skip=("heartbeat", "progress"))
        assert dup[0]["type"] == "error" and dup[0]["code"] == "bad_request"

        ack = client.request({"type": "cancel", "id": "c1", "target": "queued"})
        assert ack["type"] == "cancel_ack" and ack["target"] == "queued" and ack["state"] == "queued"
        queued = client.stream("queued")
        assert terminal_of(queued)["code"] == "cancelled"

        ack = client.request({"type": "cancel", "id": "c2", "target": "long"})
        assert ack["type"] == "cancel_ack" and ack["state"] == "running"
        long_stream = client.stream("long")
        assert terminal_of(long_stream)["code"] == "cancelled"
        # finished: a second cancel finds nothing
        assert client.request({"type": "cancel", "id": "c3", "target": "long"})["code"] == "not_found"
    _wait_idle(daemon)


@pytest.mark.parametrize("clients", [2, 8])
def test_concurrent_clients_each_job_ends_in_exactly_one_terminal_message(daemon, clients):
    jobs_per_client = 2 if clients == 2 else 1
    streams: dict[tuple[int, int], list] = {}
    errors: list[BaseException] = []
    start = threading.Barrier(clients)

    def run(n: int) -> None:
        try:
            with RawClient(daemon.endpoint) as client:
                start.wait()
                for j in range(jobs_per_client):  # all of this client's jobs in flight at once
                    client.stylize(f"job{j}", {**FAST, "iterations": 3, "progress_every": 1, "seed": n},
                                   seed=n * 10 + j)
                for j in range(jobs_per_client):
                    streams[(n, j)] = client.stream(f"job{j}", timeout=60)
        except BaseException as exc:  # surfaced below
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(n,)) for n in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert not errors, errors
    assert len(streams) == clients * jobs_per_client
    positions = []
    for stream in streams.values():
        assert stream[0][0]["type"] == "accepted"
        positions.append(stream[0][0]["position"])
        assert terminal_of(stream)["type"] == "result"
        iterations = [h["iteration"] for h, _ in stream if h["type"] == "progress"]
        assert iterations == sorted(iterations) and iterations[-1] == 3
    assert sorted(positions) == list(range(len(positions)))  # first come, first served
    _wait_idle(daemon)


def test_protocol_client_in_threads(daemon):
    """The typed client, two at once, blocking form: both get their own results."""
    results: dict[int, Result] = {}

    def run(n: int) -> None:
        with Client(daemon.endpoint, timeout=30) as client:
            results[n] = client.stylize_blocking(_content(seed=20 + n), [_style(seed=30 + n)],
                                                 {**FAST, "iterations": 2})

    threads = [threading.Thread(target=run, args=(n,)) for n in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert sorted(results) == [0, 1]
    assert results[0].image.data != results[1].image.data


KILLED_CLIENT = textwrap.dedent("""
    import sys
    from neural_style.protocol import Client, ImageData, Progress
    import numpy as np
    content = ImageData.raw(np.full((32, 40, 3), 120, np.uint8).tobytes(), 40, 32, 3)
    style = ImageData.raw(np.full((24, 24, 3), 60, np.uint8).tobytes(), 24, 24, 3)
    client = Client(sys.argv[1])
    running = client.stylize(content, [style], {"size": 32, "iterations": 4000, "progress_every": 1},
                             request_id="doomed")
    for event in running:
        if isinstance(event, Progress):
            break
    queued = client.stylize(content, [style], {"size": 32, "iterations": 4000}, request_id="doomed-too")
    assert next(queued).position == 1
    print("running", flush=True)
    sys.stdin.read()  # wait here until killed
""")


@pytest.mark.parametrize("how", ["kill", "stop"])
def test_a_vanished_client_has_its_job_cancelled_and_the_next_job_runs(daemon, tmp_path, how):
    """``kill``: SIGKILL, as GIMP kills a plug-in (the socket closes at once).  ``stop``: SIGSTOP,
    a hung client whose connection stays open (only ZMTP heartbeats can tell)."""
    script = tmp_path / "client.py"
    script.write_text(KILLED_CLIENT)
    gone_before = daemon.log().count("is gone; cancelling 2 job(s)")
    proc = subprocess.Popen([sys.executable, str(script), daemon.endpoint], stdout=subprocess.PIPE,
                            stdin=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline().strip() == "running"
        with RawClient(daemon.endpoint) as waiting:
            waiting.stylize("next", {**FAST, "iterations": 2})
            assert waiting.recv_for("next")[0]["position"] == 2  # behind the doomed jobs
            if how == "kill":
                proc.kill()  # no goodbye, no cancel
                proc.wait(10)
            else:  # once it has sent a ZMTP PING (the daemon's TTL timer starts with the first one)
                time.sleep(3 * ZMTP_HEARTBEAT_IVL_MS / 1000)
                proc.send_signal(signal.SIGSTOP)
            # the doomed jobs had minutes of work; "next" only finishes if both were cancelled
            stream = waiting.stream("next", timeout=30)
        assert terminal_of(stream)["type"] == "result"
        log = daemon.log()
        assert log.count("is gone; cancelling 2 job(s)") == gone_before + 1
        for job in ("doomed", "doomed-too"):  # the running one and the queued one
            assert re.search(rf"id='{job}' client=\w+ cancelled: .*the client disconnected", log.split("is gone")[-1])
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.send_signal(signal.SIGCONT)
            proc.wait(10)
    _wait_idle(daemon)


def test_daemon_error_reaches_the_typed_client(daemon):
    with Client(daemon.endpoint) as client, pytest.raises(DaemonError) as err:
        client.stylize_blocking(_content(), [_style()], {"iterations": 2, "style_layers": ["relu9_9"]})
    assert err.value.code == "bad_request" and "relu9_9" in err.value.message


def test_a_second_daemon_on_a_busy_port_fails_clearly(daemon, caplog):
    """In-process (no need for another interpreter): a port in use is one clear error, exit 1."""
    from neural_style.daemon.server.main import ServerConfig, run_server

    with caplog.at_level("ERROR"):
        assert run_server(ServerConfig(bind=daemon.endpoint), threading.Event()) == 1
    assert "cannot listen" in caplog.text and "another daemon" in caplog.text
