"""GPU figures for full resolution, against the published ones, on a CUDA machine (never in CI).

1. **512² × 500 iterations** of the paper's settings (L-BFGS, whole image): jcjohnson/neural-style's
   published figure is 43 s on a Pascal Titan X (its README, "Speed").
2. **The largest sizes** (4:3) that run within 24 GB and within the whole card: for each size, the
   plan the memory planner makes (whole image or blocks), a few timed iterations at that size and the
   peak allocation. crowsonkb/style-transfer-pytorch's published figure is 2896×2172 in about 15 min
   on 24 GB (an RTX 3090): its whole top scale must fit. ``--ck-run`` adds a full coarse-to-fine run
   at 2896×2172 with ``--ck-iterations`` iterations, the comparison in time.
3. **24 MP and above** (5657×4243, 8000×6000…): seconds per iteration and peak memory.

Each figure is printed with the GPU's name, torch's and CUDA's versions. The weights' values do not
change the cost: seeded random weights unless --weights is given.

    python bench/gpu_bench.py                       # everything, on the first CUDA device
    python bench/gpu_bench.py --part 512 --part largest
    python bench/gpu_bench.py --dry-run             # the whole script at toy sizes on the CPU (a check)
"""
from __future__ import annotations

import argparse
import json
import platform
import resource
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass

PARTS = ("512", "largest", "24mp")
GiB = 1 << 30
#: 4:3 sizes from 2 MP up, each about twice the pixels of the last (2896×2172 is crowsonkb's figure).
LARGEST_SIZES = ((1536, 2048), (2172, 2896), (3000, 4000), (4243, 5657), (6000, 8000), (8485, 11314))
#: 24 MP and above.
HUGE_SIZES = ((4243, 5657), (6000, 8000))
#: The published figures this bench is read against.
JCJOHNSON_512_SECONDS = 43.0
CK_SIZE, CK_MINUTES = (2172, 2896), 15.0


@dataclass
class Row:
    what: str
    size: str
    plan: str
    seconds: float | None
    seconds_per_iteration: float | None
    peak_gib: float | None
    error: str = ""


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--part", action="append", choices=PARTS, help="which figures (default: all)")
    parser.add_argument("--device", default="cuda", help="cuda, cuda:N (the --dry-run uses the CPU)")
    parser.add_argument("--weights", default="random", help="a VGG19 file, or random (the cost is the same)")
    parser.add_argument("--iterations", type=int, default=500, help="part 512: iterations (jcjohnson: 500)")
    parser.add_argument("--probe-iterations", type=int, default=3, help="timed iterations per size in parts 2, 3")
    parser.add_argument("--budgets", default="24,card", help="GiB caps for part 2, 'card' for the whole card")
    parser.add_argument("--ck-run", action="store_true", help="part 2: a full coarse-to-fine run at 2896×2172")
    parser.add_argument("--ck-iterations", type=int, default=500)
    parser.add_argument("--precision", default="auto", choices=("auto", "fp32", "fp16", "bf16"))
    parser.add_argument("--json", help="also write the rows to this file")
    parser.add_argument("--dry-run", action="store_true",
                        help="toy sizes on the CPU: checks the script, measures nothing")
    args = parser.parse_args(argv)
    args.parts = tuple(args.part or PARTS)
    args.budget_list = [b.strip() for b in args.budgets.split(",") if b.strip()]
    for budget in args.budget_list:
        if budget != "card" and not _is_number(budget):
            parser.error(f"--budgets takes numbers of GiB or 'card', not {budget!r}")
    return args


def _is_number(text: str) -> bool:
    try:
        return float(text) > 0
    except ValueError:
        return False


class Bench:
    """Runs jobs through the engine's own ``stylize`` (the planner, blocks, retries: what users get)."""

    def __init__(self, args: argparse.Namespace) -> None:
        import torch

        from neural_style.daemon.weights import load_model

        self.torch = torch
        self.args = args
        self.device = "cpu" if args.dry_run else args.device
        if not args.dry_run and not torch.cuda.is_available():
            raise SystemExit("no CUDA GPU here: this bench is for a CUDA machine (--dry-run checks it on the CPU)")
        self.model = load_model(args.weights, device=self.device)
        self.cuda = self.model.device.type == "cuda"
        generator = torch.Generator().manual_seed(0)
        # Smooth random images: the cost does not depend on the pictures (nothing is downloaded).
        self.style_source = torch.nn.functional.interpolate(torch.rand((1, 3, 48, 64), generator=generator),
                                                            size=(768, 1024), mode="bilinear")[0]

    def describe(self) -> str:
        torch = self.torch
        if self.cuda:
            props = torch.cuda.get_device_properties(self.model.device)
            gpu = f"{props.name}, {props.total_memory / GiB:.1f} GiB, CUDA {torch.version.cuda}"
        else:
            gpu = f"CPU ({platform.processor() or platform.machine()}), dry run: toy sizes, no figures"
        return f"{gpu}; torch {torch.__version__}; weights {self.args.weights}; precision {self.args.precision}"

    def content(self, height: int, width: int):
        return self.torch.nn.functional.interpolate(self.style_source[None], size=(height, width), mode="bilinear")[0]

    def job(self, what: str, height: int, width: int, iterations: int, *, max_memory_gib: float | None,
            scales: int = 1) -> Row:
        """One stylize job at height × width; its plan, time, time per iteration at the top scale, peak memory."""
        from neural_style.daemon.engine import StyleParams, stylize

        params = StyleParams(iterations=iterations, size=0, scales=scales, progress_every=1,
                             precision=self.args.precision,
                             max_memory=int(max_memory_gib * 1024) if max_memory_gib else 0)
        marks: list[tuple[int, float]] = []
        self._reset_peak()
        began = time.perf_counter()
        try:
            result = stylize(self.model, self.content(height, width), [self.style_source], params,
                             on_progress=lambda p: marks.append((p.scale, time.perf_counter())))
        except Exception as error:  # out of memory or a budget too small: a row saying so
            self._release()
            return Row(what, f"{width}×{height}", "", None, None, self._peak(), f"{type(error).__name__}: {error}")
        seconds = time.perf_counter() - began
        top = [t for scale, t in marks if scale == marks[-1][0]]
        per = (top[-1] - top[0]) / (len(top) - 1) if len(top) > 1 else None
        plan = result.plans[-1].describe() if result.plans else ""
        row = Row(what, f"{width}×{height}", plan, seconds, per, self._peak())
        del result
        self._release()
        return row

    def _reset_peak(self) -> None:
        if self.cuda:
            self.torch.cuda.synchronize()
            self.torch.cuda.reset_peak_memory_stats(self.model.device)

    def _peak(self) -> float:
        if self.cuda:
            return self.torch.cuda.max_memory_allocated(self.model.device) / GiB
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 / GiB  # the process's, on the CPU

    def _release(self) -> None:
        if self.cuda:
            self.torch.cuda.empty_cache()


# ---------------------------------------------------------------------- the parts
def part_512(bench: Bench, say: Callable[[Row], None]) -> list[Row]:
    side = 32 if bench.args.dry_run else 512
    iterations = 2 if bench.args.dry_run else bench.args.iterations
    bench.job("warm-up", side, side, 2, max_memory_gib=None)
    row = bench.job(f"{side}² × {iterations} iterations (jcjohnson: {JCJOHNSON_512_SECONDS:.0f} s on a Titan X)",
                    side, side, iterations, max_memory_gib=None)
    say(row)
    return [row]


def part_largest(bench: Bench, say: Callable[[Row], None]) -> list[Row]:
    rows = []
    sizes = ((48, 64), (96, 128)) if bench.args.dry_run else LARGEST_SIZES
    for budget in bench.args.budget_list:
        gib = None if budget == "card" else float(budget)
        for height, width in sizes:
            row = bench.job(f"within {'the whole card' if gib is None else f'{gib:g} GiB'}", height, width,
                            bench.args.probe_iterations if not bench.args.dry_run else 2, max_memory_gib=gib)
            say(row)
            rows.append(row)
            if row.error:  # larger sizes will not fit either
                break
    if bench.args.ck_run:
        height, width = (48, 64) if bench.args.dry_run else CK_SIZE
        row = bench.job(f"coarse-to-fine, {bench.args.ck_iterations} iterations (crowsonkb: about "
                        f"{CK_MINUTES:.0f} min on 24 GB)", height, width,
                        2 if bench.args.dry_run else bench.args.ck_iterations, max_memory_gib=24.0, scales=0)
        say(row)
        rows.append(row)
    return rows


def part_24mp(bench: Bench, say: Callable[[Row], None]) -> list[Row]:
    rows = []
    for height, width in ((64, 80),) if bench.args.dry_run else HUGE_SIZES:
        row = bench.job(f"{height * width / 1e6:.0f} MP", height, width,
                        2 if bench.args.dry_run else bench.args.probe_iterations, max_memory_gib=None)
        say(row)
        rows.append(row)
    return rows


def print_row(row: Row) -> None:
    per = f"{row.seconds_per_iteration:.2f}" if row.seconds_per_iteration is not None else "—"
    total = f"{row.seconds:.1f}" if row.seconds is not None else "—"
    peak = f"{row.peak_gib:.2f}" if row.peak_gib is not None else "—"
    print(f"| {row.what} | {row.size} | {row.error or row.plan} | {total} | {per} | {peak} |", flush=True)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    bench = Bench(args)
    print(bench.describe())
    print("| run | size | plan (or error) | seconds | s / iteration at the top scale | peak GiB |")
    print("| --- | --- | --- | --- | --- | --- |")
    parts = {"512": part_512, "largest": part_largest, "24mp": part_24mp}
    rows = [row for part in args.parts for row in parts[part](bench, print_row)]
    if args.json:
        with open(args.json, "w", encoding="utf-8") as out:
            json.dump({"machine": bench.describe(), "rows": [asdict(r) for r in rows]}, out, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
