"""Style-affine routing: which worker already holds a job's style targets (issue 16's option).

Why: each worker keeps its own style-target cache, so a job whose style a worker computed before costs
that worker nothing for the style (its Gram targets at every scale) and costs any other worker all of it.
When a slot takes a job whose style it has not seen and another worker that has seen it is idle, the job
goes to that one instead. The dispatcher owns the threads; this is the bookkeeping alone, behind one lock,
so a unit test drives it without Ray: which styles each worker ran (bounded like its cache), which slots
are idle, and the claim that hands a job to an idle slot so that no two hands reach it at once.
"""
from __future__ import annotations

import hashlib
import threading
from collections import OrderedDict

from neural_style.daemon.server.jobs import StylizeRequest

__all__ = ["style_key", "StyleAffinity"]


def style_key(request: StylizeRequest) -> str:
    """What decides a job's style targets: the style images' bytes and blend, the style layers, the size
    (the worker's cache keys on more, e.g. the scales; a job routed on a near miss only loses the shortcut)."""
    digest = hashlib.sha1()
    for image in request.styles:
        digest.update(memoryview(image.data).cast("B"))
        digest.update(f"|{image.width}x{image.height}x{image.channels}|{image.encoding}|".encode())
    params = request.params
    digest.update(repr((request.style_blend, params.style_layers, params.size, params.style_scale)).encode())
    return digest.hexdigest()


class StyleAffinity:
    """Per slot: the style keys of the jobs its worker ran (the newest ``remember`` of them) and whether it waits."""

    def __init__(self, slots: int, remember: int = 64) -> None:
        self._lock = threading.Lock()
        self._seen: list[OrderedDict[str, None]] = [OrderedDict() for _ in range(slots)]
        self._idle: set[int] = set()
        self._remember = max(1, remember)

    def ran(self, slot: int, key: str) -> None:
        """Slot ``slot``'s worker computed (or reused) the targets of ``key``."""
        with self._lock:
            seen = self._seen[slot]
            seen[key] = None
            seen.move_to_end(key)
            while len(seen) > self._remember:
                seen.popitem(last=False)

    def forget(self, slot: int) -> None:
        """The slot's worker was replaced: its cache is gone."""
        with self._lock:
            self._seen[slot].clear()
            self._idle.discard(slot)

    def waiting(self, slot: int) -> None:
        """The slot has a ready worker and waits for its next job."""
        with self._lock:
            self._idle.add(slot)

    def busy(self, slot: int) -> bool:
        """The slot took a job from the queue; False when another slot claimed it for a job meanwhile
        (it then runs that one first and puts its own back at the head of the queue)."""
        with self._lock:
            if slot not in self._idle:
                return False
            self._idle.discard(slot)
            return True

    def claim(self, slot: int, key: str) -> int | None:
        """An idle slot other than ``slot`` whose worker has ``key`` (``slot``'s own has not), now marked busy;
        None when the job is best run where it is."""
        with self._lock:
            if key in self._seen[slot]:
                return None
            for other in sorted(self._idle):
                if other != slot and key in self._seen[other]:
                    self._idle.discard(other)
                    return other
            return None
