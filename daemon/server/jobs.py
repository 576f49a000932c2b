"""Job records, the request a job runs, and the FIFO queue between the socket loop and the worker.

Why: the loop accepts, cancels and reports on jobs while the worker runs
them, so the two threads share exactly this: a queue with a lock and
condition, and per-job ``threading.Event`` flags that the engine's
``should_stop`` reads between iterations.  Everything else a job holds is
written by one thread only (the loop before queuing, the worker while running).
"""

from __future__ import annotations

import itertools
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from enum import Enum

from neural_style.daemon.engine.params import StyleParams
from neural_style.protocol.image_data import ImageData
from neural_style.protocol.messages import Earlier, Previous

__all__ = ["JobState", "Job", "JobQueue", "JobTimings", "StylizeRequest"]


@dataclass
class StylizeRequest:
    """A stylize request as the daemon runs it, the daemon's one request type: the wire's ``Stylize``
    becomes one in ``admission.py`` (validated engine parameters, the still-encoded images within this
    daemon's limits, and the styles' blend beside the styles, as on the wire and in the engine's
    ``stylize``); a ``Job`` carries it to the worker, which drops the images once decoded."""

    params: StyleParams
    content: ImageData | None
    styles: list[ImageData]
    style_blend: tuple[float, ...] | None = None
    previous: Previous | None = None  # a sequence's previous frame (content and result), still encoded
    earlier: list[Earlier] | None = None  # its long-term frames (offsets 2, …), still encoded
    style_masks: list[ImageData | None] | None = None  # a region per style (issue 17), still encoded
    style_source_masks: list[ImageData | None] | None = None  # the part of each style image to use

_serial = itertools.count(1)


class JobState(str, Enum):
    """A job's state; the unfinished ones (all but DONE) are the protocol's ``JOB_STATES`` (a test checks)."""

    QUEUED = "queued"
    RUNNING = "running"
    DONE = "done"


@dataclass
class JobTimings:
    """Monotonic timestamps and durations of a job, for the per-job log line."""

    received: float = field(default_factory=time.monotonic)
    started: float | None = None
    decoded: float | None = None
    finished: float | None = None

    def summary(self) -> str:
        """e.g. "waited 0.00s, decode 0.01s, run 1.23s" (only the parts that happened)."""
        parts = []
        if self.started is not None:
            parts.append(f"waited {self.started - self.received:.2f}s")
            if self.decoded is not None:
                parts.append(f"decode {self.decoded - self.started:.2f}s")
                if self.finished is not None:
                    parts.append(f"run {self.finished - self.decoded:.2f}s")
        end = self.finished if self.finished is not None else time.monotonic()
        parts.append(f"total {end - self.received:.2f}s")
        return ", ".join(parts)


@dataclass(eq=False)
class Job:
    """One accepted stylize request, from ``accepted`` to its single terminal message."""

    client: bytes  # ROUTER routing id of the connection that sent it
    request_id: str
    request: StylizeRequest
    serial: int = field(default_factory=lambda: next(_serial))
    state: JobState = JobState.QUEUED
    cancel_event: threading.Event = field(default_factory=threading.Event)
    cancel_reason: str = ""
    timings: JobTimings = field(default_factory=JobTimings)
    iteration: int = 0  # last reported, for status
    terminal_sent: bool = False  # set by the loop: exactly one terminal message per job
    worker: str = ""  # the cluster worker running it (``status``); "" on a single-device daemon
    retries: int = 0  # times a cluster job was put back after its worker was lost

    @property
    def key(self) -> tuple[bytes, str]:
        return (self.client, self.request_id)

    @property
    def iterations(self) -> int:
        return self.request.params.iterations

    @property
    def wire_state(self) -> str:
        """The state as the protocol says it of an unfinished job (``JOB_STATES``): "running" or "queued"."""
        return JobState.RUNNING.value if self.state is JobState.RUNNING else JobState.QUEUED.value

    def cancel(self, reason: str) -> None:
        """Ask the worker to stop this job between two iterations (first reason wins)."""
        if not self.cancel_event.is_set():
            self.cancel_reason = reason
            self.cancel_event.set()

    @property
    def cancelled(self) -> bool:
        return self.cancel_event.is_set()

    def label(self) -> str:
        return f"job {self.serial} id={self.request_id!r} client={self.client.hex()}"


class JobQueue:
    """A bounded FIFO of queued jobs; ``take`` blocks the worker until one arrives or the queue closes."""

    def __init__(self, max_length: int) -> None:
        self.max_length = max_length
        self._jobs: deque[Job] = deque()
        self._cond = threading.Condition()
        self._closed = False

    def put(self, job: Job) -> int | None:
        """Append ``job``; return its position (1 = next to run), or None when full or closed."""
        with self._cond:
            if self._closed or len(self._jobs) >= self.max_length:
                return None
            self._jobs.append(job)
            self._cond.notify()
            return len(self._jobs)

    def take(self, timeout: float | None = None) -> Job | None:
        """The next job (now owned by the caller), or None on timeout or when closed and empty."""
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._cond:
            while not self._jobs:
                if self._closed:
                    return None
                remaining = None if deadline is None else deadline - time.monotonic()
                if remaining is not None and remaining <= 0:
                    return None
                self._cond.wait(remaining)
            job = self._jobs.popleft()
            job.state = JobState.RUNNING
            return job

    def requeue(self, job: Job) -> None:
        """Put a taken job back at the head (its cluster worker was lost), even past ``max_length``:
        it was admitted already, and closing the queue at shutdown drains it like any other."""
        with self._cond:
            job.state = JobState.QUEUED
            self._jobs.appendleft(job)
            self._cond.notify()

    def remove(self, job: Job) -> bool:
        """Take a queued job out (cancel before it ran); False if the worker already has it."""
        with self._cond:
            try:
                self._jobs.remove(job)
            except ValueError:
                return False
            return True

    def drain(self) -> list[Job]:
        """Close the queue and return every job still waiting (shutdown)."""
        with self._cond:
            self._closed = True
            jobs = list(self._jobs)
            self._jobs.clear()
            self._cond.notify_all()
            return jobs

    def __len__(self) -> int:
        with self._cond:
            return len(self._jobs)
