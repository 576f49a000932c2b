"""How much memory a run may still take on its device: the planner's budget.

CUDA: free device memory plus what torch's caching allocator holds unused. MPS: Metal's recommended
working-set size less what is allocated. CPU: the kernel's MemAvailable (Linux), else free pages,
else half the physical memory. An explicit ``max_memory`` caps the process's total (RSS on the CPU,
torch's allocations on a GPU): the budget is then that cap less what is already in use.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import torch

#: Assumed when a platform reports no memory figure at all (the source says so in the job log).
UNKNOWN_RAM_ASSUMED = 2 << 30


@dataclass(frozen=True)
class Budget:
    """Bytes a run may add on top of what the process already uses, and where the figure came from."""

    bytes: int
    source: str


def memory_budget(device: torch.device | str, max_memory: int | None = None) -> Budget:
    device = torch.device(device)
    if device.type == "cuda":
        free, _total = torch.cuda.mem_get_info(device)
        in_use = torch.cuda.memory_allocated(device)
        available, source = free + torch.cuda.memory_reserved(device) - in_use, "free CUDA memory"
    elif device.type == "mps":
        in_use = torch.mps.current_allocated_memory()
        available, source = torch.mps.recommended_max_memory() - torch.mps.driver_allocated_memory(), "MPS working set"
    else:
        in_use = process_rss()
        available, source = available_ram()
    if max_memory is None:
        return Budget(max(0, available), source)
    capped = max_memory - in_use
    if capped < available:
        return Budget(max(0, capped), f"max_memory {max_memory / 2**30:.2f} GiB less {in_use / 2**30:.2f} GiB in use")
    return Budget(max(0, available), source)


def available_ram(meminfo: Path = Path("/proc/meminfo")) -> tuple[int, str]:
    """(bytes, how they were found) that the system can give this process without swapping."""
    if meminfo.is_file():
        available = parse_meminfo(meminfo.read_text()).get("MemAvailable")
        if available is not None:
            return available, "available RAM (MemAvailable)"
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE"), "free RAM pages"
    except (ValueError, OSError, AttributeError):
        pass
    try:
        return os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE") // 2, "half the physical RAM"
    except (ValueError, OSError, AttributeError):
        return UNKNOWN_RAM_ASSUMED, "RAM unknown here, assumed"


def parse_meminfo(text: str) -> dict[str, int]:
    """/proc/meminfo's "Name:  1234 kB" lines → bytes by name."""
    out: dict[str, int] = {}
    for line in text.splitlines():
        name, _, rest = line.partition(":")
        fields = rest.split()
        if fields and fields[0].isdigit():
            out[name.strip()] = int(fields[0]) * (1024 if fields[1:2] == ["kB"] else 1)
    return out


def process_rss() -> int:
    """This process's resident memory now (0 where the platform does not say)."""
    try:
        pages = int(Path("/proc/self/statm").read_text().split()[1])
    except (OSError, ValueError, IndexError):
        return 0
    return pages * os.sysconf("SC_PAGE_SIZE")
