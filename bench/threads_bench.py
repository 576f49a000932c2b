#!/usr/bin/env python3
"""CPU thread policies of the daemon, with and without a competing CPU-bound process (issue 10, item 9).

One real daemon per policy (``--weights random --device cpu``), all started before measuring.  In
each repetition the machine is first left alone ("idle"), then loaded by one busy-looping process
per core ("loaded"); within each condition every policy runs the same small job once per size,
in a shuffled order.  A job is timed from the request to its result by a client in this process.
Printed: the median per policy, size and condition, its ratio to torch's defaults, how much the
competing load slows each policy down, and how many cores' worth of CPU the competing processes
still got while the job ran (what GIMP beside the daemon would keep).

Policies (``serve --threads``; OMP_WAIT_POLICY set in the daemon's environment where named):
torch's defaults; N = physical cores with passive waiting; cores − 1 (at least 1) passive;
1 thread; ``load`` (fit to the idle cores before each job) passive; and ``auto``, the default.

Usage: python bench/threads_bench.py [--repeat 5] [--sizes 64,128] [--iterations 5]
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from abuse_bench import Daemon
from daemon_bench import machine

SPIN = "while True: pass"


def policies(cores: int) -> list[tuple[str, list[str], dict[str, str]]]:
    passive = {"OMP_WAIT_POLICY": "PASSIVE"}
    chosen = [("torch defaults", ["--threads", "torch"], {}),
              (f"{cores} (= cores), passive", ["--threads", str(cores)], passive),
              (f"{max(1, cores - 1)} (cores - 1), passive", ["--threads", str(max(1, cores - 1))], passive)]
    if cores - 1 > 1:
        chosen.append(("1, passive", ["--threads", "1"], passive))
    chosen += [("load, passive", ["--threads", "load"], passive), ("auto (the default)", [], {})]
    return chosen


def image(size: int, seed: int) -> ImageData:  # noqa: F821 - imported lazily below
    from neural_style.protocol import ImageData

    rng = np.random.default_rng(seed)
    small = rng.integers(0, 256, (size // 8, size // 8, 3), dtype=np.uint8)
    return ImageData.raw(np.kron(small, np.ones((8, 8, 1), dtype=np.uint8)).tobytes(), size, size, 3)


def cpu_seconds(pids: list[int]) -> float:
    """User + system CPU time of processes, from /proc."""
    total = 0
    for pid in pids:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        total += int(fields[11]) + int(fields[12])  # utime, stime
    return total / os.sysconf("SC_CLK_TCK")


def job_seconds(daemon: Daemon, size: int, iterations: int) -> float:
    from neural_style.protocol import Client

    with Client(daemon.endpoint, timeout=600, liveness_timeout=600) as client:
        started = time.perf_counter()
        client.stylize_blocking(image(size, 1), [image(size, 2)], {"size": size, "iterations": iterations})
        return time.perf_counter() - started


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--sizes", default="64,128")
    parser.add_argument("--iterations", type=int, default=5)
    args = parser.parse_args()
    from neural_style.daemon.server.threads import physical_cores

    cores = physical_cores()
    sizes = [int(s) for s in args.sizes.split(",")]
    print(f"machine: {machine()}; {cores} physical cores; load average {os.getloadavg()[0]:.1f} at start")
    times: dict[tuple[str, int, str], list[float]] = {}
    shares: dict[tuple[str, int], list[float]] = {}  # cores' worth of CPU the competitors got
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        for key in [k for k in os.environ if k.startswith(("OMP_", "MKL_"))]:  # each daemon gets only its own
            del os.environ[key]
        daemons = [(label, Daemon(label.split()[0], None, extra, tmp, env=env))
                   for label, extra, env in policies(cores)]
        try:
            for _label, daemon in daemons:  # warm-up: first-call set-up and the style cache
                for size in sizes:
                    job_seconds(daemon, size, args.iterations)
            for _ in range(args.repeat):
                for condition in ("idle", "loaded"):
                    spinners = [subprocess.Popen([sys.executable, "-c", SPIN]) for _ in range(cores)] \
                        if condition == "loaded" else []
                    try:
                        time.sleep(0.5)
                        order = [(label, daemon, size) for label, daemon in daemons for size in sizes]
                        random.shuffle(order)
                        for label, daemon, size in order:
                            before = cpu_seconds([p.pid for p in spinners])
                            seconds = job_seconds(daemon, size, args.iterations)
                            times.setdefault((label, size, condition), []).append(seconds)
                            if spinners:
                                shares.setdefault((label, size), []).append(
                                    (cpu_seconds([p.pid for p in spinners]) - before) / seconds)
                    finally:
                        for spinner in spinners:
                            spinner.kill()
                            spinner.wait()
        finally:
            for _, daemon in daemons:
                daemon.stop()
    print(f"load average {os.getloadavg()[0]:.1f} at the end; {args.repeat} repetitions, medians in seconds, "
          f"{args.iterations} iterations (L-BFGS, default layers)\n")
    for size in sizes:
        base = {c: statistics.median(times[("torch defaults", size, c)]) for c in ("idle", "loaded")}
        print(f"{size} px        policy                     idle   (÷ torch)   loaded  (÷ torch)   loaded ÷ idle"
              f"   competitors' cores")
        for label, _, _ in policies(cores):
            idle = statistics.median(times[(label, size, "idle")])
            loaded = statistics.median(times[(label, size, "loaded")])
            share = statistics.median(shares[(label, size)])
            print(f"  {label:<36} {idle:6.2f}   ({idle / base['idle']:5.2f})   {loaded:6.2f}  "
                  f"({loaded / base['loaded']:5.2f})   {loaded / idle:6.1f}          {share:4.2f} of {cores}")
        print()
    return 0


if __name__ == "__main__":
    sys.exit(main())
