"""Block-wise speed: seconds per evaluation by block size against the whole image, and what the planner picks.

At one output size (default 1536×1152, issue 19; ``--plan-size`` plans at another size than is timed),
for each ``--budgets`` (MiB, what a job may add) the memory planner's plan is printed
(``memory_plan.plan_memory`` with the engine's defaults: L-BFGS history 100, the paper's layers,
stored content targets); then one loss-and-gradient evaluation is
timed for the whole image and for each block size (``--blocks`` plus every planned one), alternating
over ``--repeats``, all in this process (seconds only; peaks are ``blockwise_bench.py``'s). Each
block size's row gives its blocks, the pixels its crops add (margins) and its time over the whole image's.

    python bench/block_speed_bench.py [--size 1536x1152] [--budgets 1229,4096] [--blocks 256,384,512,768]
"""
from __future__ import annotations

import argparse
import platform
import statistics
import sys
import time
from pathlib import Path

import torch

from neural_style.daemon.engine import random_vgg19
from neural_style.daemon.engine.block_grid import BlockGrid
from neural_style.daemon.engine.blockwise import BlockwiseObjective, StoredContent, blockwise_features
from neural_style.daemon.engine.imaging import resize
from neural_style.daemon.engine.losses import gram_matrix
from neural_style.daemon.engine.memory_budget import Budget
from neural_style.daemon.engine.memory_plan import plan_memory
from neural_style.daemon.engine.objective import whole_image_objective
from neural_style.daemon.engine.optimize import LBFGS_HISTORY
from neural_style.daemon.engine.params import DEFAULT_CONTENT_LAYERS, DEFAULT_STYLE_LAYERS
from neural_style.daemon.image_files import load_image

#: The clock of every timing (--clock): the process's CPU time by default.
CLOCK = time.process_time
SHARED = Path(__file__).resolve().parents[2] / "shared" / "images"
MiB = 1 << 20


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", default="1536x1152", help="WIDTHxHEIGHT timed")
    parser.add_argument("--plan-size", default="", help="WIDTHxHEIGHT the planner plans for (default --size)")
    parser.add_argument("--budgets", default="1229,4096", help="MiB a job may add, for the planner's choice")
    parser.add_argument("--blocks", default="256,384,512,768", help="block sizes to time besides the planned ones")
    parser.add_argument("--clock", choices=("cpu", "wall"), default="cpu",
                        help="seconds: the process's CPU time (user + sys; steadier beside other work) or wall time")
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    global CLOCK
    CLOCK = time.process_time if args.clock == "cpu" else time.perf_counter
    torch.set_num_threads(args.threads)
    width, height = (int(v) for v in args.size.split("x"))
    plan_width, plan_height = (int(v) for v in (args.plan_size or args.size).split("x"))
    layers = dict(style_layers=DEFAULT_STYLE_LAYERS, content_layers=DEFAULT_CONTENT_LAYERS)
    print(f"machine: {platform.processor() or platform.machine()}, torch {torch.__version__}, {args.threads} threads;"
          f" timed at {width}×{height}, planned at {plan_width}×{plan_height}, the paper's layers, random weights")
    planned: dict[int, str] = {}
    for mib in (int(b) for b in args.budgets.split(",")):
        plan = plan_memory(plan_height, plan_width, budget=Budget(mib * MiB, f"{mib} MiB"), history=LBFGS_HISTORY,
                           **layers)
        print(f"budget {mib} MiB: {plan.describe()}")
        if plan.block_size:
            planned[plan.block_size] = f"{mib} MiB"
    blocks = sorted({*(int(b) for b in args.blocks.split(",")), *planned})

    model = random_vgg19(0)
    content = resize(load_image(SHARED / "tubingen.jpg"), (height, width))[None]
    style = resize(load_image(SHARED / "starry_night.jpg"), (height, width))[None]
    style_layers, content_layers = layers["style_layers"], layers["content_layers"]
    with torch.no_grad():
        grams = {k: gram_matrix(v) for k, v in model(style, style_layers).items()}
        whole_targets = {k: v.float() for k, v in model(content, content_layers).items()}
    common = dict(style_targets=grams, layer_weights=dict.fromkeys(style_layers, 1 / len(style_layers)),
                  content_weight=1.0, style_weight=4e6)
    objectives = {"whole image": whole_image_objective(model, content_targets=whole_targets, **common)}
    for block in blocks:
        stored = StoredContent(blockwise_features(model, content, content_layers, block, "avg"))
        objectives[f"blocks of {block}"] = BlockwiseObjective(model, block_size=block, content=stored, **common)
    x = (0.5 + 0.1 * torch.randn((1, 3, height, width), generator=torch.Generator().manual_seed(0)))
    seconds: dict[str, list[float]] = {name: [] for name in objectives}
    for repeat in range(args.repeats):
        order = list(objectives.items()) if repeat % 2 == 0 else list(objectives.items())[::-1]
        for name, objective in order:
            leaf = x.clone().requires_grad_(True)
            began = CLOCK()
            total, _ = objective(leaf)
            torch.autograd.backward(total)
            seconds[name].append(CLOCK() - began)
            print(f"  {name}: {seconds[name][-1]:.2f} s", flush=True)
    whole = statistics.median(seconds["whole image"])
    print("\n| evaluation | blocks | crop pixels / image pixels | s / evaluation (median) | against the whole image |"
          " planned for |")
    print("| --- | --- | --- | --- | --- | --- |")
    print(f"| whole image | 1 | 1.00 | {whole:.2f} | 1.00 | |")
    for block in blocks:
        grid = BlockGrid.for_layers(height, width, (*style_layers, *content_layers), block)
        crops = _crop_share(grid, height, width)
        median = statistics.median(seconds[f"blocks of {block}"])
        print(f"| blocks of {block} | {len(grid.blocks())} | {crops:.2f} | {median:.2f} | {median / whole:.2f} | "
              f"{planned.get(block, '')} |")
    return 0


def _crop_share(grid: BlockGrid, height: int, width: int) -> float:
    """All crops' pixels over the image's: the work the margins add."""
    total = 0
    for block in grid.blocks():
        rows, cols = block.crop
        total += (rows.stop - rows.start) * (cols.stop - cols.start)
    return total / (height * width)


if __name__ == "__main__":
    sys.exit(main())
