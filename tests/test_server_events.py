"""The worker boundary: the worker builds and encodes every job message, the socket loop only routes it.

Both sides run on their own threads with real sockets: the worker with a real (random-weight)
model and its inproc wake-up socket, the router with a real bound ROUTER and a DEALER client.
In the router's test the test thread plays the worker: it takes the job from the queue and
hands ``WorkerEvent``s over exactly as ``worker.py`` does.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
import types
from collections.abc import Iterator
from typing import Any

import pytest
import zmq
from server_fixtures import FAST, RawClient, free_port, png_bytes, rgb_bytes, terminal_of

from neural_style.daemon.engine.params import StyleParams
from neural_style.daemon.server.bind import RouterSettings, bind_router
from neural_style.daemon.server.events import ModelState, WorkerEvent
from neural_style.daemon.server.jobs import Job, JobQueue, StylizeRequest
from neural_style.daemon.server.limits import Limits
from neural_style.daemon.server.router import Router
from neural_style.daemon.server.style_cache import StyleTargetCache
from neural_style.daemon.server.worker import ModelSettings, Worker
from neural_style.protocol.image_data import ImageData
from neural_style.protocol.messages import Error, Loss, Progress, Result, decode_reply


def _request(content: ImageData | None = None, **params: Any) -> StylizeRequest:
    return StylizeRequest(StyleParams.from_mapping({**FAST, **params}),
                          content or ImageData.raw(rgb_bytes(40, 32), 40, 32, 3),
                          [ImageData.raw(rgb_bytes(24, 24, seed=1), 24, 24, 3)])


def _events(worker: Worker, timeout: float = 60.0) -> Iterator[WorkerEvent]:
    deadline = time.monotonic() + timeout
    while True:
        try:
            yield worker.events.get(timeout=max(0.0, deadline - time.monotonic()))
        except queue.Empty:
            raise AssertionError(f"the worker reported nothing within {timeout}s") from None


def _until_terminal(events: Iterator[WorkerEvent]) -> list[WorkerEvent]:
    got = []
    for event in events:
        got.append(event)
        assert event.message is not None
        if event.message.terminal:
            return got
    raise AssertionError("unreachable")


@pytest.fixture(scope="module")
def worker() -> Iterator[Worker]:
    ctx = zmq.Context()
    wake = ctx.socket(zmq.PAIR)
    wake.bind("inproc://worker-events-test")
    jobs = JobQueue(4)
    worker = Worker(ctx, "inproc://worker-events-test", jobs, ModelSettings("random", device="cpu"),
                    StyleTargetCache(8), max_pixels=100_000)
    worker.start()
    worker.first_event = next(_events(worker))  # type: ignore[attr-defined]  # the model, loaded once per module
    try:
        yield worker
    finally:
        worker.stop()
        worker.join(30)
        wake.close(0)
        ctx.term()


def test_the_worker_reports_its_model_as_an_event(worker):
    ready = worker.first_event
    assert ready.job is None and ready.message is None
    assert ready.model == ModelState(loaded=True, device="cpu", description=ready.model.description)
    assert ready.model.description


def test_the_worker_encodes_progress_and_result_ready_to_send(worker):
    job = Job(b"client", "good", _request(iterations=3, progress_every=1, preview=True, scales=2))
    worker._jobs.put(job)
    events = _until_terminal(_events(worker))
    assert all(isinstance(e, WorkerEvent) and e.job is job for e in events)
    messages = [decode_reply(e.message.frames) for e in events]  # the frames as they will go out
    *progress, result = messages
    assert [type(m) for m in progress] == [Progress] * 3 and [p.iteration for p in progress] == [1, 2, 3]
    # the engine's scale of scales and time left, as the protocol's fields
    assert [(p.scale, p.scales) for p in progress] in ([(1, 2), (2, 2), (2, 2)], [(1, 2), (1, 2), (2, 2)])
    assert progress[-1].seconds_left == 0 and all(p.seconds_left is not None for p in progress[1:])
    assert all(p.id == "good" and p.iterations == 3 and p.image is not None for p in progress)
    assert (progress[-1].image.width, progress[-1].image.height, progress[-1].image.channels) == (32, 26, 3)
    assert isinstance(result, Result) and result.iterations == 3 and result.image.width == 32
    assert result.loss.total == pytest.approx(result.loss.content + result.loss.style + result.loss.tv)
    # what the outbox keys on (kind, request id) and keeps (the terminal message is essential)
    assert [(e.message.kind, e.message.request_id, e.message.essential) for e in events] == \
        [("progress", "good", False)] * 3 + [("result", "good", True)]
    assert events[-1].outcome == "result" and "3 iterations" in events[-1].detail
    assert job.iteration == 3 and job.timings.finished is not None


def test_the_worker_ends_a_failed_or_cancelled_job_in_one_encoded_error(worker):
    broken = png_bytes(40, 30)[:80]  # a readable header (admission's probe passes), no pixels
    bad = Job(b"client", "bad", _request(ImageData.png(broken), iterations=2))
    cancelled = Job(b"client", "early", _request(iterations=2))
    cancelled.cancel("cancelled by the client")
    for job, code in ((bad, "bad_request"), (cancelled, "cancelled")):
        worker._jobs.put(job)
        (event,) = _until_terminal(_events(worker))  # no progress: one terminal message
        error = decode_reply(event.message.frames)
        assert isinstance(error, Error) and (error.id, error.code) == (job.request_id, code)
        assert event.outcome == code and event.detail == f": {error.message}"
        assert event.message.essential and event.message.kind == "error"


# ---------------------------------------------------------------------- the router's side
class Harness:
    """A Router on a real ROUTER socket, served on its own thread; the test thread plays the worker."""

    def __init__(self) -> None:
        self.ctx = zmq.Context()
        self.endpoint = f"tcp://127.0.0.1:{free_port()}"
        limits = Limits(max_queue=2)
        self.sock, _, self.lock = bind_router(self.ctx, self.endpoint, RouterSettings(limits.max_message_bytes), None)
        self.router_wake = self.ctx.socket(zmq.PAIR)
        self.router_wake.bind("inproc://router-events-test")
        self.wake = self.ctx.socket(zmq.PAIR)
        self.wake.connect("inproc://router-events-test")
        self.jobs = JobQueue(limits.max_queue + 1)
        self.worker = types.SimpleNamespace(events=queue.SimpleQueue(), stop=lambda: None, slots=1)
        self.router = Router(self.sock, self.router_wake, self.jobs, self.worker, limits,  # type: ignore[arg-type]
                             "test", "cpu")
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self.router.serve, args=(self.stop,))
        self.thread.start()

    def emit(self, event: WorkerEvent) -> None:
        """What ``Worker._emit`` does: queue the event, poke the loop."""
        self.worker.events.put(event)
        self.wake.send(b"")

    def close(self) -> None:
        self.stop.set()
        self.thread.join(10)
        for sock in (self.sock, self.router_wake, self.wake):
            sock.close(0)
        self.ctx.term()
        self.lock.release()


@pytest.fixture()
def harness() -> Iterator[Harness]:
    h = Harness()
    try:
        yield h
    finally:
        h.close()


def test_the_router_routes_worker_events_as_they_are(harness, caplog):
    caplog.set_level(logging.INFO, logger="neural_style.daemon.server")
    with RawClient(harness.endpoint) as client:
        assert client.request({"type": "ping", "id": "p"})["weights_loaded"] is False
        harness.emit(WorkerEvent.model_changed(ModelState(loaded=True, device="cpu", description="stub model")))
        pong = client.request({"type": "ping", "id": "p2"})
        assert (pong["weights_loaded"], pong["weights"]) == (True, "stub model")

        client.stylize("job", {**FAST, "iterations": 2})
        assert client.recv_for("job")[0]["type"] == "accepted"
        job = harness.jobs.take(timeout=10)  # the test thread is the worker now
        assert job is not None and job.request_id == "job"
        job.iteration = 1
        progress = WorkerEvent.for_job(job, Progress("job", 1, 2, Loss(3.0, 1.0, 2.0), 0.5,
                                                     ImageData.raw(rgb_bytes(4, 2), 4, 2, 3)))
        harness.emit(progress)
        header, payloads = client.recv_for("job")
        assert header["type"] == "progress" and header["iteration"] == 1
        assert payloads == [bytes(f) for f in progress.message.frames[1:]]  # the worker's frames, untouched

        status = client.request({"type": "status", "id": "s"})
        assert (status["running"]["id"], status["running"]["iteration"]) == ("job", 1)

        result = WorkerEvent.for_job(job, Result("job", ImageData.raw(rgb_bytes(4, 2), 4, 2, 3), Loss(1.0),
                                                 2, 1.0), detail="; the worker's detail")
        harness.emit(result)
        harness.emit(progress)  # a late message of an ended job is never routed
        stream = client.stream("job", quiet=1.0)
        assert [h["type"] for h, _ in stream] == ["result"] and terminal_of(stream)["iterations"] == 2
        assert client.request({"type": "status", "id": "s2"})["running"] is None
    assert harness.router.jobs_done == 1
    lines = [r.getMessage() for r in caplog.records if "id='job'" in r.getMessage() and " result: " in r.getMessage()]
    assert len(lines) == 1 and lines[0].endswith("; the worker's detail")


def test_the_router_ends_a_queued_job_itself_and_keeps_one_terminal_message(harness):
    with RawClient(harness.endpoint) as client:
        harness.emit(WorkerEvent.model_changed(ModelState(loaded=True, device="cpu")))
        client.stylize("queued", {**FAST, "iterations": 2})
        assert client.recv_for("queued")[0]["type"] == "accepted"
        assert client.request({"type": "cancel", "id": "c", "target": "queued"})["type"] == "cancel_ack"
        assert terminal_of(client.stream("queued", quiet=0))["code"] == "cancelled"
        assert harness.jobs.take(timeout=0) is None  # the loop took it out of the queue: no worker saw it


def test_only_a_model_state_that_says_so_refuses_jobs_at_admission(harness):
    """The local worker without weights looks again at every job, so its jobs are queued; a cluster front
    that reaches no cluster sets ``refuse_at_admission`` and its jobs are refused before ``accepted``."""
    with RawClient(harness.endpoint) as client:
        harness.emit(WorkerEvent.model_changed(ModelState(failed="no weights here", device="cpu")))
        client.stylize("queued", {**FAST, "iterations": 2})
        assert client.recv_for("queued")[0]["type"] == "accepted"
        harness.emit(WorkerEvent.model_changed(ModelState(failed="no cluster", device="ray",
                                                          refusal="cluster_unavailable", refuse_at_admission=True)))
        client.stylize("refused", {**FAST, "iterations": 2})
        reply = client.recv_for("refused")[0]
        assert (reply["type"], reply["code"], reply["message"]) == ("error", "cluster_unavailable", "no cluster")


def test_a_24_megapixel_rgba_image_travels_both_ways(harness):
    """Full resolution's sizes through the daemon's real socket options and the typed client: a 6000×4000
    RGBA raw content (96 MB, within the default max_message_bytes and max_pixels) is admitted at its own
    size, and a result of the same size comes back whole (the client sets no receive limit)."""
    from neural_style.protocol import Accepted, Client

    width, height = 6000, 4000
    pixels = bytes(range(256)) * (width * height * 4 // 256)
    harness.emit(WorkerEvent.model_changed(ModelState(loaded=True, device="cpu")))
    with Client(harness.endpoint, timeout=30) as client:
        events = client.stylize(ImageData.raw(pixels, width, height, 4), [ImageData.raw(rgb_bytes(8, 8), 8, 8, 3)],
                                {**FAST, "size": 0, "iterations": 1}, request_id="big")
        assert isinstance(next(events), Accepted)
        job = harness.jobs.take(timeout=30)
        assert job is not None and job.request.params.size == 0 and job.request.content is not None
        received = job.request.content
        assert (received.width, received.height, len(received.data)) == (width, height, 96_000_000)
        harness.emit(WorkerEvent.for_job(job, Result("big", ImageData.raw(received.data, width, height, 4),
                                                     Loss(1.0), 1, 1.0)))
        del received, job
        result = next(event for event in events if isinstance(event, Result))
    assert result.image is not None and (result.image.width, result.image.height) == (width, height)
    assert len(result.image.data) == 96_000_000 and bytes(result.image.data[-256:]) == bytes(range(256))


def test_the_worker_names_running_out_of_memory_and_serves_on(worker, monkeypatch):
    """The engine's OOM test (oom_retry.is_out_of_memory) decides, so the CPU allocator's wording counts too."""
    import neural_style.daemon.engine as engine

    def exhausted(*args: Any, **kwargs: Any) -> None:
        raise RuntimeError("[enforce fail at alloc_cpu.cpp:117] DefaultCPUAllocator: can't allocate memory")

    monkeypatch.setattr(engine, "stylize", exhausted)
    job = Job(b"client", "huge", _request(iterations=2))
    worker._jobs.put(job)
    (event,) = _until_terminal(_events(worker))
    error = decode_reply(event.message.frames)
    assert isinstance(error, Error) and (error.id, error.code) == ("huge", "internal")
    assert error.message.startswith("out of memory on cpu")
    monkeypatch.undo()
    job = Job(b"client", "after", _request(iterations=2))
    worker._jobs.put(job)
    assert isinstance(decode_reply(_until_terminal(_events(worker))[-1].message.frames), Result)
