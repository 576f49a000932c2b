"""glibc's mmap threshold, pinned so that a CPU run under ``--max-memory`` stays under it.

Why: glibc serves a large allocation with mmap and returns it to the system when freed, but it raises
its threshold to the size of every mmapped block that is freed (up to 32 MiB). After the first few
tensors, a block's activations then come from the heap, where freed space is kept and fragments: the
process's RSS, which ``max_memory`` caps on a CPU, ended up to 10 % above the plan's prediction
(docs/PERFORMANCE.md, "A job under a small --max-memory"). Setting ``M_MMAP_THRESHOLD`` fixes the
threshold (and turns that adjustment off), so every tensor above it is mapped and unmapped on its own:
the same job peaked 300–450 MiB lower per scale. ``stylize`` pins it for the first CPU job that asks
for a budget (the daemon's limit or the request's), and only then, since mapping each large tensor
afresh costs page faults; the setting is the process's, so it stays for later jobs.
"""
from __future__ import annotations

import ctypes
import ctypes.util
import functools
import logging
import os

log = logging.getLogger(__name__)

#: glibc's mallopt parameter number for the mmap threshold (malloc.h).
M_MMAP_THRESHOLD = -3
#: 128 KiB: glibc's own starting threshold, the value measured in docs/PERFORMANCE.md.
PINNED_THRESHOLD = 128 * 1024
#: Where the user already chose one, it is theirs: glibc's old variable, or its tunable in GLIBC_TUNABLES.
ENVIRONMENT_VARIABLE = "MALLOC_MMAP_THRESHOLD_"
TUNABLE = "glibc.malloc.mmap_threshold"


def user_chose_threshold() -> bool:
    """Whether this process's environment already gave glibc an mmap threshold."""
    tunables = os.environ.get("GLIBC_TUNABLES", "")
    return bool(os.environ.get(ENVIRONMENT_VARIABLE)) or any(
        setting.partition("=")[0] == TUNABLE for setting in tunables.split(":"))


@functools.cache  # once per process: the setting is the process's
def pin_mmap_threshold(threshold: int = PINNED_THRESHOLD) -> bool:
    """Fix glibc's mmap threshold at ``threshold`` bytes for this process; False where that is not possible
    (not glibc, e.g. macOS or musl) or not wanted (the user set one: glibc already applied it)."""
    if user_chose_threshold():
        return False
    name = ctypes.util.find_library("c")
    if name is None:
        return False
    try:
        mallopt = ctypes.CDLL(name).mallopt
    except (OSError, AttributeError):  # a C library without mallopt
        return False
    mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    if mallopt(M_MMAP_THRESHOLD, threshold) != 1:
        return False
    log.info("memory budget: glibc's mmap threshold pinned at %d KiB, so that freed tensors leave the process",
             threshold // 1024)
    return True
