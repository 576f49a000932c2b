"""daemon/engine/heap_threshold.py: with glibc's mmap threshold pinned, freed tensor-sized blocks leave the process;
inside ``freed_blocks_kept`` blocks too large for mmap's threshold stay for reuse, and leave once it ends.

Each case runs in a fresh interpreter (the settings are process-wide, and pytest's own heap is not the
case's). The controls, the same allocations without the setting, show glibc's own behaviour: keeping
freed blocks under its threshold (what made a CPU job under ``--max-memory`` peak above its plan), and
mapping and unmapping the large ones (what cost a job without a budget its page faults).
"""
from __future__ import annotations

import os
import platform
import subprocess
import sys

import pytest

pytestmark = pytest.mark.skipif(sys.platform != "linux" or platform.libc_ver()[0] != "glibc",
                                reason="mallopt's mmap threshold is glibc's (Linux)")

#: Both cases' start: glibc's malloc and free, and this process's RSS.
PREAMBLE = """
import ctypes, ctypes.util, os, sys, threading
libc = ctypes.CDLL(ctypes.util.find_library("c"))
libc.malloc.restype, libc.malloc.argtypes = ctypes.c_void_p, [ctypes.c_size_t]
libc.free.argtypes = [ctypes.c_void_p]
def rss():
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
MiB = 1 << 20
"""

ALLOCATIONS = PREAMBLE + """
from neural_style.daemon.engine.heap_threshold import pin_mmap_threshold
pinned = pin_mmap_threshold() if sys.argv[1] == "pin" else None
libc.free(libc.malloc(8 * MiB))  # an mmapped block freed: unpinned, glibc raises its threshold past 8 MiB
blocks = [libc.malloc(8 * MiB) for _ in range(8)]
for block in blocks:
    ctypes.memset(block, 1, 8 * MiB)
keep = libc.malloc(4 * MiB)  # allocated after them, too large for an earlier gap: the heap's top stays in use
before = rss()
for block in blocks:
    libc.free(block)
print(pinned, (before - rss()) // MiB)
"""


def printed(script: str, *argv: str, **env: str) -> list[str]:
    """What ``script`` prints in a fresh interpreter, with glibc's malloc settings only from ``env``."""
    environment = {k: v for k, v in os.environ.items() if not k.startswith("MALLOC_") and k != "GLIBC_TUNABLES"}
    done = subprocess.run([sys.executable, "-c", script, *argv], capture_output=True, text=True, timeout=60,
                          env=environment | env)
    assert done.returncode == 0, done.stderr
    return done.stdout.split()


def run(mode: str, **env: str) -> tuple[str, int]:
    pinned, released = printed(ALLOCATIONS, mode, **env)
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


KEPT = PREAMBLE + """
from neural_style.daemon.engine.heap_threshold import freed_blocks_kept, share_one_arena
SIZE = 80 * MiB  # over 32 MiB (mmap's largest threshold) and 64 MiB (another arena's largest heap)
def case(out):
    with freed_blocks_kept(sys.argv[1] == "keep") as kept:
        blocks = [libc.malloc(SIZE) for _ in range(4)]
        for block in blocks:
            ctypes.memset(block, 1, SIZE)
        before = rss()
        for block in blocks:
            libc.free(block)
        during = rss()
    out.extend((kept, (before - during) // MiB, (during - rss()) // MiB))
if sys.argv[2] == "thread":
    if sys.argv[3] == "arena":
        share_one_arena()
    out = []
    worker = threading.Thread(target=case, args=(out,))
    worker.start()
    worker.join()
else:
    out = []
    case(out)
print(*out)
"""

#: Read in whole 80 MiB blocks, as above: all four (320 MiB) released, or less than one.
ALL_FOUR_MIB = range(310, 325)
NONE_MIB = range(-30, 30)


def kept_case(*argv: str, **env: str) -> tuple[str, int, int]:
    """(whether the settings were in force, MiB released by the frees, MiB released when the block ended)."""
    kept, by_frees, at_end = printed(KEPT, *argv, **env)
    return kept, int(by_frees), int(at_end)


def test_kept_blocks_stay_until_the_job_ends_and_without_it_they_are_unmapped_at_once():
    kept, by_frees, at_end = kept_case("keep", "main")
    assert kept == "True" and by_frees in NONE_MIB and at_end in ALL_FOUR_MIB  # reusable, then trimmed
    kept, by_frees, at_end = kept_case("leave", "main")
    assert kept == "False" and by_frees in ALL_FOUR_MIB, "glibc unmaps blocks over its threshold: the control"


def test_a_thread_keeps_them_only_once_the_process_shares_one_arena():
    kept, by_frees, at_end = kept_case("keep", "thread", "arena")
    assert kept == "True" and by_frees in NONE_MIB and at_end in ALL_FOUR_MIB
    kept, by_frees, _ = kept_case("keep", "thread", "own")
    assert kept == "True" and by_frees in ALL_FOUR_MIB, "a thread's own arena maps them whatever the limit"


def test_heap_settings_the_user_chose_are_left_alone():
    kept, by_frees, _ = kept_case("keep", "main", MALLOC_MMAP_MAX_="65536")
    assert kept == "False" and by_frees in ALL_FOUR_MIB
