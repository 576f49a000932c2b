"""The socket loop: one ROUTER, requests in, replies and job events out.

Why it is separate from the worker: ``ping``, ``status`` and ``cancel`` must be
answered at once while a job runs, and heartbeats must keep flowing so that a
vanished client is noticed (docs/PROTOCOL.md, section 7).  This thread owns the
ROUTER and the wake-up PAIR socket; it never runs tensor code.  The worker
reports through a thread-safe queue of ``WorkerEvent`` (``events.py``), each job
message built and encoded already, and pokes the PAIR socket; the loop routes them.

No client can hold the loop: requests are read within a budget of frames and
messages per round (``reader.py``), what a client does not read waits in its
bounded outbox (``outbox.py``), and a request whose images must be read to be judged
(PNG/JPEG masks' levels, PNG pictures' chunks) is judged on the admission pool's threads
(``admission_pool.py``) before its ``accepted`` or refusal, so every round also sends
heartbeats and replies.
"""

from __future__ import annotations

import errno
import logging
import queue
import threading
import time

import zmq

from neural_style.protocol.errors import CodedError, ErrorCode, ProtocolError
from neural_style.protocol.heartbeat import HEARTBEAT_INTERVAL
from neural_style.protocol.messages import (
    Accepted,
    Cancel,
    CancelAck,
    Error,
    Heartbeat,
    JobInfo,
    Message,
    Ping,
    Pong,
    Status,
    StatusReply,
    Stylize,
    decode_request,
)
from neural_style.protocol.wire import PROTOCOL_VERSION

from .admission import admit_stylize, judge_pixels, needs_reading
from .admission_pool import DECODERS, AdmissionPool, Admitting
from .events import ModelState, WorkerEvent
from .jobs import Job, JobQueue, JobState, StylizeRequest
from .limits import Limits
from .outbox import DEFAULT_OUTBOX_CAP, Outbox, Outgoing
from .reader import Incoming, MessageBounds, RequestReader
from .worker import JobRunner

__all__ = ["Router"]

log = logging.getLogger("neural_style.daemon.server")

SHUTDOWN_MESSAGE = "the daemon is shutting down"
FRAMES_PER_ROUND = 20_000  # about 30 ms of reading (1.5 µs a frame) before heartbeats and sends get a turn
MESSAGES_PER_ROUND = 64


class Router:
    """Serves one bound ROUTER socket until ``stop`` is set, then shuts down cleanly."""

    def __init__(self, sock: zmq.Socket, wake: zmq.Socket, jobs: JobQueue, worker: JobRunner,
                 limits: Limits, daemon_version: str, device_hint: str,
                 outbox_cap: int = DEFAULT_OUTBOX_CAP, decoders: int = DECODERS) -> None:
        self.sock = sock
        self.reader = RequestReader(sock, MessageBounds(limits.max_request_frames, limits.max_message_bytes))
        self.outbox_cap = outbox_cap
        self.wake = wake
        self.jobs = jobs
        self.worker = worker
        self.limits = limits
        self.daemon_version = daemon_version
        self.model = ModelState(device=device_hint)
        self.unfinished: dict[tuple[bytes, str], Job] = {}  # queued or running, by (client, id)
        self.admitting: dict[tuple[bytes, str], Admitting] = {}  # on the admission pool, by (client, id)
        self.admission = AdmissionPool(lambda request: judge_pixels(request, limits), decoders)
        self.outboxes: dict[bytes, Outbox] = {}
        self._next_heartbeat = time.monotonic() + HEARTBEAT_INTERVAL
        self._vanishing: set[bytes] = set()  # connections being cleaned up: nothing can reach them
        self.jobs_done = 0

    @property
    def running(self) -> list[Job]:
        """The unfinished jobs the worker (or a cluster's workers) took (``JobQueue.take`` marks them
        running), oldest first."""
        return sorted((j for j in self.unfinished.values() if j.state is JobState.RUNNING), key=lambda j: j.serial)

    @property
    def slots(self) -> int:
        """Jobs that run at once: 1 for the local worker, the pool's size on a cluster."""
        return self.worker.slots

    # ================================================================== main loop
    def serve(self, stop: threading.Event) -> None:
        poller = zmq.Poller()
        poller.register(self.sock, zmq.POLLIN)
        poller.register(self.wake, zmq.POLLIN)
        poller.register(self.admission.fileno(), zmq.POLLIN)
        while not stop.is_set():
            timeout = self._poll_timeout()
            ready = dict(poller.poll(round(timeout * 1000)))
            if self.wake in ready:
                self._drain_wake()
            self._route_events()
            if self.admission.fileno() in ready:
                self._admitted()
            if self.sock in ready or self.reader.mid_message:
                self._receive_some()
            now = time.monotonic()
            if now >= self._next_heartbeat:
                self._queue_heartbeats()
                self._next_heartbeat = now + HEARTBEAT_INTERVAL
            self._flush()

    def _poll_timeout(self) -> float:
        """Seconds to wait: until the next heartbeat, sooner when a slow client has mail, at most 0.1 s
        (so a signal handler's stop flag is seen quickly)."""
        timeout = max(0.0, min(0.1, self._next_heartbeat - time.monotonic()))
        if self.reader.mid_message:
            return 0.0
        if any(self.outboxes.values()):
            timeout = min(timeout, 0.01)
        return timeout

    def _drain_wake(self) -> None:
        while True:
            try:
                self.wake.recv(zmq.NOBLOCK)
            except zmq.Again:
                return

    def _receive_some(self) -> None:
        """Handle the requests read within this round's budget, then let events and sends have a turn."""
        for incoming in self.reader.read(FRAMES_PER_ROUND, MESSAGES_PER_ROUND):
            try:
                self._handle_request(incoming)
            except Exception:  # a bug must not take the daemon down for everyone
                log.exception("unexpected failure handling a request from %s", incoming.client.hex())
                self._reply(incoming.client, Error(incoming.request_id or "", ErrorCode.INTERNAL.value,
                                                   "the daemon failed to handle this request (see its log)"))

    # ================================================================== requests
    def _handle_request(self, incoming: Incoming) -> None:
        client = incoming.client
        if incoming.refused_code is not None:
            self._reject(client, incoming.request_id, incoming.refused_code, incoming.refused_message)
            return
        frames = incoming.frames
        try:
            request = decode_request(frames)
        except ProtocolError as exc:
            self._reject(client, exc.request_id, exc.code, exc.message, exc.field)
            return
        if isinstance(request, Ping):
            self._reply(client, self._pong(request.id))
        elif isinstance(request, Status):
            self._reply(client, self._status(client, request.id))
        elif isinstance(request, Cancel):
            self._cancel(client, request)
        elif isinstance(request, Stylize):
            self._stylize(client, request)
        else:  # pragma: no cover - decode_request only returns the four request types
            self._reject(client, request.id, ErrorCode.BAD_REQUEST.value, f"unexpected request {request!r}")

    def _reject(self, client: bytes, request_id: str | None, code: str, message: str,
                field: str | None = None) -> None:
        log.info("rejected a request from %s (id=%r): %s: %s", client.hex(), request_id, code, message)
        self._reply(client, Error(request_id or "", code, message, field))

    def _pong(self, request_id: str) -> Pong:
        return Pong(request_id, daemon_version=self.daemon_version, protocol=PROTOCOL_VERSION, device=self.model.device,
                    weights_loaded=self.model.loaded, weights=self.model.description,
                    queue_length=len(self.unfinished), limits=self.limits.describe(),
                    workers=self.slots if self.slots > 1 else None)

    def _job_info(self, job: Job, position: int, client: bytes) -> JobInfo:
        """A job as ``status`` shows it to ``client``: another connection's job keeps its progress (a
        queued client can tell how long it will wait) but not its id (PROTOCOL.md section 5)."""
        running = job.state is JobState.RUNNING
        started = job.timings.started
        elapsed = time.monotonic() - started if started is not None and running else 0.0
        request_id = job.request_id if job.client == client else ""
        return JobInfo(request_id, job.wire_state, position, job.iteration, job.iterations, elapsed,
                       job.worker if running and job.worker else None)

    def _status(self, client: bytes, request_id: str) -> StatusReply:
        """The oldest running job in ``running`` (as a v1 client expects), a cluster's others in
        ``also_running``, each naming its worker; queued positions count every running job."""
        running = self.running
        queued = sorted((j for j in self.unfinished.values() if j.state is not JobState.RUNNING),
                        key=lambda j: j.serial)
        offset = len(running)
        return StatusReply(request_id,
                           self._job_info(running[0], 0, client) if running else None,
                           [self._job_info(j, offset + i, client) for i, j in enumerate(queued)],
                           [self._job_info(j, 0, client) for j in running[1:]] if self.slots > 1 else None)

    def _position(self, job: Job) -> int:
        """Jobs that run before ``job``: the unfinished jobs accepted earlier, less the other slots
        that run beside the first (a cluster's second worker takes the second job at once)."""
        earlier = sum(1 for other in self.unfinished.values() if other.serial < job.serial)
        return max(0, earlier - (self.slots - 1))

    def _cancel(self, client: bytes, request: Cancel) -> None:
        admitting = self.admitting.get((client, request.target))
        if admitting is not None:  # not accepted yet: it ends with its one error, and no accepted
            self._reply(client, CancelAck(request.id, request.target, JobState.QUEUED.value))
            self._drop_admitting(admitting)
            self._reject(client, request.target, ErrorCode.CANCELLED.value,
                         "cancelled by the client (before it was accepted)")
            return
        job = self.unfinished.get((client, request.target))
        if job is None:
            self._reject(client, request.id, ErrorCode.NOT_FOUND.value,
                         f"no unfinished stylize job with id {request.target!r} on this connection")
            return
        self._reply(client, CancelAck(request.id, request.target, job.wire_state))
        self._cancel_job(job, "cancelled by the client")

    def _cancel_job(self, job: Job, reason: str) -> None:
        """Stop ``job``: a queued one ends here at once, a running one at its next iteration."""
        job.cancel(reason)
        if self.jobs.remove(job):
            self._end(job, ErrorCode.CANCELLED, reason)

    def _stylize(self, client: bytes, request: Stylize) -> None:
        """Admit ``request`` in the loop, then accept it, or first hand it to the admission pool when images
        must be read to judge it (``needs_reading``; ``_admitted`` accepts or refuses it when that is done)."""
        key = (client, request.id)
        outbox = self.outboxes.get(client)
        if outbox is not None and outbox.refuses_jobs:
            self._reject(client, request.id, ErrorCode.BUSY.value,
                         f"this connection has not read {len(outbox)} replies, its jobs' messages among them; "
                         f"read them before sending more jobs")
            return
        if key in self.unfinished or key in self.admitting:
            self._reject(client, request.id, ErrorCode.BAD_REQUEST.value,
                         f"id {request.id!r} is already used by an unfinished job on this connection")
            return
        # Without weights the job is queued all the same: the worker looks for them again at every job.
        # A cluster front that reaches no cluster refuses at once (cluster_unavailable).
        if self.model.failed is not None and self.model.refuse_at_admission:
            self._reject(client, request.id, self.model.refusal, self.model.failed)
            return
        try:
            admitted = admit_stylize(request, self.limits)
        except CodedError as exc:
            self._reject(client, request.id, exc.code, exc.message, exc.field)
            return
        if not needs_reading(admitted):
            self._accept(client, request.id, admitted)
        elif not self._queue_full(client, request.id):  # its place is held while the pool reads its images
            item = Admitting(client, request.id, admitted)
            self.admitting[key] = item
            log.debug("request %r from %s: its images are read off the loop before it is accepted",
                      request.id, client.hex())
            self.admission.submit(item)

    def _queue_full(self, client: bytes, request_id: str) -> bool:
        """Refuse with ``busy`` when the queue has no place, counting the requests on the admission pool."""
        # max_queue counts jobs waiting behind the running ones (one per slot): with max_queue 0 an
        # idle daemon still takes a job
        if len(self.unfinished) + self.admission.pending < self.limits.max_queue + self.slots:
            return False
        self._busy(client, request_id)
        return True

    def _busy(self, client: bytes, request_id: str) -> None:
        self._reject(client, request_id, ErrorCode.BUSY.value,
                     f"the queue is full ({self.limits.max_queue} jobs waiting); retry later")

    def _admitted(self) -> None:
        """The requests the admission pool is done with: each accepted, or refused with its error."""
        for item in self.admission.completed():
            if item.cancelled or self.admitting.get(item.key) is not item:
                continue  # ended already (cancelled, its client gone): it had its one reply
            del self.admitting[item.key]
            if isinstance(item.outcome, CodedError):
                self._reject(item.client, item.request_id, item.outcome.code, item.outcome.message,
                             item.outcome.field)
            elif item.outcome is not None:
                self._accept(item.client, item.request_id, item.outcome, item.received)

    def _drop_admitting(self, item: Admitting) -> None:
        item.cancelled = True
        self.admitting.pop(item.key, None)

    def _accept(self, client: bytes, request_id: str, admitted: StylizeRequest, received: float | None = None) -> None:
        """Queue the job of an admitted request and send its ``accepted`` (or ``busy``: no place)."""
        key = (client, request_id)
        if self._queue_full(client, request_id):
            return
        job = Job(client=client, request_id=request_id, request=admitted)
        if received is not None:  # its admission took time off the loop: the job's log line counts it
            job.timings.received = received
        if self.jobs.put(job) is None:
            self._busy(client, request_id)
            return
        self.unfinished[key] = job
        position = self._position(job)
        params = admitted.params
        log.info("%s accepted at position %d: %d iterations at %s, %d style(s)%s, memory %s, previews %s",
                 job.label(), position, params.iterations,
                 f"size {params.size}" if params.size else "the content's own size", len(admitted.styles),
                 "" if admitted.content is not None else ", texture synthesis",
                 f"{params.max_memory} MiB" if params.max_memory else "what the device gives",
                 "off" if not params.preview else f"≤ {params.preview_size} px" if params.preview_size
                 else "at the working size")
        self._reply(client, Accepted(request_id, position), essential=True)

    # ================================================================== worker events
    def _route_events(self) -> None:
        """Route what the worker reported: its messages are built and encoded already (``events.py``)."""
        events = self.worker.events
        while True:
            try:
                event = events.get_nowait()
            except queue.Empty:
                return
            self._route_event(event)

    def _route_event(self, event: WorkerEvent) -> None:
        if event.model is not None:
            self.model = event.model
            return
        job, message = event.job, event.message
        assert job is not None and message is not None
        if job.terminal_sent:  # the loop ended it already (a shutdown past its grace): nothing follows
            return
        if message.terminal:
            self._finish(job, message, event.outcome, event.detail)
        else:
            self._route(job.client, message)

    def _end(self, job: Job, code: ErrorCode, reason: str) -> None:
        """End ``job`` from the loop (it never reached the worker, or the worker did not stop in time)."""
        self._finish(job, Outgoing.of(Error(job.request_id, code.value, reason), essential=True), code.value,
                     f": {reason}")

    def _finish(self, job: Job, message: Outgoing, outcome: str, detail: str) -> None:
        """Route the single terminal message of ``job`` and log its one line."""
        self.unfinished.pop(job.key, None)
        job.state = JobState.DONE
        job.terminal_sent = True
        self.jobs_done += 1
        log.info("%s %s: %s%s", job.label(), outcome, job.timings.summary(), detail)
        self._route(job.client, message)

    # ================================================================== sending
    def _reply(self, client: bytes, message: Message, essential: bool = False) -> None:
        """Encode a message of the loop's own and route it; ``essential``: a job's ``accepted``, never dropped."""
        self._route(client, Outgoing.of(message, essential))

    def _route(self, client: bytes, item: Outgoing) -> None:
        """Send ``item`` to ``client`` now, or queue it in the client's outbox when libzmq's queue is full."""
        if client in self._vanishing:  # e.g. the `cancelled` errors of a vanished client's jobs
            return
        outbox = self.outboxes.get(client)
        if not outbox:  # the usual case: straight to libzmq, which queues up to SNDHWM messages itself
            if self._send(client, item) != "full":
                return
            outbox = self.outboxes.setdefault(client, Outbox(self.outbox_cap))
        first_drop = outbox.dropped == 0
        outbox.add(item)
        if first_drop and outbox.dropped:
            log.warning("client %s is not reading its replies: %d wait for it; dropping its oldest pings, "
                        "status and refusal replies beyond %d (job messages are kept; new jobs get 'busy')",
                        client.hex(), len(outbox), outbox.cap)

    def _queue_heartbeats(self) -> None:
        for job in list(self.unfinished.values()):
            if job.terminal_sent:
                continue
            running = job.state is JobState.RUNNING
            self._reply(job.client, Heartbeat(job.request_id, job.wire_state, 0 if running else self._position(job)))

    def _flush(self) -> None:
        for client, outbox in list(self.outboxes.items()):
            if outbox:
                self._flush_client(client, outbox)
            if not outbox and self.outboxes.get(client) is outbox:
                if outbox.dropped:
                    log.info("client %s caught up; %d of its replies were dropped meanwhile",
                             client.hex(), outbox.dropped)
                del self.outboxes[client]

    def _send(self, client: bytes, item: Outgoing) -> str:
        """One non-blocking send: "sent", "full" (libzmq's queue for ``client`` is full) or "gone"."""
        try:
            self.sock.send_multipart([client, *item.frames], flags=zmq.NOBLOCK, copy=False)
        except zmq.Again:  # alive but not reading: retry soon; progress and heartbeats coalesce meanwhile
            return "full"
        except zmq.ZMQError as exc:
            if exc.errno == errno.EHOSTUNREACH:  # its connection is closed: killed, or silent past the timeout
                self._client_gone(client)
                return "gone"
            raise
        return "sent"

    def _flush_client(self, client: bytes, outbox: Outbox) -> None:
        while outbox:
            item = outbox.peek()
            assert item is not None
            if self._send(client, item) != "sent":
                return
            outbox.pop()

    def _client_gone(self, client: bytes) -> None:
        """The connection is gone (EHOSTUNREACH): cancel its unfinished jobs, forget its mail.

        Its queued jobs end here (their ``cancelled`` errors cannot be delivered); the running
        one stops at its next iteration and the worker moves on to the next job.
        """
        if client in self._vanishing:
            return
        self._vanishing.add(client)
        try:
            self.outboxes.pop(client, None)
            for item in [a for a in self.admitting.values() if a.client == client]:
                self._drop_admitting(item)  # not accepted yet, and nothing can reach it: no reply
            # a job already cancelled (a running one still stopping) needs nothing more
            jobs = [j for j in self.unfinished.values() if j.client == client and not j.cancelled]
            if jobs:
                log.warning("client %s is gone; cancelling %d job(s)", client.hex(), len(jobs))
            for job in jobs:
                self._cancel_job(job, "the client disconnected")
        finally:
            # a routing id is not reused by a new connection unless the client sets one itself;
            # then it may come back and must be served again
            self._vanishing.discard(client)
            self.outboxes.pop(client, None)

    # ================================================================== shutdown
    def shutdown(self, grace: float = 5.0, flush: float = 2.0) -> None:
        """Cancel every job with ``cancelled``, wait up to ``grace`` s for the running one to stop,
        then give the outgoing messages up to ``flush`` s to leave.  A request still being admitted
        gets its ``cancelled`` error alone."""
        for item in list(self.admitting.values()):
            self._drop_admitting(item)
            self._reject(item.client, item.request_id, ErrorCode.CANCELLED.value, SHUTDOWN_MESSAGE)
        self.admission.close()
        for job in self.jobs.drain():
            job.cancel(SHUTDOWN_MESSAGE)
            self._end(job, ErrorCode.CANCELLED, SHUTDOWN_MESSAGE)
        for job in list(self.unfinished.values()):
            job.cancel(SHUTDOWN_MESSAGE)
        self.worker.stop()
        deadline = time.monotonic() + grace
        poller = zmq.Poller()
        poller.register(self.wake, zmq.POLLIN)
        while self.unfinished and time.monotonic() < deadline:
            if poller.poll(50):
                self._drain_wake()
            self._route_events()
            self._flush()
        for job in list(self.unfinished.values()):  # the worker did not stop in time
            log.warning("%s did not stop within %.1fs", job.label(), grace)
            self._end(job, ErrorCode.CANCELLED, SHUTDOWN_MESSAGE)
        deadline = time.monotonic() + flush
        while any(self.outboxes.values()) and time.monotonic() < deadline:
            self._flush()
            time.sleep(0.01)
