"""A bounded LRU mapping for the engine's style-target (Gram matrix) cache.

Why: the engine memoises each style image's Gram targets into whatever
``MutableMapping`` the caller hands it as ``target_cache``.  A warm daemon
serves many requests that reuse the same style (a GIMP user tweaks the
content or the strength and re-runs), so keeping those targets skips one
forward pass per style per request.  Left unbounded the mapping would grow
with every new style image a client ever sends, on the device's memory, so
it evicts the least recently used entries past a count and a byte budget.

Only the worker thread writes to it; a lock keeps the statistics that the
socket loop reads (``status``) consistent.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Hashable, Iterator, MutableMapping
from dataclasses import dataclass
from typing import Any

__all__ = ["CacheUsage", "StyleTargetCache", "estimate_bytes"]


def estimate_bytes(value: Any, _depth: int = 0) -> int:
    """Bytes held by the tensors inside ``value`` (tensors, sequences, maps, dataclasses).

    Why: the engine decides what a cache entry looks like; we only need a fair
    estimate of its memory to keep the cache inside its byte budget.  Objects
    that hold no tensors count as zero, which is right for their small size.
    """
    if _depth > 8 or value is None:
        return 0
    nbytes = getattr(value, "nbytes", None)
    if isinstance(nbytes, int) and hasattr(value, "shape"):  # torch.Tensor, numpy arrays
        return nbytes
    if hasattr(value, "element_size") and hasattr(value, "nelement"):
        return int(value.element_size() * value.nelement())
    if isinstance(value, (bytes, bytearray, memoryview)):
        return len(value)
    if isinstance(value, dict):
        return sum(estimate_bytes(v, _depth + 1) for v in value.values())
    if isinstance(value, (list, tuple, set, frozenset)):
        return sum(estimate_bytes(v, _depth + 1) for v in value)
    fields = getattr(value, "__dict__", None)
    if isinstance(fields, dict):
        return sum(estimate_bytes(v, _depth + 1) for v in fields.values())
    return 0


@dataclass(frozen=True)
class CacheUsage:
    """A snapshot of the cache for ``status`` replies and logs."""

    entries: int
    bytes: int
    max_entries: int
    max_bytes: int
    evictions: int


class StyleTargetCache(MutableMapping):
    """LRU mapping bounded by entry count and by the bytes of the tensors it holds.

    A lookup (``cache[key]`` or ``key in cache`` followed by a read) marks the entry as
    recently used.  An entry larger than the whole byte budget is not kept at all: storing
    it would only evict everything else.
    """

    def __init__(self, max_entries: int = 64, max_bytes: int = 512 * 1024 * 1024) -> None:
        if max_entries < 0 or max_bytes < 0:
            raise ValueError("cache bounds must be >= 0")
        self.max_entries = max_entries
        self.max_bytes = max_bytes
        self._data: OrderedDict[Hashable, tuple[Any, int]] = OrderedDict()
        self._bytes = 0
        self._evictions = 0
        self._lock = threading.RLock()

    def __getitem__(self, key: Hashable) -> Any:
        with self._lock:
            value, _size = self._data[key]
            self._data.move_to_end(key)
            return value

    def __setitem__(self, key: Hashable, value: Any) -> None:
        size = estimate_bytes(value)
        with self._lock:
            if key in self._data:
                self._bytes -= self._data.pop(key)[1]
            if self.max_entries == 0 or size > self.max_bytes:
                return
            self._data[key] = (value, size)
            self._bytes += size
            self._shrink()

    def __delitem__(self, key: Hashable) -> None:
        with self._lock:
            self._bytes -= self._data.pop(key)[1]

    def __contains__(self, key: object) -> bool:
        with self._lock:
            return key in self._data

    def __iter__(self) -> Iterator[Hashable]:
        with self._lock:
            return iter(list(self._data))

    def __len__(self) -> int:
        with self._lock:
            return len(self._data)

    def clear(self) -> None:
        with self._lock:
            self._data.clear()
            self._bytes = 0

    @property
    def nbytes(self) -> int:
        with self._lock:
            return self._bytes

    def stats(self) -> CacheUsage:
        with self._lock:
            return CacheUsage(
                entries=len(self._data),
                bytes=self._bytes,
                max_entries=self.max_entries,
                max_bytes=self.max_bytes,
                evictions=self._evictions,
            )

    def _shrink(self) -> None:
        while self._data and (len(self._data) > self.max_entries or self._bytes > self.max_bytes):
            _key, (_value, size) = self._data.popitem(last=False)
            self._bytes -= size
            self._evictions += 1
