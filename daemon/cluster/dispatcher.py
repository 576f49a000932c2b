"""The front's side of the cluster: jobs from the ``JobQueue`` to a pool of Ray workers.

Why it stands where the local ``Worker`` thread stands: the socket loop (``server/router.py``) keeps
admission, limits, outboxes, heartbeats and CURVE, and reads the same ``events`` queue of
``WorkerEvent``; only who runs the jobs changes.  One *slot* thread per worker takes the next job,
starts it on its actor, long-polls the actor for the job's messages (every wait bounded), forwards a
cancel, and ends the job with exactly one terminal message whatever happens in the cluster: an
actor that dies or stops answering mid-job is replaced and the job retried once on the next free
worker, else it ends in ``worker_lost``; a cluster that cannot be reached makes the front refuse
jobs with ``cluster_unavailable`` while it keeps answering ``ping``, and retries joining.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from pathlib import Path
from typing import Any

import zmq

from neural_style.daemon.server.events import JobMessage, ModelState, WorkerEvent
from neural_style.daemon.server.jobs import Job, JobQueue
from neural_style.protocol.errors import ErrorCode
from neural_style.protocol.messages import Error, Progress

from .actor import StyleWorker, WorkerInfo, WorkerSpec, is_terminal, portable_request
from .affinity import StyleAffinity, style_key
from .connect import ClusterSettings, ClusterUnavailable, connect, disconnect

__all__ = ["ClusterDispatcher"]

log = logging.getLogger("neural_style.daemon.cluster")

POLL_WAIT = 0.1  # seconds a worker holds a poll open for the job's next message
RETRY_INTERVAL = 5.0  # seconds between attempts to join the cluster or replace a worker
SHUTDOWN_MESSAGE = "the daemon is shutting down"


class ClusterDispatcher(threading.Thread):
    """Runs ``JobQueue`` jobs on ``settings.workers`` Ray actors; every job it takes ends in one terminal event."""

    def __init__(self, ctx: zmq.Context, wake_endpoint: str, jobs: JobQueue, settings: ClusterSettings,
                 spec: WorkerSpec) -> None:
        super().__init__(name="neural-style-cluster", daemon=True)
        self.events: queue.SimpleQueue[WorkerEvent] = queue.SimpleQueue()
        self.slots = settings.workers
        self._ctx = ctx
        self._wake_endpoint = wake_endpoint
        self._jobs = self.jobs = jobs
        self._settings = settings
        self._spec = spec
        self._shutdown = threading.Event()
        self._wake: zmq.Socket | None = None
        self._wake_lock = threading.Lock()
        self._state_lock = threading.Lock()
        self._ready: dict[int, WorkerInfo] = {}
        self._actors: dict[int, Any] = {}
        self._ray: Any = None
        self._remote: Any = None
        self._weights: Any = None
        self._unavailable: str | None = None
        self._affinity = StyleAffinity(self.slots, spec.cache_entries)
        self._handoff: list[queue.SimpleQueue[Job]] = [queue.SimpleQueue() for _ in range(self.slots)]

    # ------------------------------------------------------------------ control (any thread)
    def stop(self) -> None:
        """Cancel the running jobs and leave the cluster (the queue is drained by the caller)."""
        self._shutdown.set()

    def workers(self) -> list[WorkerInfo]:
        with self._state_lock:
            return list(self._ready.values())

    # ------------------------------------------------------------------ thread body
    def run(self) -> None:
        self._wake = self._ctx.socket(zmq.PAIR)
        self._wake.setsockopt(zmq.LINGER, 0)
        self._wake.connect(self._wake_endpoint)
        try:
            if self._join():
                slots = [threading.Thread(target=self._serve_slot, args=(i,), name=f"neural-style-slot-{i}",
                                          daemon=True) for i in range(self.slots)]
                for slot in slots:
                    slot.start()
                while not self._shutdown.is_set():
                    self._refuse_while_unavailable()
                    self._shutdown.wait(0.2)
                for slot in slots:  # each forwards the cancel of its job and waits (bounded) for its end
                    slot.join(self._settings.cancel_timeout + 2.0)
                for index in range(self.slots):  # a job handed over as its slot stopped
                    self._end_handed_off(index)
                self._leave()
        finally:
            self._wake.close()

    def _join(self) -> bool:
        """Join the cluster, retrying every RETRY_INTERVAL s; False when shut down before it answered."""
        while not self._shutdown.is_set():
            try:
                self._ray = connect(self._settings)
            except ClusterUnavailable as exc:
                log.error("%s; refusing jobs, retrying in %.0fs", exc, RETRY_INTERVAL)
                self._set_unavailable(str(exc))
                deadline = time.monotonic() + RETRY_INTERVAL
                while time.monotonic() < deadline and not self._shutdown.is_set():
                    self._refuse_while_unavailable()
                    self._shutdown.wait(0.2)
                continue
            self._remote = self._actor_class()
            self._weights = self._weights_for_nodes()
            return True
        return False

    def _actor_class(self) -> Any:
        """``StyleWorker`` as a Ray actor: one GPU each where the cluster has GPUs, else CPU threads."""
        gpus = self._ray.cluster_resources().get("GPU", 0)
        resources: dict[str, Any] = {"num_gpus": 1} if gpus >= 1 else {"num_cpus": self._spec.threads}
        # threaded: poll and cancel are answered while the job runs; no automatic restart, the
        # slot replaces a lost worker itself (so that it knows the job on it was lost)
        return self._ray.remote(max_concurrency=4, max_restarts=0, **resources)(StyleWorker)

    def _weights_for_nodes(self) -> Any:
        """The front's weights file in the object store, for nodes that have no copy of it."""
        path = self._spec.model.weights
        if path is None or path == "random" or not Path(path).expanduser().is_file():
            return None
        data = Path(path).expanduser().read_bytes()
        log.info("weights %s (%.0f MiB) in the object store for workers whose node lacks the file",
                 path, len(data) / 2**20)
        return self._ray.put(data)

    def _leave(self) -> None:
        for actor in list(self._actors.values()):
            self._kill(actor)
        self._actors.clear()
        disconnect(self._ray)
        log.info("left the Ray cluster%s", " (the local cluster is stopped)" if self._settings.local else "")

    # ------------------------------------------------------------------ events
    def _emit(self, event: WorkerEvent) -> None:
        self.events.put(event)
        with self._wake_lock:
            try:
                assert self._wake is not None
                self._wake.send(b"", zmq.NOBLOCK)
            except zmq.Again:  # the loop has unread wake-ups: it will drain the queue anyway
                pass

    def _send(self, job: Job, message: JobMessage, detail: str = "") -> None:
        self._emit(WorkerEvent.for_job(job, message, detail))

    def _end(self, job: Job, code: ErrorCode, message: str) -> None:
        job.timings.finished = time.monotonic()
        if job.timings.started is None:
            job.timings.started = job.timings.finished
        self._send(job, Error(job.request_id, code.value, message), f": {message}")

    def _set_unavailable(self, reason: str) -> None:
        with self._state_lock:
            changed = self._unavailable != reason
            self._unavailable = reason
        if changed:
            self._emit(WorkerEvent.model_changed(ModelState(failed=reason, device="ray",
                                                            refusal=ErrorCode.CLUSTER_UNAVAILABLE.value,
                                                            refuse_at_admission=True)))

    def _announce(self) -> None:
        """The model state ``pong`` shows: how many workers are ready, where."""
        with self._state_lock:
            ready = list(self._ready.values())
            self._unavailable = None if ready else self._unavailable
        if not ready:
            self._set_unavailable("no Ray worker is ready (the cluster lost them, or cannot place them)")
            return
        devices = sorted({w.device for w in ready})
        self._emit(WorkerEvent.model_changed(ModelState(
            loaded=True, device=f"ray: {len(ready)} worker(s) on {', '.join(devices)}",
            description=ready[0].description)))

    def _refuse_while_unavailable(self) -> None:
        """With no worker to run them, queued jobs end in ``cluster_unavailable`` instead of waiting."""
        with self._state_lock:
            reason = self._unavailable if not self._ready else None
        if reason is None:
            return
        while (job := self._jobs.take(timeout=0)) is not None:
            self._end(job, ErrorCode.CLUSTER_UNAVAILABLE, reason)

    # ------------------------------------------------------------------ one slot: one worker
    def _serve_slot(self, index: int) -> None:
        actor: Any = None
        while not self._shutdown.is_set():
            if actor is None:
                actor = self._new_worker(index)
                if actor is None:
                    self._shutdown.wait(RETRY_INTERVAL)
                    continue
            job = self._next_job(index)
            if job is None:
                continue
            self._affinity.ran(index, style_key(job.request))
            if self._run(actor, job, self._ready[index]):
                continue
            self._drop_worker(index, actor)  # lost (or stuck past its cancel): a fresh one takes its place
            actor = None
        self._end_handed_off(index)

    def _next_job(self, index: int) -> Job | None:
        """This slot's next job: one another slot handed it (its worker has the job's style targets), else
        the queue's next, unless an idle worker that has that job's style takes it (style-affine routing)."""
        handed = self._handoff[index]
        try:
            return handed.get_nowait()
        except queue.Empty:
            pass
        self._affinity.waiting(index)
        job = self._jobs.take(timeout=0.2)
        if not self._affinity.busy(index):  # another slot claimed this worker for a job meanwhile
            if job is not None:
                self._jobs.requeue(job)  # back at the head: the next free slot takes it
            try:
                return handed.get(timeout=self._settings.poll_timeout)  # the claimer puts it right after
            except queue.Empty:  # pragma: no cover - the claim and the put are one step apart
                return None
        if job is None:
            return None
        other = self._affinity.claim(index, style_key(job.request))
        if other is None:
            return job
        log.info("%s goes to worker-%d, which has its style targets", job.label(), other + 1)
        self._handoff[other].put(job)
        return None

    def _end_handed_off(self, index: int) -> None:
        """Jobs handed to this slot that it will not run (shut down): each still ends in one message."""
        while True:
            try:
                job = self._handoff[index].get_nowait()
            except queue.Empty:
                return
            self._end(job, ErrorCode.CANCELLED, job.cancel_reason or SHUTDOWN_MESSAGE)

    def _new_worker(self, index: int) -> Any:
        name = f"worker-{index + 1}"
        try:
            actor = self._remote.remote(name, self._spec, self._weights)
            self._actors[index] = actor
            info = self._ray.get(actor.info.remote(), timeout=self._settings.ready_timeout)
        except Exception as exc:
            log.error("%s could not start: %s: %s", name, type(exc).__name__, exc)
            if index in self._actors:
                self._kill(self._actors.pop(index))
            self._announce()
            return None
        with self._state_lock:
            self._ready[index] = info
        log.info("%s ready: pid %d on node %s, %s", name, info.pid, info.node, info.device)
        self._announce()
        return actor

    def _drop_worker(self, index: int, actor: Any) -> None:
        self._affinity.forget(index)
        with self._state_lock:
            self._ready.pop(index, None)
        self._actors.pop(index, None)
        self._kill(actor)
        self._announce()

    def _kill(self, actor: Any) -> None:
        try:
            self._ray.kill(actor, no_restart=True)
        except Exception:  # already dead, or the cluster is gone
            pass

    def _run(self, actor: Any, job: Job, info: WorkerInfo) -> bool:
        """Run ``job`` on ``actor`` to its terminal message; False when the worker was lost (or had
        to be killed), the job then retried once or ended here."""
        settings = self._settings
        job.worker = info.name
        job.timings.started = time.monotonic()
        if job.cancelled or self._shutdown.is_set():
            self._end(job, ErrorCode.CANCELLED, job.cancel_reason or SHUTDOWN_MESSAGE)
            return True
        cancel_deadline: float | None = None
        try:
            started = self._ray.get(actor.start.remote(job.request_id, portable_request(job.request)),
                                    timeout=settings.poll_timeout)
            if not started:
                raise RuntimeError(f"{info.name} is still running another job")
            job.timings.decoded = time.monotonic()
            while True:
                if cancel_deadline is None and (job.cancelled or self._shutdown.is_set()):
                    actor.cancel.remote(job.cancel_reason or SHUTDOWN_MESSAGE)
                    cancel_deadline = time.monotonic() + settings.cancel_timeout
                for message, detail in self._ray.get(actor.poll.remote(POLL_WAIT), timeout=settings.poll_timeout):
                    if isinstance(message, Progress):
                        job.iteration = message.iteration
                    if is_terminal(message):
                        job.timings.finished = time.monotonic()
                        self._send(job, message, f"{detail} on {info.name}")
                        return True
                    self._send(job, message)
                if cancel_deadline is not None and time.monotonic() > cancel_deadline:
                    log.warning("%s did not stop within %.0fs of its cancel; killing %s", job.label(),
                                settings.cancel_timeout, info.name)
                    self._end(job, ErrorCode.CANCELLED, job.cancel_reason or SHUTDOWN_MESSAGE)
                    return False
        except Exception as exc:  # the actor died (SIGKILL, node lost) or stopped answering
            cause = f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"
            log.error("%s lost %s mid-job: %s", info.name, job.label(), cause)
        if job.cancelled or self._shutdown.is_set():
            self._end(job, ErrorCode.CANCELLED, job.cancel_reason or SHUTDOWN_MESSAGE)
        elif job.retries == 0:
            job.retries, job.worker, job.iteration = 1, "", 0
            log.warning("%s retried on the next free worker", job.label())
            self._jobs.requeue(job)
        else:
            self._end(job, ErrorCode.WORKER_LOST,
                      f"the cluster worker running this job was lost ({info.name}, after a retry)"
                      if job.retries else f"the cluster worker running this job was lost ({info.name})")
        return False
