"""Seconds per iteration: today's engine against its first release, paired in one process (issue 19).

The first release's engine (``--release``, default the last engine commit of 2026-11-23) is taken from
git into a temporary package (its imports are all relative, so it runs under any name) and both run
the same job, alternating: Tübingen and Starry Night at ``--size`` px, one scale, the default noise
start, L-BFGS. A run's cost per iteration is (time of N iterations − time of 5) / (N − 5), which
cancels what a job pays once (targets, planning). ``--profile`` prints cProfile's top entries of one
run of today's engine instead.

    python bench/per_iteration_bench.py [--size 192] [--iterations 45] [--repeats 5] [--threads 2]
"""
from __future__ import annotations

import argparse
import cProfile
import importlib
import io
import platform
import pstats
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path

import torch

from neural_style.daemon.engine import StyleParams, optimize, random_vgg19, stylize
from neural_style.daemon.image_files import load_image

ROOT = Path(__file__).resolve().parents[1]
#: The clock of every timing (--clock): the process's CPU time by default.
CLOCK = time.process_time
SHARED = ROOT.parent / "shared" / "images"
RELEASE = "e51522f"  # "Worker: know missing weights by type…", the first day's last engine change


def first_release(revision: str, into: Path):
    """The engine package at ``revision``, importable as ``first_release_engine``."""
    archive = subprocess.run(["git", "-C", str(ROOT), "archive", revision, "daemon/engine"], check=True,
                             capture_output=True).stdout
    with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
        tar.extractall(into, filter="data")
    (into / "daemon" / "engine").rename(into / "first_release_engine")
    sys.path.insert(0, str(into))
    return importlib.import_module("first_release_engine")


def timed(run, iterations: int) -> float:
    began = CLOCK()
    run(iterations)
    return CLOCK() - began


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", type=int, default=192)
    parser.add_argument("--iterations", type=int, default=45)
    parser.add_argument("--clock", choices=("cpu", "wall"), default="cpu",
                        help="seconds: the process's CPU time (user + sys; steadier beside other work) or wall time")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--style-weight", type=float, default=4e6)
    parser.add_argument("--release", default=RELEASE)
    parser.add_argument("--profile", action="store_true")
    args = parser.parse_args()
    global CLOCK
    CLOCK = time.process_time if args.clock == "cpu" else time.perf_counter
    torch.set_num_threads(args.threads)
    content, style = load_image(SHARED / "tubingen.jpg"), load_image(SHARED / "starry_night.jpg")
    model = random_vgg19(0)
    params = StyleParams(size=args.size, style_weight=args.style_weight, progress_every=10)

    def today(n: int, optimiser: optimize.OptimiserSettings = optimize.ENGINE) -> None:
        stylize(model, content, [style], params.replace(iterations=n), on_progress=lambda e: None,
                optimiser=optimiser)

    def today_unboxed(n: int) -> None:
        today(n, optimize.PAPER)  # one scale: nothing to carry, so only the box differs

    if args.profile:
        today(5)
        profile = cProfile.Profile()
        profile.enable()
        today(args.iterations)
        profile.disable()
        pstats.Stats(profile).sort_stats("tottime").print_stats(25)
        return 0

    with tempfile.TemporaryDirectory() as folder:
        old = first_release(args.release, Path(folder))
        old_model = old.random_vgg19(0)
        old_params = old.StyleParams(size=args.size, style_weight=args.style_weight, progress_every=10)

        def release(n: int) -> None:
            old.stylize(old_model, content, [style], old_params.replace(iterations=n), on_progress=lambda e: None)

        runs = {"first release": release, "today, box off (the paper's L-BFGS)": today_unboxed, "today (engine)": today}
        for run in runs.values():
            run(2)  # warm-up: first-call set-up of each
        per: dict[str, list[float]] = {name: [] for name in runs}
        print(f"machine: {platform.processor() or platform.machine()}, torch {torch.__version__}, {args.threads} "
              f"threads; {args.size} px, ({args.iterations} − 5) / {args.iterations - 5}, release {args.release}")
        for repeat in range(args.repeats):
            order = list(runs.items()) if repeat % 2 == 0 else list(runs.items())[::-1]
            for name, run in order:
                per[name].append((timed(run, args.iterations) - timed(run, 5)) / (args.iterations - 5))
            print(f"repeat {repeat + 1}: " + ", ".join(f"{k} {v[-1]:.4f}" for k, v in per.items()), flush=True)
    base = statistics.median(per["first release"])
    print("\n| engine | s/iteration, median (min) | against the first release |")
    print("| --- | --- | --- |")
    for name, values in per.items():
        print(f"| {name} | {statistics.median(values):.4f} ({min(values):.4f}) | "
              f"{statistics.median(values) / base:.3f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
