"""glibc's heap for a CPU job: freed tensors leave the process under a memory budget, and stay for reuse without one.

Under ``--max-memory`` (``pin_mmap_threshold``): glibc serves a large allocation with mmap and returns it
to the system when freed, but it raises its threshold to the size of every mmapped block that is freed
(up to 32 MiB). After the first few
tensors, a block's activations then come from the heap, where freed space is kept and fragments: the
process's RSS, which ``max_memory`` caps on a CPU, ended up to 10 % above the plan's prediction
(docs/PERFORMANCE.md, "A job under a small --max-memory"). Setting ``M_MMAP_THRESHOLD`` fixes the
threshold (and turns that adjustment off), so every tensor above it is mapped and unmapped on its own:
the same job peaked 300–450 MiB lower per scale. ``stylize`` pins it for the first CPU job that asks
for a budget (the daemon's limit or the request's), and only then, since mapping each large tensor
afresh costs page faults; the setting is the process's, so it stays for later jobs.

Without a budget (``freed_blocks_kept``): glibc maps every block over 32 MiB afresh, so each evaluation of a
large image faults in and zeroes gigabytes of new pages (a 1024×768 feature map of 64 channels is 200 MB): at
1024×768 a third of the single-scale job's CPU time went to the kernel. During such a job every block comes
from the heap and what is freed stays there, so the next evaluation reuses the pages: the same job 32 % faster,
its peak RSS 16 % higher (docs/PERFORMANCE.md, "Time to quality, fifth session"). Only glibc's main arena
can hold a block over 64 MiB without mmap, so ``share_one_arena`` makes the threads an entry point starts
afterwards allocate from it.
"""
from __future__ import annotations

import ctypes
import ctypes.util
import functools
import logging
import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager

log = logging.getLogger(__name__)

#: glibc's mallopt parameter numbers (malloc.h).
M_TRIM_THRESHOLD, M_MMAP_THRESHOLD, M_MMAP_MAX, M_ARENA_MAX = -1, -3, -4, -8
#: glibc's defaults for what a job without a budget changes, restored after it (malloc/malloc.c).
DEFAULT_MMAP_MAX = 65536
DEFAULT_TRIM_THRESHOLD = 128 * 1024
#: M_TRIM_THRESHOLD's largest value (a C int): the heap's free top is never given back during the job.
NEVER_TRIM = 2**31 - 1
#: A job keeps its freed blocks only where this many times each scale's predicted peak fits the scale's
#: budget: the heap's fragmentation raised the peak RSS by 16 % at 1024×768 (docs/PERFORMANCE.md).
KEPT_HEAP_HEADROOM = 1.5
#: 128 KiB: glibc's own starting threshold, the value measured in docs/PERFORMANCE.md.
PINNED_THRESHOLD = 128 * 1024
#: Where the user already chose one, it is theirs: glibc's old variable, or its tunable in GLIBC_TUNABLES.
ENVIRONMENT_VARIABLE = "MALLOC_MMAP_THRESHOLD_"
TUNABLE = "glibc.malloc.mmap_threshold"
#: … and for what a job without a budget changes: the number of mmapped blocks, the trim threshold, the arenas.
KEPT_HEAP_SETTINGS = (("MALLOC_MMAP_MAX_", "glibc.malloc.mmap_max"), ("MALLOC_TRIM_THRESHOLD_",
                                                                      "glibc.malloc.trim_threshold"))
ARENA_SETTING = ("MALLOC_ARENA_MAX", "glibc.malloc.arena_max")


def _user_chose(variable: str, tunable: str) -> bool:
    """Whether this process's environment already gave glibc this setting (its old variable or its tunable)."""
    tunables = os.environ.get("GLIBC_TUNABLES", "")
    return bool(os.environ.get(variable)) or any(setting.partition("=")[0] == tunable
                                                 for setting in tunables.split(":"))


def user_chose_threshold() -> bool:
    """Whether this process's environment already gave glibc an mmap threshold."""
    return _user_chose(ENVIRONMENT_VARIABLE, TUNABLE)


@functools.cache  # the C library's functions, once: None where they are not glibc's
def _libc() -> ctypes.CDLL | None:
    name = ctypes.util.find_library("c")
    if name is None:
        return None
    try:
        libc = ctypes.CDLL(name)
        libc.mallopt.argtypes, libc.mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
        libc.malloc_trim.argtypes, libc.malloc_trim.restype = [ctypes.c_size_t], ctypes.c_int
    except (OSError, AttributeError):  # not glibc (macOS, musl): no mallopt or no malloc_trim
        return None
    return libc


@functools.cache  # once per process: the setting is the process's
def pin_mmap_threshold(threshold: int = PINNED_THRESHOLD) -> bool:
    """Fix glibc's mmap threshold at ``threshold`` bytes for this process; False where that is not possible
    (not glibc, e.g. macOS or musl) or not wanted (the user set one: glibc already applied it)."""
    libc = _libc()
    if user_chose_threshold() or libc is None:
        return False
    if libc.mallopt(M_MMAP_THRESHOLD, threshold) != 1:
        return False
    log.info("memory budget: glibc's mmap threshold pinned at %d KiB, so that freed tensors leave the process",
             threshold // 1024)
    return True


@functools.cache  # once per process
def share_one_arena() -> bool:
    """Make the threads this process starts from now on allocate from glibc's main arena, where
    ``freed_blocks_kept`` can keep a large block (another arena's heaps hold at most 64 MiB, so its larger
    blocks are mapped afresh whatever mmap's limit). For an entry point (``neural-style``, a cluster worker)
    to call before it starts the thread that runs jobs; False where not glibc or the user chose the arenas."""
    libc = _libc()
    if libc is None or _user_chose(*ARENA_SETTING):
        return False
    return bool(libc.mallopt(M_ARENA_MAX, 1) == 1)


_kept_lock = threading.Lock()
_kept_jobs = 0  # the jobs inside ``freed_blocks_kept`` now: the settings are the process's


@contextmanager
def freed_blocks_kept(wanted: bool = True) -> Iterator[bool]:
    """While inside, glibc serves every block from its heap and keeps what is freed, so that the next
    evaluation reuses its pages instead of faulting in fresh ones; afterwards mapping is allowed again and
    ``malloc_trim`` hands the free pages back. Yields whether the settings are in force (False: not wanted,
    not glibc, or the user set them). For a CPU job without a memory budget: with one, freed tensors must
    leave the process instead (``pin_mmap_threshold``)."""
    global _kept_jobs
    libc = _libc() if wanted else None
    if libc is None or any(_user_chose(*setting) for setting in KEPT_HEAP_SETTINGS):
        yield False
        return
    with _kept_lock:
        _kept_jobs += 1
        if _kept_jobs == 1:
            libc.mallopt(M_MMAP_MAX, 0)
            libc.mallopt(M_TRIM_THRESHOLD, NEVER_TRIM)
    try:
        yield True
    finally:
        with _kept_lock:
            _kept_jobs -= 1
            if _kept_jobs == 0:
                libc.mallopt(M_MMAP_MAX, DEFAULT_MMAP_MAX)
                libc.mallopt(M_TRIM_THRESHOLD, DEFAULT_TRIM_THRESHOLD)
                libc.malloc_trim(0)
