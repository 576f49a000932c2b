"""The one thread that owns the device: loads the model, then runs jobs in order.

Why one thread: a GPU (or the CPU's cores) does one style transfer at a time
best, CUDA state belongs to the thread that made it, and running jobs strictly
in order makes queue positions honest.  The worker never touches the ROUTER
socket: it reports through ``events`` (a thread-safe queue of ``WorkerEvent``,
each job message already built and encoded here, see ``events.py``) and pokes the
socket loop awake over an ``inproc`` PAIR socket that only this thread uses.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

import zmq

from neural_style.daemon.local_errors import WeightsNotFound
from neural_style.protocol.errors import CodedError, ErrorCode, code_value
from neural_style.protocol.image_data import ImageData
from neural_style.protocol.messages import Error, Progress, Result

from .admission import wire_field
from .decode import decode_masks, decode_previous, decode_request_image, encode_result
from .events import JobMessage, ModelState, WorkerEvent
from .jobs import Job, JobQueue
from .style_cache import StyleTargetCache
from .threads import ThreadController, ThreadPolicy

__all__ = ["ModelSettings", "Worker", "JobRunner", "JobContext", "execute_job", "warm_up", "default_loader"]

log = logging.getLogger("neural_style.daemon.server.worker")


@dataclass(frozen=True)
class ModelSettings:
    """How to load and run VGG19 (the ``--weights``, ``--weights-format``, ``--device``, ``--threads`` options)."""

    weights: str | None = None
    weights_format: str = "torchvision"
    device: str = "auto"
    seed: int = 0
    threads: ThreadPolicy = field(default_factory=ThreadPolicy)


Loader = Callable[[ModelSettings], Any]


class JobRunner(Protocol):
    """What the socket loop needs of whoever runs its jobs: the local ``Worker`` thread, or the
    cluster's dispatcher (``daemon/cluster/dispatcher.py``) with ``slots`` jobs at once."""

    events: queue.SimpleQueue[WorkerEvent]
    jobs: JobQueue  # what it takes jobs from
    slots: int

    def start(self) -> None: ...

    def stop(self) -> None: ...

    def join(self, timeout: float | None = None) -> None: ...

    def is_alive(self) -> bool: ...

Send = Callable[[Job, JobMessage, str], None]


@dataclass(frozen=True)
class JobContext:
    """What running one job needs besides the job: the model, its style-target cache, the pixel
    bound for decoding, where the job's messages go (``send(job, message, log_detail)``) and when
    to stop (cancel or shutdown, read between iterations)."""

    model: Any
    cache: StyleTargetCache  # this worker's own style targets, kept between its jobs
    max_pixels: int
    send: Send
    should_stop: Callable[[], bool]


def default_loader(settings: ModelSettings) -> Any:
    """Load VGG19 with the lead's ``load_model`` (imported here: torch is heavy)."""
    from neural_style.daemon.weights import load_model

    return load_model(settings.weights, weights_format=settings.weights_format,
                      device=settings.device, seed=settings.seed)


class Worker(threading.Thread):
    """Runs ``JobQueue`` jobs on the model; every job it takes ends in one terminal ``WorkerEvent``."""

    def __init__(self, ctx: zmq.Context, wake_endpoint: str, jobs: JobQueue, settings: ModelSettings,
                 cache: StyleTargetCache, max_pixels: int, loader: Loader = default_loader) -> None:
        super().__init__(name="neural-style-worker", daemon=True)
        self.events: queue.SimpleQueue[WorkerEvent] = queue.SimpleQueue()
        self._ctx = ctx
        self._wake_endpoint = wake_endpoint
        self._jobs = self.jobs = jobs
        self._settings = settings
        self._cache = cache
        self._max_pixels = max_pixels
        self._loader = loader
        self._shutdown = threading.Event()
        self._wake: zmq.Socket | None = None
        self.model: Any = None
        self._load_failure = ""  # the loader's message the last time it found no usable weights
        self.slots = 1  # one job at a time on the one device

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
            loaded = self._load()
            while not self._shutdown.is_set():
                job = self._jobs.take(timeout=0.2)
                if job is None:
                    continue
                # Without a model, look for the weights again at every job: a user who put the file where
                # the message said runs again and must not have to find and stop a daemon they never started.
                loaded = loaded or self._load()
                if not loaded:
                    self._refuse(job)
                    continue
                threads.before_job()
                self._run_job(job)
        finally:
            self._wake.close()

    def _emit(self, event: WorkerEvent) -> None:
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
            self._load_failure = str(exc) or type(exc).__name__
            if isinstance(exc, WeightsNotFound):
                log.error("no VGG19 weights: %s", exc)
            else:
                log.exception("loading the model failed")
            self._emit(WorkerEvent.model_changed(ModelState(failed=self._load_failure, device=self._settings.device,
                                                            refuse_at_admission=False)))  # looks again per job
            return False
        loaded = time.monotonic()
        warm_up(self.model, self._shutdown.is_set)
        device = str(getattr(self.model, "device", "cpu"))
        description = str(getattr(self.model, "description", "") or "vgg19")
        log.info("model ready on %s: loaded in %.2fs, warmed up in %.2fs: %s", device, loaded - started,
                 time.monotonic() - loaded, description)
        self._emit(WorkerEvent.model_changed(ModelState(loaded=True, device=device, description=description)))
        return True

    def _refuse(self, job: Job) -> None:
        """A job the weights were looked for again, and not found for: no_weights, with the loader's words."""
        job.timings.started = time.monotonic()
        _fail(self._send, job, ErrorCode.NO_WEIGHTS, self._load_failure or "the daemon has no VGG19 weights loaded")

    def _should_stop(self, job: Job) -> bool:
        return job.cancel_event.is_set() or self._shutdown.is_set()

    def _send(self, job: Job, message: JobMessage, detail: str = "") -> None:
        """Build the event of ``message`` (encoded here, routed by the loop) and hand it over."""
        self._emit(WorkerEvent.for_job(job, message, detail))

    def _run_job(self, job: Job) -> None:
        execute_job(job, JobContext(self.model, self._cache, self._max_pixels, self._send,
                                    lambda: self._should_stop(job)))


def warm_up(model: Any, should_stop: Callable[[], bool]) -> None:
    """Run a tiny job through every layer once, so the first real request does not pay for the
    math libraries' first-call set-up (oneDNN/cuDNN primitives, allocators, thread pools):
    measured on CPU it roughly halves the first request's time to result."""
    import torch

    from neural_style.daemon.engine import Cancelled, StyleParams, stylize

    try:
        generator = torch.Generator().manual_seed(0)
        image = torch.rand(3, 32, 32, generator=generator)
        stylize(model, image, [image], StyleParams(iterations=2, size=32, progress_every=1, preview=True),
                on_progress=lambda _p: None, should_stop=should_stop)
    except Cancelled:  # shutting down already
        pass
    except Exception:  # warming up is an optimisation; a failure here must not stop the daemon
        log.warning("warm-up run failed; the first job will be slower", exc_info=True)


def execute_job(job: Job, context: JobContext) -> None:
    """Run ``job`` on ``context.model``: decode its images, call the engine with progress and
    preview callbacks, and end it with exactly one ``result`` or ``error`` through ``context.send``.

    Why a function: the local ``Worker`` thread and a cluster worker (``daemon/cluster/actor.py``)
    run a job the same way; only where the messages go differs."""
    from neural_style.daemon.engine import Cancelled, ParamError, stylize
    from neural_style.daemon.engine.oom_retry import is_out_of_memory

    job.timings.started = time.monotonic()
    if context.should_stop():
        _fail(context.send, job, ErrorCode.CANCELLED, job.cancel_reason or "the daemon is shutting down")
        return
    request = job.request
    try:
        content = (decode_request_image(request.content, context.max_pixels, "content")
                   if request.content is not None else None)
        styles = [decode_request_image(s, context.max_pixels, f"styles[{i}]") for i, s in enumerate(request.styles)]
        start_image, temporal = decode_previous(content, request.previous, request.params, context.max_pixels,
                                                request.earlier)
        masks = decode_masks(request.style_masks, context.max_pixels, "style_masks")
        source_masks = decode_masks(request.style_source_masks, context.max_pixels, "style_source_masks")
        job.timings.decoded = time.monotonic()
        # the request's frames (up to max_message_bytes) are not needed any more: free them
        # now rather than when a long job ends
        request.content, request.styles, request.previous, request.earlier = None, [], None, None
        request.style_masks = request.style_source_masks = None

        def on_progress(progress: Any) -> None:
            job.iteration = progress.iteration  # read by the loop for status
            preview = ImageData.raw(*encode_result(progress.image)) if progress.image is not None else None
            context.send(job, Progress.of(job.request_id, progress, image=preview), "")

        def on_plan(plan: Any) -> None:  # one line per job: its scales and each scale's memory plan
            log.info("%s plan: %s", job.label(), "; ".join(plan.describe()))

        result = stylize(context.model, content, styles, request.params, style_blend=request.style_blend,
                         on_progress=on_progress, on_plan=on_plan,
                         should_stop=context.should_stop, target_cache=context.cache,
                         start_image=start_image, temporal=temporal, style_masks=masks,
                         style_source_masks=source_masks)
        image = ImageData.raw(*encode_result(result.image))
    except Cancelled as exc:
        reason = job.cancel_reason or "the daemon is shutting down"
        _fail(context.send, job, ErrorCode.CANCELLED, f"{reason} (after {exc.iteration} iterations)")
    except CodedError as exc:  # an image the daemon cannot use
        _fail(context.send, job, exc.code, exc.message, exc.field)
    except ParamError as exc:
        _fail(context.send, job, ErrorCode.BAD_REQUEST, f"params: {exc}", wire_field(exc))
    except Exception as exc:
        if is_out_of_memory(exc):
            log.error("%s ran out of memory: %s", job.label(), exc)
            message = f"out of memory on {getattr(context.model, 'device', 'the device')}: try a smaller size"
        else:
            log.exception("%s failed", job.label())
            message = f"{type(exc).__name__}: {exc}"
        _fail(context.send, job, ErrorCode.INTERNAL, message)
    else:
        _stop_clock(job, result.iterations)
        rate = result.iterations / result.elapsed if result.elapsed > 0 else 0.0
        cache = context.cache.stats()
        detail = (f"; {result.iterations} iterations ({rate:.2f} it/s) at {image.width}x{image.height}, "
                  f"loss {result.loss.total:.4g}, style cache {result.style_cache_hits} hit(s) "
                  f"{result.style_cache_misses} miss(es) [{cache.entries} entries, {cache.bytes / 2**20:.1f} MiB]")
        context.send(job, Result.of(job.request_id, result, image=image), detail)


def _fail(send: Send, job: Job, code: ErrorCode | str, message: str, field: str | None = None) -> None:
    """End ``job`` with an ``error`` (``field``: the request's field it is about, when one is to blame)."""
    _stop_clock(job)
    send(job, Error(job.request_id, code_value(code), message, field), f": {message}")


def _stop_clock(job: Job, iterations: int = 0) -> None:
    job.timings.finished = time.monotonic()
    if job.timings.decoded is None:
        job.timings.decoded = job.timings.finished
    job.iteration = max(job.iteration, iterations)
