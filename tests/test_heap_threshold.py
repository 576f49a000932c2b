"""daemon/engine/heap_threshold.py: with glibc's mmap threshold pinned, freed tensor-sized blocks leave the process.

Each case runs in a fresh interpreter (the threshold is process-wide, and pytest's own heap is not the
case's). The control, the same allocations unpinned, shows glibc keeping them: what made a CPU job
under ``--max-memory`` peak above its plan (docs/PERFORMANCE.md).
"""
from __future__ import annotations

import os
import platform
import subprocess
import sys

import pytest

pytestmark = pytest.mark.skipif(sys.platform != "linux" or platform.libc_ver()[0] != "glibc",
                                reason="mallopt's mmap threshold is glibc's (Linux)")

ALLOCATIONS = """
import ctypes, ctypes.util, os, sys
from neural_style.daemon.engine.heap_threshold import pin_mmap_threshold
libc = ctypes.CDLL(ctypes.util.find_library("c"))
libc.malloc.restype, libc.malloc.argtypes = ctypes.c_void_p, [ctypes.c_size_t]
libc.free.argtypes = [ctypes.c_void_p]
def rss():
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
pinned = pin_mmap_threshold() if sys.argv[1] == "pin" else None
MiB = 1 << 20
libc.free(libc.malloc(8 * MiB))  # an mmapped block freed: unpinned, glibc raises its threshold past 8 MiB
blocks = [libc.malloc(8 * MiB) for _ in range(8)]
for block in blocks:
    ctypes.memset(block, 1, 8 * MiB)
keep = libc.malloc(64)  # allocated after them: the heap's top stays in use
before = rss()
for block in blocks:
    libc.free(block)
print(pinned, (before - rss()) // MiB)
"""


def run(mode: str, **env: str) -> tuple[str, int]:
    environment = {k: v for k, v in os.environ.items() if k not in ("MALLOC_MMAP_THRESHOLD_", "GLIBC_TUNABLES")} | env
    done = subprocess.run([sys.executable, "-c", ALLOCATIONS, mode], capture_output=True, text=True, timeout=60,
                          env=environment)
    assert done.returncode == 0, done.stderr
    pinned, released = done.stdout.split()
    return pinned, int(released)


#: RSS moves by a page or two around the frees (the interpreter's own small allocations), so the figures are
#: read in whole blocks: released means nearly all 64 MiB came back, kept means less than one 8 MiB block did.
RELEASED_MIB = range(60, 65)
KEPT_MIB = range(-7, 8)


def test_pinned_freed_blocks_leave_the_process_and_unpinned_they_stay():
    pinned, released = run("pin")
    assert pinned == "True" and released in RELEASED_MIB
    assert run("leave")[1] in KEPT_MIB, "glibc kept the freed blocks: the control"


@pytest.mark.parametrize("setting", [{"MALLOC_MMAP_THRESHOLD_": "65536"},
                                     {"GLIBC_TUNABLES": "glibc.malloc.arena_max=2:glibc.malloc.mmap_threshold=65536"}])
def test_a_threshold_the_user_set_is_left_alone(setting: dict[str, str]):
    pinned, released = run("pin", **setting)
    assert pinned == "False" and released in RELEASED_MIB  # glibc applied the user's own value
