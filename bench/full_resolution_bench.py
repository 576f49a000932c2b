"""Whole jobs at full resolution: block-wise against whole-image results (and their seams), and a job
under a deliberately small ``max_memory``.

Every run is one ``stylize`` job (the planner, the schedule, the optimiser: what users get) in a fresh
process, so that its peak RSS is its own. Seeded random VGG19 weights; Tübingen (content, resized to
the size asked for) and Starry Night (style) from ../shared/images.

    python bench/full_resolution_bench.py agreement [--size 1024] [--block 512] [--iterations 10]
        the same job twice, the memory plan forced to the whole image and to blocks of --block:
        the result images' difference (in 1/255) and a seam statistic, the mean squared
        finite difference across block boundaries over that inside blocks, for both results
        (the whole image's is the baseline: its boundaries are ordinary pixels) and for their difference;
        a third job, the whole image with its content changed by ±1e-6, shows what the optimiser makes of a
        rounding-sized difference over the same iterations (the baseline for the first two's difference);
        --float64 runs the first two in float64 (the network, the optimised image, the losses; the content
        enters as float32, as every input does, so no rounding-sized baseline exists there), where rounding
        is 10⁻¹⁶ instead of 10⁻⁷; both modes print the losses' relative difference iteration by iteration,
        which shows where the two runs part: in the objective (iteration 1) or in the optimiser's steps
    python bench/full_resolution_bench.py budget [--size 2048] [--max-memory 2560] [--iterations 6] [--regions N]
        a job on a content of --size (longest side, 4:3) with size 0 (native), scales 0
        (automatic) and max_memory, beside the planner's prediction for the whole image:
        the plans it made, its peak RSS against the budget; with --regions N, the same job unmasked
        (the baseline) and then with N region masks (vertical stripes, one style each: issue 17), side by side

Never run in CI: at 1024² and above each job takes minutes on two cores.
"""
from __future__ import annotations

import argparse
import json
import platform
import resource
import sys
import tempfile
import threading
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from child_runs import CHILD_ENV, add_child_arguments, run_child, serve_child

from neural_style.daemon.engine import EngineProgress, StyleParams, job_plan, random_vgg19, stylize
from neural_style.daemon.engine.block_grid import BlockGrid
from neural_style.daemon.engine.imaging import resize
from neural_style.daemon.engine.memory_budget import Budget, available_ram, process_rss
from neural_style.daemon.engine.memory_plan import MemoryPlan
from neural_style.daemon.engine.params import DEFAULT_CONTENT_LAYERS, DEFAULT_STYLE_LAYERS
from neural_style.daemon.image_files import load_image

SHARED = Path(__file__).resolve().parents[2] / "shared" / "images"
MiB = 1 << 20
UNBOUNDED = Budget(1 << 50, "bench: unbounded")
#: The agreement's baseline: the content changed by up to this much per value (float32's rounding of
#: a value near 1 is 6e-8; the block-wise and whole-image gradients differ by about 1e-6 relative).
PERTURBATION = 1e-6
#: The styles of a --regions run, one a stripe (Starry Night first, as in the unmasked job).
REGION_STYLES = ("starry_night.jpg", "the_scream.jpg", "woman-with-hat-matisse.jpg", "shipwreck.jpg")


# ---------------------------------------------------------------------- one job, in a child process
def child(spec: dict[str, Any]) -> dict[str, Any]:
    torch.set_num_threads(spec["threads"])
    model = random_vgg19(0)
    height, width = spec["height"], spec["width"]
    content = resize(load_image(SHARED / "tubingen.jpg")[:3], (height, width)).clamp(0, 1)
    style = load_image(SHARED / "starry_night.jpg")[:3]
    regions = spec.get("regions", 0)
    styles = [load_image(SHARED / REGION_STYLES[i % len(REGION_STYLES)])[:3] for i in range(regions)] or [style]
    masks = _stripes(regions, height, width) if regions else None
    if spec.get("float64"):  # the network's dtype is the run's (inputs enter as float32)
        model = model.double()
    if spec.get("perturb"):  # a difference the size of float32 rounding, put into the content
        noise = torch.rand(content.shape, generator=torch.Generator().manual_seed(1)) - 0.5
        content = content + 2 * spec["perturb"] * noise
    if spec.get("force"):
        _force_plan(spec["force"], spec.get("block", 512))
    params = StyleParams(size=0, iterations=spec["iterations"], scales=spec.get("scales", 1),
                         max_memory=spec.get("max_memory", 0), progress_every=1, preview=False)
    sampler = _RssSampler()
    losses: list[float] = []

    def on_progress(progress: EngineProgress) -> None:
        sampler.at_scale(progress.scale)
        losses.append(progress.loss.total)

    began = time.perf_counter()
    with sampler:
        result = stylize(model, content, styles, params, style_masks=masks, on_progress=on_progress)
    seconds = time.perf_counter() - began
    if spec.get("save"):
        torch.save(result.image, spec["save"])
    return {"plans": [p.describe() for p in result.plans],
            "block": result.plans[-1].block_size if result.plans[-1].path == "blocks" else None,
            "predicted": [p.predicted_peak for p in result.plans],
            "peak": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024, "seconds": seconds,
            "scale_peaks": sampler.peaks,
            "loss": result.loss.total, "losses": losses}


def _stripes(count: int, height: int, width: int) -> list[torch.Tensor | None]:
    """``count`` region masks: the content cut into as many vertical stripes, one style each."""
    masks: list[torch.Tensor | None] = []
    for i in range(count):
        mask = torch.zeros(1, height, width)
        mask[..., i * width // count:(i + 1) * width // count] = 1
        masks.append(mask)
    return masks


class _RssSampler:
    """The process's RSS every 50 ms, its maximum per scale (attributed to the scale last reported)."""

    def __init__(self) -> None:
        self.peaks: dict[int, int] = {}
        self.scale = 1
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def at_scale(self, scale: int) -> None:
        self.scale = scale

    def _run(self) -> None:
        while not self._stop.wait(0.05):
            self.peaks[self.scale] = max(self.peaks.get(self.scale, 0), process_rss())

    def __enter__(self) -> _RssSampler:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join()


def _force_plan(path: str, block: int) -> None:
    """Make every scale's memory plan the whole image, or blocks of ``block`` (the same optimiser, stored targets)."""
    original = job_plan.plan_memory

    def forced(height: int, width: int, *, budget: Budget, **options: Any) -> MemoryPlan:
        plan = original(height, width, budget=UNBOUNDED, **options)
        assert plan.path == "whole", plan.describe()
        if path == "whole":
            return plan
        grid = BlockGrid.for_layers(height, width, (*options["style_layers"], *options["content_layers"]), block)
        return replace(plan, path="blocks", block_size=grid.block_size, blocks=len(grid.blocks()),
                       interior=(grid.interior_side(height), grid.interior_side(width)))

    job_plan.plan_memory = forced  # type: ignore[assignment]  # this process only: a bench's child


# ---------------------------------------------------------------------- seams
def seam_ratio(image: torch.Tensor, rows: list[int], cols: list[int]) -> float:
    """Mean squared finite difference across the given boundaries over that everywhere else.

    ``rows`` / ``cols``: the first row / column of each block after the first; the difference across a
    boundary is between that pixel and the one before it. 1.0: the boundaries are like any other pixels.
    """
    dx = (image[..., :, 1:] - image[..., :, :-1]).pow(2).sum(0)  # (H, W-1): between column j and j+1
    dy = (image[..., 1:, :] - image[..., :-1, :]).pow(2).sum(0)  # (H-1, W)
    on_x = torch.zeros(dx.shape[-1], dtype=torch.bool)
    on_x[[c - 1 for c in cols]] = True
    on_y = torch.zeros(dy.shape[-2], dtype=torch.bool)
    on_y[[r - 1 for r in rows]] = True
    boundary = torch.cat([dx[:, on_x].flatten(), dy[on_y, :].flatten()])
    interior = torch.cat([dx[:, ~on_x].flatten(), dy[~on_y, :].flatten()])
    return float(boundary.mean() / interior.mean())


def agreement(args: argparse.Namespace) -> int:
    height, width = args.size * 3 // 4 // 16 * 16, args.size
    print(f"machine: {_machine(args)}; {width}×{height}, {args.iterations} iterations, one scale, blocks of "
          f"{args.block}, {'float64' if args.float64 else 'float32'}")
    with tempfile.TemporaryDirectory() as folder:
        runs = {}
        # "rounding": the whole image again, its content changed by ±PERTURBATION (the block-wise gradient's
        # relative difference from the whole image's is about 1e-6): what a rounding-sized difference
        # becomes once the optimiser has amplified it over the same iterations (the baseline).
        jobs = [("whole", "whole", 0.0), ("blocks", "blocks", 0.0), ("rounding", "whole", PERTURBATION)]
        for name, path, perturb in jobs[:2] if args.float64 else jobs:
            save = str(Path(folder) / f"{name}.pt")
            runs[name] = run_child(__file__, {"height": height, "width": width, "iterations": args.iterations,
                                    "threads": args.threads, "force": path, "block": args.block, "save": save,
                                    "perturb": perturb, "float64": args.float64})
            print(f"  {name}: {json.dumps(runs[name], ensure_ascii=False)}", flush=True)
            if "error" in runs[name]:
                return 1
        results = {name: torch.load(Path(folder) / f"{name}.pt", weights_only=True) for name in runs}
    grid = BlockGrid.for_layers(height, width, (*DEFAULT_STYLE_LAYERS, *DEFAULT_CONTENT_LAYERS),
                                runs["blocks"]["block"])
    rows = sorted({b.rows.start for b in grid.blocks()} - {0})
    cols = sorted({b.cols.start for b in grid.blocks()} - {0})
    print(f"\nblocks: {len(grid.blocks())} ({len(rows) + 1} × {len(cols) + 1}), boundaries at rows {rows}, "
          f"columns {cols}")
    whole, blocks = results["whole"], results["blocks"]
    for name, other in (("blocks", blocks), ("rounding baseline", results.get("rounding"))):
        if other is None:
            continue
        difference = (other - whole).abs() * 255
        print(f"{name} against the whole image, in 1/255: max {float(difference.max()):.3f}, mean "
              f"{float(difference.mean()):.4f}; values differing by more than 1/255: "
              f"{int((difference > 1).sum())} of {difference.numel()}; seam statistic of the difference "
              f"{seam_ratio(other - whole, rows, cols):.4f}")
    for name in [name for name in runs if name != "whole"]:  # how a difference grows, iteration by iteration
        print(f"{name}: relative loss difference from the whole image's, per iteration: " + ", ".join(
            f"{abs(a - b) / abs(b):.1e}" for a, b in zip(runs[name]["losses"], runs["whole"]["losses"])))
    print(f"losses: whole {runs['whole']['loss']:.7g}, blocks {runs['blocks']['loss']:.7g} (relative difference "
          f"{abs(runs['blocks']['loss'] - runs['whole']['loss']) / abs(runs['whole']['loss']):.1e})")
    print("seam statistic (boundary / interior mean squared finite difference): "
          f"blocks' result {seam_ratio(blocks, rows, cols):.4f}, whole image's result (baseline) "
          f"{seam_ratio(whole, rows, cols):.4f}")
    return 0


def budget(args: argparse.Namespace) -> int:
    height, width = args.size * 3 // 4, args.size
    print(f"machine: {_machine(args)}; content {width}×{height}, size 0 (native), scales 0 (automatic), "
          f"{args.iterations} iterations, max_memory {args.max_memory} MiB, child environment {CHILD_ENV or 'as is'}")
    failed = 0
    for regions in sorted({0, args.regions}):
        whole = job_plan.plan_memory(height, width, budget=UNBOUNDED, **_default_memory_options(regions))
        print(f"{regions} region masks: the planner's whole-image prediction at full size: {whole.describe()}")
        result = run_child(__file__, {"height": height, "width": width, "iterations": args.iterations,
                                      "threads": args.threads, "scales": 0, "max_memory": args.max_memory,
                                      "regions": regions})
        if "error" in result:
            print(f"error: {result['error']}")
            return 1
        peaks = {int(k): v for k, v in result["scale_peaks"].items()}
        for index, line in enumerate(result["plans"], start=1):
            print(f"  plan: {line}; sampled peak RSS {peaks.get(index, 0) / MiB:.0f} MiB")
        print(f"  peak RSS {result['peak'] / MiB:.0f} MiB of the {args.max_memory} MiB budget "
              f"({result['peak'] / (args.max_memory * MiB):.2f}); last scale predicted "
              f"{result['predicted'][-1] / MiB:.0f} MiB; {result['seconds']:.0f} s; loss {result['loss']:.6g}")
        failed |= result["peak"] > args.max_memory * MiB
    return int(failed)


def _default_memory_options(regions: int = 0) -> dict[str, Any]:
    params = StyleParams()
    return job_plan.memory_options(params, DEFAULT_STYLE_LAYERS, DEFAULT_CONTENT_LAYERS, torch.device("cpu"),
                                   regions=regions)


def _machine(args: argparse.Namespace) -> str:
    return (f"{platform.processor() or platform.machine()}, torch {torch.__version__}, {args.threads} threads, "
            f"available RAM {available_ram()[0] / 2**30:.1f} GiB")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("mode", nargs="?", choices=("agreement", "budget"))
    parser.add_argument("--size", type=int, help="longest side (agreement: 1024; budget: 2048)")
    parser.add_argument("--block", type=int, default=512)
    parser.add_argument("--iterations", type=int, help="(agreement: 10; budget: 6)")
    parser.add_argument("--max-memory", type=int, default=2560, help="MiB")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--regions", type=int, default=0,
                        help="budget: also run the job with this many region masks, beside the unmasked one")
    parser.add_argument("--float64", action="store_true",
                        help="agreement: the whole image and the blocks in float64, no baseline")
    add_child_arguments(parser)
    args = parser.parse_args()
    if serve_child(args, child):
        return 0
    if args.mode is None:
        parser.error("a mode: agreement or budget")
    defaults = {"agreement": (1024, 10), "budget": (2048, 6)}[args.mode]
    args.size = args.size or defaults[0]
    args.iterations = args.iterations or defaults[1]
    return agreement(args) if args.mode == "agreement" else budget(args)


if __name__ == "__main__":
    sys.exit(main())
