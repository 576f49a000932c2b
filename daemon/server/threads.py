"""How many CPU threads the worker's torch uses (``serve --threads``), chosen by measurement.

Why: torch's defaults (one OpenMP thread per core, spinning while it waits) made a small CPU job
about 14 times slower as soon as anything else used the CPU, e.g. GIMP beside the daemon
(issue 10, item 9).  ``bench/threads_bench.py`` measures the policies below through real
daemons with and without a competing process; docs/PERFORMANCE.md has the figures.  What
mattered was the waiting, not the count: OpenMP threads that sleep while they wait
(``OMP_WAIT_POLICY=PASSIVE``) made jobs 4–10 times faster than torch's defaults with or
without competition, and one thread per physical core beat fewer threads while giving the
competing processes their fair share.  Policies:

* ``auto`` (default): one thread per physical core, waiting passively;
* ``torch``: leave torch's defaults alone;
* ``load``: before each job, as many threads as cores the other processes left idle since the
  previous job (at least one);
* ``N``: exactly N threads.

Torch's thread count is per process and can change between jobs; the OpenMP wait policy
(``OMP_WAIT_POLICY``) is read once, when torch loads its OpenMP runtime, so ``prepare_environment``
runs before torch is imported (``serve`` calls it first thing).
"""

from __future__ import annotations

import logging
import os
import time
from dataclasses import dataclass
from pathlib import Path

__all__ = ["ThreadPolicy", "ThreadController", "physical_cores", "THREAD_CHOICES"]

log = logging.getLogger("neural_style.daemon.server.threads")

THREAD_CHOICES = ("auto", "torch", "load")  # besides a positive number


def physical_cores() -> int:
    """Physical cores this process may run on (hyper-threads of one core count once)."""
    cpus = sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else list(range(os.cpu_count() or 1))
    cores = set()
    for cpu in cpus:
        topology = Path(f"/sys/devices/system/cpu/cpu{cpu}/topology")
        try:
            cores.add(((topology / "physical_package_id").read_text().strip(),
                       (topology / "core_id").read_text().strip()))
        except OSError:  # no sysfs (not Linux): count logical CPUs
            cores.add((str(cpu), ""))
    return max(1, len(cores))


@dataclass(frozen=True)
class ThreadPolicy:
    """A ``--threads`` value: ``mode`` is auto, torch, load or fixed (then ``count`` threads)."""

    mode: str = "auto"
    count: int = 0

    @classmethod
    def parse(cls, text: str) -> ThreadPolicy:
        text = text.strip().lower()
        if text in THREAD_CHOICES:
            return cls(text)
        try:
            count = int(text)
        except ValueError:
            raise ValueError(f"--threads must be one of {', '.join(THREAD_CHOICES)} "
                             f"or a number, not {text!r}") from None
        if count < 1:
            raise ValueError(f"--threads must be at least 1 (got {count})")
        return cls("fixed", count)

    def __str__(self) -> str:
        return str(self.count) if self.mode == "fixed" else self.mode

    def resolved(self, cores: int) -> ThreadPolicy:
        """``auto`` replaced by the measured choice for ``cores`` physical cores: one thread each."""
        return ThreadPolicy("fixed", cores) if self.mode == "auto" else self

    def prepare_environment(self, environ: os._Environ[str] | dict[str, str] = os.environ) -> None:
        """Before torch is imported: passive OpenMP waiting for every policy but ``torch`` (an explicit
        ``OMP_WAIT_POLICY`` in the environment wins)."""
        if self.mode != "torch":
            environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")


class _CpuSampler:
    """CPU time used by other processes between two calls, in cores (Linux /proc; 0 elsewhere)."""

    def __init__(self) -> None:
        self._last = self._sample()

    @staticmethod
    def _sample() -> tuple[float, float, float] | None:
        try:
            with open("/proc/stat", encoding="ascii") as f:
                fields = [int(x) for x in f.readline().split()[1:]]
        except (OSError, ValueError):
            return None
        ticks = os.sysconf("SC_CLK_TCK")
        idle = fields[3] + (fields[4] if len(fields) > 4 else 0)  # idle + iowait
        busy = (sum(fields[:8]) - idle) / ticks  # user … steal, in CPU-seconds
        own = sum(os.times()[:2])  # this process's user + system CPU-seconds
        return time.monotonic(), busy, own

    def others(self, minimum_window: float = 0.1) -> float:
        """Cores' worth of CPU the other processes used since the previous call (at least
        ``minimum_window`` seconds are measured)."""
        if self._last is None:
            return 0.0
        elapsed = time.monotonic() - self._last[0]
        if elapsed < minimum_window:
            time.sleep(minimum_window - elapsed)
        now = self._sample()
        assert now is not None
        (t0, busy0, own0), (t1, busy1, own1) = self._last, now
        self._last = now
        return max(0.0, ((busy1 - busy0) - (own1 - own0)) / max(t1 - t0, 1e-6))


class ThreadController:
    """Applies a policy from the worker thread: once before the model loads, and before every job
    for ``load``."""

    def __init__(self, policy: ThreadPolicy, cores: int | None = None) -> None:
        self.cores = cores or physical_cores()
        self.requested = policy
        self.policy = policy.resolved(self.cores)
        self._sampler = _CpuSampler() if self.policy.mode == "load" else None

    def configure(self) -> str:
        """Set torch's thread count; returns a description for the log."""
        import torch

        if self.policy.mode == "fixed":
            torch.set_num_threads(self.policy.count)
        wait = os.environ.get("OMP_WAIT_POLICY", "default")
        return (f"{torch.get_num_threads()} CPU thread(s) (--threads {self.requested}, {self.cores} physical "
                f"core(s), OpenMP wait {wait.lower()})")

    def before_job(self) -> None:
        if self._sampler is None:
            return
        import torch

        others = self._sampler.others()
        threads = max(1, min(self.cores, round(self.cores - others)))
        if threads != torch.get_num_threads():
            log.info("other processes use %.1f of %d cores: %d CPU thread(s) for the next job",
                     others, self.cores, threads)
            torch.set_num_threads(threads)
