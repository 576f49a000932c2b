"""The one thread that owns the device: loads the model, then runs jobs in order.

Why one thread: a GPU (or the CPU's cores) does one style transfer at a time
best, CUDA state belongs to the thread that made it, and running jobs strictly
in order makes queue positions honest.  The worker never touches the ROUTER
socket: it reports through ``events`` (a thread-safe queue) and pokes the
socket loop awake over an ``inproc`` PAIR socket that only this thread uses.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Union

import zmq

from neural_style.daemon.errors import WeightsNotFound
from neural_style.protocol.errors import ErrorCode

from .decode import ImageProblem, decode_request_image, encode_result
from .jobs import Job, JobQueue
from .style_cache import StyleTargetCache
from .threads import ThreadController, ThreadPolicy

__all__ = [
    "ModelSettings", "ModelReady", "ModelFailed", "JobStarted", "JobProgress", "JobFinished",
    "Event", "Worker",
]

log = logging.getLogger("neural_style.daemon.server.worker")


@dataclass(frozen=True)
class ModelSettings:
    """How to load and run VGG19 (the ``--weights``, ``--weights-format``, ``--device``, ``--threads`` options)."""

    weights: str | None = None
    weights_format: str = "torchvision"
    device: str = "auto"
    seed: int = 0
    threads: ThreadPolicy = field(default_factory=ThreadPolicy)


# ------------------------------------------------------------------ events to the socket loop
@dataclass
class ModelReady:
    device: str
    description: str


@dataclass
class ModelFailed:
    code: str
    message: str


@dataclass
class JobStarted:
    job: Job


@dataclass
class JobProgress:
    job: Job
    iteration: int
    iterations: int
    loss: dict[str, float]
    elapsed: float
    preview: tuple[bytes, int, int, int] | None = None


@dataclass
class JobFinished:
    """Terminal outcome: ``image`` and the result fields, or ``error_code`` and ``error_message``."""

    job: Job
    image: tuple[bytes, int, int, int] | None = None
    loss: dict[str, float] = field(default_factory=dict)
    iterations: int = 0
    elapsed: float = 0.0
    cache_hits: int = 0
    cache_misses: int = 0
    error_code: str | None = None
    error_message: str = ""


Event = Union[ModelReady, ModelFailed, JobStarted, JobProgress, JobFinished]

Loader = Callable[[ModelSettings], Any]


def default_loader(settings: ModelSettings) -> Any:
    """Load VGG19 with the lead's ``load_model`` (imported here: torch is heavy)."""
    from neural_style.daemon.weights import load_model

    return load_model(settings.weights, weights_format=settings.weights_format,
                      device=settings.device, seed=settings.seed)


def _is_out_of_memory(exc: BaseException) -> bool:
    import torch

    oom = getattr(torch.cuda, "OutOfMemoryError", ())
    return (bool(oom) and isinstance(exc, oom)) or "out of memory" in str(exc).lower()


class Worker(threading.Thread):
    """Runs ``JobQueue`` jobs on the model; every job it takes ends in one ``JobFinished``."""

    def __init__(self, ctx: zmq.Context, wake_endpoint: str, jobs: JobQueue, settings: ModelSettings,
                 cache: StyleTargetCache, max_pixels: int, loader: Loader = default_loader) -> None:
        super().__init__(name="neural-style-worker", daemon=True)
        self.events: queue.SimpleQueue[Event] = queue.SimpleQueue()
        self._ctx = ctx
        self._wake_endpoint = wake_endpoint
        self._jobs = jobs
        self._settings = settings
        self._cache = cache
        self._max_pixels = max_pixels
        self._loader = loader
        self._shutdown = threading.Event()
        self._wake: zmq.Socket | None = None
        self.model: Any = None

    # ------------------------------------------------------------------ control (any thread)
    def stop(self) -> None:
        """Stop after the current iteration; the queue must be drained by the caller."""
        self._shutdown.set()

    # ------------------------------------------------------------------ thread body
    def run(self) -> None:
        self._wake = self._ctx.socket(zmq.PAIR)
        self._wake.setsockopt(zmq.LINGER, 0)
        self._wake.connect(self._wake_endpoint)
        try:
            threads = ThreadController(self._settings.threads)
            log.info("%s", threads.configure())
            if self._load():
                while not self._shutdown.is_set():
                    job = self._jobs.take(timeout=0.2)
                    if job is not None:
                        threads.before_job()
                        self._run_job(job)
            else:
                self._refuse_jobs()
        finally:
            self._wake.close()

    def _emit(self, event: Event) -> None:
        self.events.put(event)
        try:
            assert self._wake is not None
            self._wake.send(b"", zmq.NOBLOCK)
        except zmq.Again:  # the loop has unread wake-ups: it will drain the queue anyway
            pass

    def _load(self) -> bool:
        started = time.monotonic()
        try:
            self.model = self._loader(self._settings)
        except Exception as exc:  # WeightsNotFound or an unreadable/corrupt weights file
            if isinstance(exc, WeightsNotFound):
                log.error("no VGG19 weights: %s", exc)
            else:
                log.exception("loading the model failed")
            self._emit(ModelFailed(ErrorCode.NO_WEIGHTS.value, str(exc) or type(exc).__name__))
            return False
        loaded = time.monotonic()
        self._warm_up()
        device = str(getattr(self.model, "device", "cpu"))
        description = str(getattr(self.model, "description", "") or "vgg19")
        log.info("model ready on %s: loaded in %.2fs, warmed up in %.2fs: %s", device, loaded - started,
                 time.monotonic() - loaded, description)
        self._emit(ModelReady(device, description))
        return True

    def _warm_up(self) -> None:
        """Run a tiny job through every layer once, so the first real request does not pay for the
        math libraries' first-call set-up (oneDNN/cuDNN primitives, allocators, thread pools):
        measured on CPU it roughly halves the first request's time to result."""
        import torch

        from neural_style.daemon.engine import Cancelled, StyleParams, stylize

        try:
            generator = torch.Generator().manual_seed(0)
            image = torch.rand(3, 32, 32, generator=generator)
            stylize(self.model, image, [image], StyleParams(iterations=2, size=32, progress_every=1, preview=True),
                    on_progress=lambda _p: None, should_stop=self._shutdown.is_set)
        except Cancelled:  # shutting down already
            pass
        except Exception:  # warming up is an optimisation; a failure here must not stop the daemon
            log.warning("warm-up run failed; the first job will be slower", exc_info=True)

    def _refuse_jobs(self) -> None:
        """Without a model every job that was queued while loading ends in no_weights."""
        while not self._shutdown.is_set():
            job = self._jobs.take(timeout=0.2)
            if job is not None:
                job.timings.started = time.monotonic()
                self._emit(JobFinished(job, error_code=ErrorCode.NO_WEIGHTS.value,
                                       error_message="the daemon has no VGG19 weights loaded"))

    def _should_stop(self, job: Job) -> bool:
        return job.cancel_event.is_set() or self._shutdown.is_set()

    def _run_job(self, job: Job) -> None:
        from neural_style.daemon.engine import Cancelled, ParamError, stylize

        job.timings.started = time.monotonic()
        if self._should_stop(job):
            self._emit(JobFinished(job, error_code=ErrorCode.CANCELLED.value,
                                   error_message=job.cancel_reason or "the daemon is shutting down"))
            return
        self._emit(JobStarted(job))
        request = job.request
        try:
            content = (decode_request_image(request.content, self._max_pixels)
                       if request.content is not None else None)
            styles = [decode_request_image(s, self._max_pixels) for s in request.styles]
            job.timings.decoded = time.monotonic()
            # the request's frames (up to max_message_bytes) are not needed any more: free them
            # now rather than when a long job ends
            request.content, request.styles = None, []

            def on_progress(progress: Any) -> None:
                preview = encode_result(progress.image) if progress.image is not None else None
                self._emit(JobProgress(job, progress.iteration, progress.iterations,
                                       progress.loss.as_dict(), progress.elapsed, preview))

            result = stylize(self.model, content, styles, request.params, style_blend=request.style_blend,
                             on_progress=on_progress,
                             should_stop=lambda: self._should_stop(job), target_cache=self._cache)
            image = encode_result(result.image)
        except Cancelled as exc:
            reason = job.cancel_reason or "the daemon is shutting down"
            self._finish(job, JobFinished(job, error_code=ErrorCode.CANCELLED.value,
                                          error_message=f"{reason} (after {exc.iteration} iterations)",
                                          iterations=exc.iteration))
        except ImageProblem as exc:
            self._finish(job, JobFinished(job, error_code=exc.code, error_message=str(exc)))
        except ParamError as exc:
            self._finish(job, JobFinished(job, error_code=ErrorCode.BAD_REQUEST.value,
                                          error_message=f"params: {exc}"))
        except Exception as exc:
            if _is_out_of_memory(exc):
                log.error("%s ran out of memory: %s", job.label(), exc)
                message = f"out of memory on {getattr(self.model, 'device', 'the device')}: try a smaller size"
            else:
                log.exception("%s failed", job.label())
                message = f"{type(exc).__name__}: {exc}"
            self._finish(job, JobFinished(job, error_code=ErrorCode.INTERNAL.value, error_message=message))
        else:
            self._finish(job, JobFinished(job, image=image, loss=result.loss.as_dict(),
                                          iterations=result.iterations, elapsed=result.elapsed,
                                          cache_hits=result.style_cache_hits,
                                          cache_misses=result.style_cache_misses))

    def _finish(self, job: Job, event: JobFinished) -> None:
        job.timings.finished = time.monotonic()
        if job.timings.decoded is None:
            job.timings.decoded = job.timings.finished
        self._emit(event)
