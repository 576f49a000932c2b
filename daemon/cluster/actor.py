"""The Ray actor that holds one warm model and runs one job at a time (``StyleWorker``).

Why a polled actor rather than a streaming generator: the engine reports through callbacks
on its own thread, and the front must bound every wait; so the job runs on a thread inside the
actor, its messages wait in a queue, and the front long-polls ``poll`` with a timeout of its own.
``cancel`` is answered while the job runs (the actor is threaded: ``max_concurrency`` > 1) and
stops it at its next iteration, exactly as the local worker does.

This module does not import Ray: the dispatcher wraps the class with ``ray.remote``, so the
class is also a plain object that a unit test can drive.
"""

from __future__ import annotations

import logging
import os
import queue
import tempfile
import threading
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from neural_style.daemon.server.events import JobMessage
from neural_style.daemon.server.jobs import Job, StylizeRequest
from neural_style.daemon.server.style_cache import StyleTargetCache
from neural_style.daemon.server.worker import JobContext, ModelSettings, default_loader, execute_job, warm_up
from neural_style.protocol.messages import Error, Result

__all__ = ["WorkerSpec", "WorkerInfo", "StyleWorker", "portable_request"]

log = logging.getLogger("neural_style.daemon.cluster.actor")


@dataclass(frozen=True)
class WorkerSpec:
    """What every worker of the pool is built with (one pickled value for all of them)."""

    model: ModelSettings
    max_pixels: int
    cache_entries: int = 64
    cache_bytes: int = 512 * 2**20
    threads: int = 1  # CPU threads for torch on a CPU-only node (one GPU each otherwise)


@dataclass(frozen=True)
class WorkerInfo:
    """A ready worker, as ``status`` and the log name it."""

    name: str
    node: str
    pid: int
    device: str
    description: str


def portable_request(request: StylizeRequest) -> StylizeRequest:
    """The request with its images' bytes owned (received ones are memoryviews of ZeroMQ's frames,
    which cannot be pickled into Ray's object store)."""
    def own(image: Any) -> Any:
        return replace(image, data=bytes(image.data)) if not isinstance(image.data, bytes) else image

    def owned(masks: Any) -> Any:
        return [own(m) if m is not None else None for m in masks] if masks is not None else None

    return replace(request, content=own(request.content) if request.content is not None else None,
                   styles=[own(s) for s in request.styles], style_masks=owned(request.style_masks),
                   style_source_masks=owned(request.style_source_masks))


class StyleWorker:
    """One warm model, its style-target cache, and at most one running job."""

    def __init__(self, name: str, spec: WorkerSpec, weights: bytes | None = None) -> None:
        """``weights``: the front's weights file, through the object store, used only when this
        node has no file at ``spec.model.weights`` (read from the node's own disk otherwise)."""
        import torch

        from ..engine.heap_threshold import share_one_arena

        share_one_arena()  # for the threads Ray starts from now on (the engine's heap, heap_threshold.py)
        torch.set_num_threads(max(1, spec.threads))
        self.name = name
        self._spec = spec
        settings = spec.model
        path = settings.weights
        if weights is not None and path not in (None, "random") and not Path(path).expanduser().is_file():
            with tempfile.NamedTemporaryFile(prefix="vgg19-", suffix=".pth", delete=False) as handle:
                handle.write(weights)
            settings = replace(settings, weights=handle.name)
            log.info("%s: weights received from the front (%d bytes)", name, len(weights))
        started = time.monotonic()
        try:
            self.model = default_loader(settings)
        finally:
            if settings is not spec.model:  # the copy received from the front: loaded, or useless
                Path(str(settings.weights)).unlink(missing_ok=True)
        warm_up(self.model, lambda: False)
        log.info("%s: model loaded and warmed up in %.2fs", name, time.monotonic() - started)
        self._cache = StyleTargetCache(spec.cache_entries, spec.cache_bytes)
        self._messages: queue.SimpleQueue[tuple[JobMessage, str]] = queue.SimpleQueue()
        self._job: Job | None = None
        self._lock = threading.Lock()

    def info(self) -> WorkerInfo:
        try:
            import ray

            node = ray.get_runtime_context().get_node_id()[:12]
        except Exception:  # driven directly (unit test): no Ray context
            node = "local"
        return WorkerInfo(self.name, node, os.getpid(), str(getattr(self.model, "device", "cpu")),
                          str(getattr(self.model, "description", "") or "vgg19"))

    def start(self, request_id: str, request: StylizeRequest) -> bool:
        """Begin a job on a thread of its own; False when one is still running (the front's bug)."""
        with self._lock:
            if self._job is not None:
                return False
            job = Job(client=b"", request_id=request_id, request=request)
            self._job = job
        context = JobContext(self.model, self._cache, self._spec.max_pixels, self._send, job.cancel_event.is_set)
        threading.Thread(target=self._run, args=(job, context), name=f"{self.name}-job", daemon=True).start()
        return True

    def _run(self, job: Job, context: JobContext) -> None:
        try:
            execute_job(job, context)
        finally:
            with self._lock:
                self._job = None

    def _send(self, _job: Job, message: JobMessage, detail: str) -> None:
        self._messages.put((message, detail))

    def poll(self, wait: float) -> list[tuple[JobMessage, str]]:
        """The job's messages since the last poll, waiting up to ``wait`` s for the first one."""
        out: list[tuple[JobMessage, str]] = []
        try:
            out.append(self._messages.get(timeout=wait))
            while True:
                out.append(self._messages.get_nowait())
        except queue.Empty:
            pass
        return out

    def cancel(self, reason: str) -> bool:
        """Stop the running job at its next iteration; False when none runs."""
        with self._lock:
            job = self._job
        if job is None:
            return False
        job.cancel(reason)
        return True

    def pid(self) -> int:
        return os.getpid()


def is_terminal(message: JobMessage) -> bool:
    return isinstance(message, (Result, Error))
