"""The client against a minimal real ROUTER socket over real ZeroMQ (tcp loopback, random port).

The fake daemon below speaks protocol v1 through the same wire module as the real one;
its behaviour per stylize job is chosen by ``params["mode"]`` (params are opaque to the
protocol). It owns its socket in its own thread, as the real daemon does.
"""

from __future__ import annotations

import threading
import time

import pytest
import zmq

from neural_style.protocol import (
    Accepted,
    CancelAck,
    Client,
    DaemonError,
    DaemonUnavailable,
    Error,
    ErrorCode,
    Heartbeat,
    ImageData,
    JobInfo,
    Loss,
    Pong,
    Progress,
    ProtocolError,
    Result,
    StatusReply,
    decode_request,
    error_frames,
)
from neural_style.protocol.messages import Cancel, Ping, Status, Stylize
from neural_style.protocol.wire import encode


class FakeDaemon(threading.Thread):
    def __init__(self) -> None:
        super().__init__(daemon=True)
        self.ctx = zmq.Context()
        self.sock = self.ctx.socket(zmq.ROUTER)
        self.sock.setsockopt(zmq.ROUTER_MANDATORY, 1)
        self.sock.setsockopt(zmq.LINGER, 0)
        port = self.sock.bind_to_random_port("tcp://127.0.0.1")
        self.endpoint = f"tcp://127.0.0.1:{port}"
        self.stop = threading.Event()
        self.jobs: dict[tuple[bytes, str], list] = {}  # (peer, id) -> scheduled [time, frames] list
        self.received: list = []
        self.cancelled: list[str] = []

    def send(self, peer: bytes, frames) -> None:
        try:
            self.sock.send_multipart([peer, *frames])
        except zmq.ZMQError:  # EHOSTUNREACH: that client is gone; a daemon carries on
            pass

    def handle(self, peer: bytes, frames) -> None:
        try:
            request = decode_request(frames)
        except ProtocolError as exc:
            self.send(peer, error_frames(exc.request_id, exc.code, exc.message))
            return
        self.received.append(request)
        if isinstance(request, Ping):
            self.send(peer, encode({"type": "news_from_v1_5", "id": request.id}))  # clients must skip it
            self.send(peer, Pong(request.id, "test", 1, "cpu", True, "random", len(self.jobs)).to_frames())
        elif isinstance(request, Status):
            running = [JobInfo(i, "running", 0, 1, 3, 0.1) for (_, i) in self.jobs]
            self.send(peer, StatusReply(request.id, running[0] if running else None).to_frames())
        elif isinstance(request, Cancel):
            key = (peer, request.target)
            if key in self.jobs:
                del self.jobs[key]
                self.cancelled.append(request.target)
                self.send(peer, CancelAck(request.id, request.target, "running").to_frames())
                self.send(peer, Error(request.target, ErrorCode.CANCELLED, "cancelled").to_frames())
            else:
                self.send(peer, Error(request.id, ErrorCode.NOT_FOUND, f"no job {request.target}").to_frames())
        elif isinstance(request, Stylize):
            self.stylize(peer, request)

    def stylize(self, peer: bytes, job: Stylize) -> None:
        mode = job.params.get("mode", "ok")
        if mode == "busy":
            self.send(peer, Error(job.id, ErrorCode.BUSY, "queue full").to_frames())
            return
        if mode == "late":  # as over a slow link: accepted late, then a silence while the result travels
            late, silence, now = job.params["accept_after"], job.params["silence"], time.monotonic()
            self.jobs[(peer, job.id)] = [
                [now + late, Accepted(job.id, 0).to_frames()],
                [now + late + silence, Result(job.id, job.content, Loss(1, 1, 0, 0), 1, 0.5).to_frames()]]
            return
        self.send(peer, Accepted(job.id, 0).to_frames())
        self.send(peer, encode({"type": "news_from_v1_5", "id": job.id, "eta": 1.0}))
        now = time.monotonic()
        plan: list = []
        n = job.params.get("iterations", 3)
        step = job.params.get("step", 0.0)
        if mode == "silent":
            plan = []
        elif mode == "slow":  # heartbeats only, until cancelled
            plan = [[now + 0.05 * k, Heartbeat(job.id, "running", 0).to_frames()] for k in range(1, 200)]
        else:
            for i in range(1, n + 1):
                plan.append([now + step * i, Heartbeat(job.id, "running", 0).to_frames()])
                preview = job.content if job.params.get("preview") else None
                plan.append([now + step * i, Progress(job.id, i, n, Loss(3.0 / i, 1, 2 / i, 0), 0.01 * i,
                                                      preview).to_frames()])
            if mode == "error":
                plan.append([now + step * (n + 1), Error(job.id, ErrorCode.INTERNAL, "boom").to_frames()])
            else:
                plan.append([now + step * (n + 1), Result(job.id, job.content, Loss(1, 1, 0, 0), n, 0.5, 1, 0)
                             .to_frames()])
        self.jobs[(peer, job.id)] = plan

    def run(self) -> None:
        while not self.stop.is_set():
            if self.sock.poll(10):
                msg = self.sock.recv_multipart()
                self.handle(msg[0], msg[1:])
            now = time.monotonic()
            for key in list(self.jobs):
                plan = self.jobs[key]
                while plan and plan[0][0] <= now:
                    self.send(key[0], plan.pop(0)[1])
                if not plan and self.jobs.get(key) is plan:
                    del self.jobs[key]
        self.sock.close(0)
        self.ctx.term()


@pytest.fixture
def daemon():
    fake = FakeDaemon()
    fake.start()
    yield fake
    fake.stop.set()
    fake.join(5)


def image(w: int = 3, h: int = 2, c: int = 4) -> ImageData:
    return ImageData.raw(bytes(i % 256 for i in range(w * h * c)), w, h, c)


def test_ping_and_status(daemon) -> None:
    with Client(daemon.endpoint, timeout=2) as client:
        pong = client.ping()
        assert isinstance(pong, Pong) and pong.protocol == 1 and pong.device == "cpu"
        status = client.status()
        assert isinstance(status, StatusReply) and status.running is None and status.queue_length == 0


def test_stylize_stream_yields_accepted_progress_then_result(daemon) -> None:
    content = image()
    with Client(daemon.endpoint, timeout=2) as client:
        events = list(client.stylize(content, [image(2, 2, 3)], {"iterations": 4, "preview": True}))
    assert isinstance(events[0], Accepted)
    progress = [e for e in events if isinstance(e, Progress)]
    assert [p.iteration for p in progress] == [1, 2, 3, 4]
    assert all(p.image == content for p in progress)
    assert isinstance(events[-1], Result) and events[-1].image == content
    assert not any(isinstance(e, Heartbeat) for e in events)  # consumed silently by default
    assert len({e.id for e in events}) == 1
    assert all(isinstance(e, (Accepted, Progress, Result)) for e in events)  # unknown types skipped
    sent = daemon.received[-1]
    assert isinstance(sent, Stylize) and sent.styles[0].channels == 3


def test_stylize_blocking_reports_progress_and_heartbeats(daemon) -> None:
    seen: list = []
    events: list = []
    with Client(daemon.endpoint, timeout=2) as client:
        result = client.stylize_blocking(image(), [image()], {"iterations": 3}, on_progress=seen.append,
                                         on_event=events.append)
    assert result.iterations == 3 and result.style_cache_hits == 1
    assert [p.iteration for p in seen] == [1, 2, 3]
    assert sum(isinstance(e, Heartbeat) for e in events) == 3


def test_error_reply_raises_daemon_error_with_code(daemon) -> None:
    with Client(daemon.endpoint, timeout=2) as client:
        with pytest.raises(DaemonError) as err:
            client.stylize_blocking(image(), [image()], {"mode": "busy"})
        assert err.value.code == "busy"
        with pytest.raises(DaemonError) as err:
            client.stylize_blocking(image(), [image()], {"mode": "error", "iterations": 1})
        assert err.value.code == "internal" and err.value.message == "boom"
        assert client.ping().protocol == 1  # the client is still usable


def test_cancel_acks_and_ends_the_job_with_cancelled(daemon) -> None:
    with Client(daemon.endpoint, timeout=2) as client:
        events = client.stylize(image(), [image()], {"mode": "slow"}, request_id="job-7")
        assert isinstance(next(events), Accepted)
        ack = client.cancel("job-7")  # the job's messages meanwhile are buffered, not lost
        assert isinstance(ack, CancelAck) and ack.target == "job-7"
        with pytest.raises(DaemonError) as err:
            list(events)
        assert err.value.code == "cancelled" and err.value.request_id == "job-7"
        with pytest.raises(DaemonError) as err:
            client.cancel("no-such-job")
        assert err.value.code == "not_found"


def test_abandoning_the_iterator_cancels_the_job(daemon) -> None:
    with Client(daemon.endpoint, timeout=2) as client:
        events = client.stylize(image(), [image()], {"mode": "slow"}, request_id="left")
        next(events)
        events.close()
        deadline = time.monotonic() + 2
        while "left" not in daemon.cancelled and time.monotonic() < deadline:
            time.sleep(0.01)
    assert daemon.cancelled == ["left"]


def test_nothing_listening_raises_daemon_unavailable_quickly() -> None:
    ctx = zmq.Context.instance()
    probe = ctx.socket(zmq.ROUTER)
    port = probe.bind_to_random_port("tcp://127.0.0.1")
    probe.close(0)  # a port that was free a moment ago: nothing listens there now
    started = time.monotonic()
    with Client(f"tcp://127.0.0.1:{port}", timeout=0.3) as client:
        with pytest.raises(DaemonUnavailable) as err:
            client.ping()
        with pytest.raises(DaemonUnavailable):
            next(client.stylize(image(), [image()]))
    assert time.monotonic() - started < 4  # bounded, with room for a loaded 2-core CI machine
    assert f"127.0.0.1:{port}" in str(err.value)


def test_a_silent_daemon_mid_job_is_detected_by_liveness_timeout(daemon) -> None:
    with Client(daemon.endpoint, timeout=2, liveness_timeout=0.3) as client:
        started = time.monotonic()
        with pytest.raises(DaemonUnavailable, match="lost contact"):
            list(client.stylize(image(), [image()], {"mode": "silent"}))
        assert time.monotonic() - started < 3  # bounded, with room for a loaded 2-core CI machine


def test_heartbeats_keep_a_long_job_alive_past_the_liveness_timeout(daemon) -> None:
    with Client(daemon.endpoint, timeout=2, liveness_timeout=0.35) as client:
        started = time.monotonic()
        result = client.stylize_blocking(image(), [image()], {"iterations": 4, "step": 0.12})
    assert result.iterations == 4
    assert time.monotonic() - started > 0.35  # longer than the timeout, but never that long silent


@pytest.mark.parametrize("transfer_rate, survives", [(80_000, True), (10_000_000, False)])
def test_waits_allow_for_the_transfer_of_a_large_request_and_result(daemon, transfer_rate, survives) -> None:
    """A 200×100 RGBA content is 80 kB: at 80 kB/s its request may take 1 s more to be accepted, and its
    result 1 s more to arrive; at the default rate the same silences look like a dead daemon."""
    params = {"mode": "late", "accept_after": 0.7, "silence": 0.9}
    with Client(daemon.endpoint, timeout=0.3, liveness_timeout=0.3, transfer_rate=transfer_rate) as client:
        events = client.stylize(image(200, 100), [image()], params)
        if survives:
            assert [type(e) for e in events] == [Accepted, Result]
        else:
            with pytest.raises(DaemonUnavailable, match="no daemon accepted the job"):
                list(events)
    if survives:  # and the liveness wait alone, once accepted, is the timeout plus the result's transfer
        with Client(daemon.endpoint, timeout=2, liveness_timeout=0.3, transfer_rate=transfer_rate * 10) as client, \
                pytest.raises(DaemonUnavailable, match="lost contact"):
            list(client.stylize(image(200, 100), [image()], {**params, "accept_after": 0.0}))


def test_newer_preview_waiting_looks_at_what_has_reached_the_socket() -> None:
    """What the plug-in asks before painting a preview (skip it when a newer one is already here).

    The burst is sent while the caller reads nothing: the question itself must look at the socket. A ping
    answered after the burst then proves, by ZeroMQ's in-order delivery, that the whole burst has arrived."""
    router = zmq.Context.instance().socket(zmq.ROUTER)
    port = router.bind_to_random_port("tcp://127.0.0.1")
    burst = threading.Event()

    def daemon():
        peer, *frames = router.recv_multipart()
        job_id = decode_request(frames).id
        router.send_multipart([peer, *Accepted(job_id, 0).to_frames()])
        burst.wait(5)
        for reply in (*(Progress(job_id, i, 3, Loss(), 0.1 * i, image()) for i in (1, 2, 3)),
                      Heartbeat(job_id, "running", 0)):
            router.send_multipart([peer, *reply.to_frames()])
        peer, *frames = router.recv_multipart()
        router.send_multipart([peer, *Pong(decode_request(frames).id, "0.1.0", 1, "cpu", True).to_frames()])

    thread = threading.Thread(target=daemon, daemon=True)
    thread.start()
    client = Client(f"tcp://127.0.0.1:{port}", timeout=5)
    try:
        events = client.stylize(image(), [image()], {"iterations": 3})
        assert isinstance(next(events), Accepted)  # sends the request, reads the first reply
        assert not client.newer_preview_waiting(), "nothing was sent after accepted yet"
        burst.set()
        deadline = time.monotonic() + 5
        while not client.newer_preview_waiting() and time.monotonic() < deadline:
            time.sleep(0.01)
        assert client.newer_preview_waiting(), "reports that reached the socket were not seen"
        client.ping(timeout=5)  # answered after the burst: all of it is here
        assert next(events).iteration == 1 and client.newer_preview_waiting(), "two newer reports wait"
        assert next(events).iteration == 2 and client.newer_preview_waiting()
        assert next(events).iteration == 3
        assert not client.newer_preview_waiting(), "the newest (a heartbeat does not count)"
        events.close()
        thread.join(5)
    finally:
        client.close()
        router.close(0)


def test_two_clients_interleave_without_mixing_replies(daemon) -> None:
    with Client(daemon.endpoint, timeout=2) as a, Client(daemon.endpoint, timeout=2) as b:
        ea = a.stylize(image(2, 2, 3), [image()], {"iterations": 2}, request_id="same")
        eb = b.stylize(image(3, 3, 4), [image()], {"iterations": 2}, request_id="same")
        ra = [e for e in ea][-1]
        rb = [e for e in eb][-1]
    assert ra.image.channels == 3 and rb.image.channels == 4


def test_invalid_input_is_refused_before_anything_is_sent(daemon) -> None:
    with Client(daemon.endpoint, timeout=2) as client:
        with pytest.raises(ValueError):
            client.stylize(ImageData.raw(b"short", 2, 2, 3), [image()])
        with pytest.raises(ValueError):
            Client("not-an-endpoint")
    assert not any(isinstance(r, Stylize) for r in daemon.received)


def test_closed_client_refuses_work() -> None:
    client = Client("tcp://127.0.0.1:1", timeout=0.1)
    client.close()
    client.close()  # idempotent
    assert client.closed
    with pytest.raises(RuntimeError):
        client.ping()


def test_endpoint_comes_from_the_environment(monkeypatch) -> None:
    from neural_style.protocol import DEFAULT_ENDPOINT, default_endpoint

    monkeypatch.setenv("NEURAL_STYLE_ENDPOINT", "ipc:///tmp/ns-test.sock")
    assert default_endpoint() == "ipc:///tmp/ns-test.sock"
    with Client(timeout=0.1) as client:
        assert client.endpoint == "ipc:///tmp/ns-test.sock"
    monkeypatch.setenv("NEURAL_STYLE_ENDPOINT", "  ")
    assert default_endpoint() == DEFAULT_ENDPOINT == "tcp://127.0.0.1:5570"


def _encoded(kind: str, width: int, height: int, mode: str = "L") -> bytes:
    import io

    from PIL import Image

    buffer = io.BytesIO()
    Image.new(mode, (width, height), 255).save(buffer, format=kind)
    return buffer.getvalue()


@pytest.mark.parametrize("kind, mode", [("PNG", "L"), ("PNG", "I;16"), ("JPEG", "L"), ("JPEG", "RGB")])
def test_encoded_size_reads_png_and_jpeg_headers(kind, mode) -> None:
    from neural_style.protocol.image_data import encoded_size

    data = _encoded(kind, 321, 123, mode)
    assert encoded_size(data) == (321, 123)
    assert ImageData.from_file_bytes(data).pixels() == 321 * 123
    assert encoded_size(b"\x89PNG\r\n\x1a\n") is None and encoded_size(b"not an image") is None


@pytest.mark.parametrize("judge_rate, survives", [(300_000, True), (1e12, False)])
def test_the_wait_for_accepted_allows_the_daemon_to_judge_encoded_masks(daemon, monkeypatch, judge_rate,
                                                                          survives) -> None:
    """A daemon inflates a PNG/JPEG region mask before it accepts (docs/PROTOCOL.md, Regions): a 600×500 mask at
    300 kpx/s may take 1 s more to be accepted; without that allowance the same wait looks like a dead daemon.
    A raw mask adds nothing (the daemon reads it as it is)."""
    from neural_style.protocol import client as client_module

    monkeypatch.setattr(client_module, "MIN_JUDGE_RATE", judge_rate)
    mask = ImageData.png(_encoded("PNG", 600, 500))
    params = {"mode": "late", "accept_after": 0.7, "silence": 0.0}
    with Client(daemon.endpoint, timeout=0.3, liveness_timeout=0.3) as client:
        events = client.stylize(image(), [image()], params, style_masks=[mask])
        if survives:
            assert [type(e) for e in events] == [Accepted, Result]
        else:
            with pytest.raises(DaemonUnavailable, match="no daemon accepted the job"):
                list(events)
    assert client_module._judged_pixels([mask, None, ImageData.raw(bytes(4), 2, 2, 1)], None) == 600 * 500
