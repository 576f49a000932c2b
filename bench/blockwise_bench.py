"""Peak memory of one loss-and-gradient evaluation against image size: block-wise beside the whole image.

Each (size, path) runs in a fresh process, so its peak RSS is its own. Printed per run: the RSS
before the evaluation (model, torch, the image-sized buffers), the peak during it, their
difference (the evaluation's own memory), the cost model's prediction of that difference
(``memory_cost``), seconds, and the loss. At the largest size both paths run, the two losses
and gradients are compared. Seeded random weights, the paper's layers (content relu4_2, style
relu1_1…relu5_1), average pooling, Tübingen + Starry Night when the shared images are there.

    python bench/blockwise_bench.py [--sizes 512,1024,2048,4096] [--block 512] [--threads 2]
    python bench/blockwise_bench.py --calibrate     # whole-image peaks for the cost model's κ and fixed bytes
    python bench/blockwise_bench.py --content-cost  # stored against recomputed content targets, seconds
    python bench/blockwise_bench.py --whole never --mmap-threshold 131072   # glibc's allocator pinned
    python bench/blockwise_bench.py --regions 4 --sizes 768   # 0, 1, 2 and 4 region masks: RSS against the model

The whole-image path runs only where the cost model predicts it fits in half the available RAM.
Never run in CI: the 4096² block-wise evaluation alone takes minutes on two cores.
"""
from __future__ import annotations

import argparse
import platform
import resource
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from child_runs import CHILD_ENV, add_child_arguments, run_child, serve_child

from neural_style.daemon.engine import memory_cost, random_vgg19
from neural_style.daemon.engine.blockwise import (
    BlockwiseObjective,
    RecomputedContent,
    StoredContent,
    blockwise_features,
)
from neural_style.daemon.engine.imaging import resize, split_alpha
from neural_style.daemon.engine.losses import gram_matrix
from neural_style.daemon.engine.memory_budget import available_ram, process_rss
from neural_style.daemon.engine.memory_cost import EvaluationCost, activation_floats, element_bytes, recompute_share
from neural_style.daemon.engine.objective import whole_image_objective
from neural_style.daemon.engine.params import DEFAULT_CONTENT_LAYERS, DEFAULT_STYLE_LAYERS
from neural_style.daemon.engine.regions import layer_regions, scale_regions

SHARED = Path(__file__).resolve().parents[2] / "shared" / "images"
MiB = 1 << 20


# ---------------------------------------------------------------------- one run, in a child process
def child(spec: dict) -> dict:
    torch.set_num_threads(spec["threads"])
    size, path, precision = spec["size"], spec["path"], spec.get("precision", "fp32")
    content_layers, style_layers = tuple(spec["content_layers"]), tuple(spec["style_layers"])
    pooling = spec.get("pooling", "avg")
    autocast = (lambda: torch.autocast("cpu", dtype=torch.bfloat16)) if precision == "bf16" else None
    model = random_vgg19(0)
    content, style = _images(size)
    with torch.no_grad():
        grams = {k: gram_matrix(v) for k, v in model(style, style_layers, pooling).items()}
    weights = dict.fromkeys(style_layers, 1.0 / len(style_layers))
    kwargs = dict(style_targets=grams, layer_weights=weights, content_weight=1.0, style_weight=1e3, pooling=pooling)
    if autocast is not None:
        kwargs["autocast"] = autocast
    if spec.get("regions"):  # vertical stripes, each its own region (the same style's Grams: memory only)
        kwargs["style_regions"] = _stripe_regions(spec["regions"], size, grams, style_layers)
        del kwargs["style_targets"]
    block = spec.get("block", 512)
    if path == "whole":
        with torch.no_grad():
            targets = {k: v.float() for k, v in model(content, content_layers, pooling).items()}
        objective = whole_image_objective(model, content_targets=targets, **kwargs)
    else:
        if spec.get("content", "stored") == "stored":
            source = StoredContent(blockwise_features(model, content, content_layers, block, pooling))
        else:
            source = RecomputedContent(model, content, content_layers, pooling)
        objective = BlockwiseObjective(model, block_size=block, content=source, **kwargs)
    generator = torch.Generator().manual_seed(0)
    x = (0.5 + 0.1 * torch.randn((1, 3, size, size), generator=generator)).requires_grad_(True)
    tiny = torch.rand((1, 3, 64, 64), generator=generator).requires_grad_(True)  # first-call set-up, outside the peak
    model(tiny, (*style_layers, *content_layers), pooling)[style_layers[-1]].sum().backward()
    before, high_water_before = process_rss(), _max_rss()
    seconds = []
    for _ in range(spec.get("repeats", 1)):
        x.grad = None
        began = time.perf_counter()
        total = _evaluate(objective, x)
        seconds.append(time.perf_counter() - began)
    peak = _max_rss()
    if spec.get("save"):
        torch.save({"total": total, "grad": x.grad}, spec["save"])
    floats = activation_floats((*style_layers, *content_layers), pooling, content_layers, precision == "bf16")
    pixels = size * size if path == "whole" else _largest_crop(objective, size)
    predicted = EvaluationCost(kappa=1.0, fixed=0).bytes(pixels, floats, element_bytes(precision))
    return {"size": size, "path": path, "block": block if path == "blocks" else None, "rss_before": before,
            "peak": peak, "masked": high_water_before > before + 16 * MiB and peak <= high_water_before,
            "evaluation": peak - before, "activations_model": predicted, "model_floats": floats,
            "model_pixels": pixels, "seconds": seconds, "total": total}


def _stripe_regions(count: int, size: int, grams: dict, style_layers: tuple[str, ...]) -> dict:
    """``count`` masks cutting the image into vertical stripes, at each style layer's grid (``engine/regions.py``)."""
    masks = []
    for i in range(count):
        mask = torch.zeros(1, size, size)
        mask[..., i * size // count:(i + 1) * size // count] = 1
        masks.append(mask)
    regions = scale_regions(masks, [1 / count] * count, (size, size))
    return layer_regions(regions, [grams] * count, style_layers, torch.device("cpu"), torch.float32)


def _evaluate(objective, x: torch.Tensor) -> float:
    total, _terms = objective(x)
    total.backward()
    return float(total.detach())


def _largest_crop(objective: BlockwiseObjective, size: int) -> int:
    grid = objective.grid(size, size)
    return grid.crop_side(size) ** 2


def _images(size: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Content at size × size, style at 512 px (the styles' Grams do not depend on the output size here)."""
    if (SHARED / "tubingen.jpg").exists():
        from neural_style.daemon.image_files import load_image

        content = split_alpha(load_image(SHARED / "tubingen.jpg"))[0]
        style = split_alpha(load_image(SHARED / "starry_night.jpg"))[0]
    else:
        generator = torch.Generator().manual_seed(1)
        content, style = torch.rand((3, 48, 64), generator=generator), torch.rand((3, 48, 64), generator=generator)
    return resize(content, (size, size)).unsqueeze(0).clamp(0, 1), resize(style, (384, 512)).unsqueeze(0).clamp(0, 1)


def _max_rss() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # kB on Linux


# ---------------------------------------------------------------------- the parent
def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default="512,1024,2048,4096")
    parser.add_argument("--block", type=int, default=512)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--calibrate", action="store_true")
    parser.add_argument("--content-cost", action="store_true")
    parser.add_argument("--regions", type=int, default=0,
                        help="evaluations with 0, 1, 2 … this many region masks at the first of --sizes")
    parser.add_argument("--whole", choices=("auto", "never"), default="auto",
                        help="auto: run the whole-image path where it fits in half the available RAM")
    add_child_arguments(parser)
    args = parser.parse_args()
    if serve_child(args, child):
        return 0
    layers = {"content_layers": list(DEFAULT_CONTENT_LAYERS), "style_layers": list(DEFAULT_STYLE_LAYERS)}
    print(f"machine: {platform.processor() or platform.machine()}, torch {torch.__version__}, {args.threads} threads, "
          f"available RAM {available_ram()[0] / 2**30:.1f} GiB, child environment {CHILD_ENV or 'unchanged'}")
    if args.calibrate:
        return calibrate(args, layers)
    if args.content_cost:
        return content_cost(args, layers)
    if args.regions:
        return region_cost(args, layers)
    return memory_against_size(args, layers)


def memory_against_size(args, layers: dict) -> int:
    sizes = [int(s) for s in args.sizes.split(",")]
    floats = activation_floats((*DEFAULT_STYLE_LAYERS, *DEFAULT_CONTENT_LAYERS), "avg", DEFAULT_CONTENT_LAYERS)
    print("| size | path | RSS before | peak RSS | "
          "evaluation (peak − before) | model: activations | s/evaluation | loss |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- |")
    with tempfile.TemporaryDirectory() as folder:
        both = None
        for size in sizes:
            whole_bytes = EvaluationCost().bytes(size * size, floats, 4)
            whole_fits = args.whole == "auto" and whole_bytes < available_ram()[0] / 2
            runs = []
            for path in ("whole", "blocks") if whole_fits else ("blocks",):
                save = str(Path(folder) / f"{path}-{size}.pt")
                result = run_child(__file__, {"size": size, "path": path, "block": args.block, "threads": args.threads,
                                    "save": save, **layers})
                _row(result)
                runs.append(result)
            if len(runs) == 2 and all("error" not in r for r in runs):
                both = size
        if both is not None:
            whole = torch.load(Path(folder) / f"whole-{both}.pt", weights_only=True)
            blocks = torch.load(Path(folder) / f"blocks-{both}.pt", weights_only=True)
            difference = float((blocks["grad"] - whole["grad"]).norm() / whole["grad"].norm())
            print(f"\nat {both}²: loss whole {whole['total']:.9g}, blocks {blocks['total']:.9g} "
                  f"(relative difference {abs(blocks['total'] - whole['total']) / abs(whole['total']):.2e}); "
                  f"gradients' relative difference ‖g_b − g_w‖/‖g_w‖ = {difference:.2e}, "
                  f"largest element difference {float((blocks['grad'] - whole['grad']).abs().max()):.2e} "
                  f"of max |g| {float(whole['grad'].abs().max()):.2e}")
    return 0


def calibrate(args, layers: dict) -> int:
    """Whole-image evaluations at two sizes per configuration: slope → κ, intercept → fixed bytes."""
    configs = [("paper layers, avg", {**layers}), ("paper layers, max", {**layers, "pooling": "max"}),
               ("relu3_1 style only", {"content_layers": [], "style_layers": ["relu3_1"]}),
               ("paper layers, bf16", {**layers, "precision": "bf16"})]
    print("| configuration | size | evaluation MiB | model floats/px | measured bytes/px/float |")
    print("| --- | --- | --- | --- | --- |")
    for name, config in configs:
        points = []
        for size in (384, 768):
            result = run_child(__file__, {"size": size, "path": "whole", "threads": args.threads, **config})
            if "error" in result:
                print(f"| {name} | {size} | error: {result['error']} | | |")
                continue
            element = element_bytes(config.get("precision", "fp32"))
            points.append((size * size, result["evaluation"], result["model_floats"] * element))
            print(f"| {name} | {size}² | {result['evaluation'] / MiB:.0f} | {result['model_floats']:.0f} | "
                  f"{result['evaluation'] / (size * size) / (result['model_floats'] * element):.3f} |")
        if len(points) == 2:
            (p1, m1, unit), (p2, m2, _) = points
            kappa = (m2 - m1) / (p2 - p1) / unit
            print(f"| {name} | slope | κ = {kappa:.3f} | fixed = {(m1 - kappa * unit * p1) / MiB:.0f} MiB | |")
    return 0


def region_cost(args, layers: dict) -> int:
    """Region masks' memory (issue 17): per path, one evaluation with 0, 1, 2 and ``--regions`` regions, each in a
    fresh process. What the regions add to the RSS before the evaluation (their guides and masks) and to the
    evaluation itself, beside the cost model's ``region_held_bytes`` and ``region_evaluation_bytes``."""
    size, style_layers = int(args.sizes.split(",")[0]), tuple(layers["style_layers"])
    print(f"{size}², blocks of {args.block}; each row against the same path without masks (the baseline)")
    print("| path | regions | RSS before | evaluation | Δ before | model: held | Δ evaluation | model: evaluation |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- |")
    for path in ("whole", "blocks"):
        baseline = None
        for regions in sorted({0, 1, 2, args.regions}):
            result = run_child(__file__, {"size": size, "path": path, "block": args.block, "threads": args.threads,
                                          "regions": regions, **layers})
            if "error" in result:
                print(f"| {path} | {regions} | error: {result['error']} | | | | | |")
                return 1
            baseline = baseline or result
            held = memory_cost.region_held_bytes(regions, style_layers, size * size)
            evaluation = memory_cost.region_evaluation_bytes(regions, style_layers, result["model_pixels"])
            more_before = result["rss_before"] - baseline["rss_before"]
            more_evaluation = result["evaluation"] - baseline["evaluation"]
            print(f"| {path} | {regions} | {result['rss_before'] / MiB:.0f} MiB | {result['evaluation'] / MiB:.0f} MiB "
                  f"| {more_before / MiB:+.0f} MiB | {held / MiB:.0f} MiB | {more_evaluation / MiB:+.0f} MiB "
                  f"| {evaluation / MiB:.0f} MiB |", flush=True)
    return 0


def content_cost(args, layers: dict) -> int:
    """Seconds per block-wise evaluation, stored against recomputed content targets, alternating in one process.

    Timing, not memory: one process, the same image and blocks, evaluations alternating so that the
    load other work puts on the machine falls on both alike; the first of each pays set-up and is dropped.
    """
    torch.set_num_threads(args.threads)
    size, repeats = int(args.sizes.split(",")[0]), 6
    model = random_vgg19(0)
    content, style = _images(size)
    content_layers, style_layers = layers["content_layers"], layers["style_layers"]
    with torch.no_grad():
        grams = {k: gram_matrix(v) for k, v in model(style, style_layers).items()}
    sources = {"stored": StoredContent(blockwise_features(model, content, content_layers, args.block)),
               "recomputed": RecomputedContent(model, content, content_layers)}
    objectives = {mode: BlockwiseObjective(model, block_size=args.block, content=source, style_targets=grams,
                                           layer_weights=dict.fromkeys(style_layers, 0.2), style_weight=1e3)
                  for mode, source in sources.items()}
    x = (0.5 + 0.1 * torch.randn((1, 3, size, size), generator=torch.Generator().manual_seed(0))).requires_grad_(True)
    seconds: dict[str, list[float]] = {mode: [] for mode in objectives}
    for _ in range(repeats + 1):
        for mode, objective in objectives.items():
            x.grad = None
            began = time.perf_counter()
            _evaluate(objective, x)
            seconds[mode].append(time.perf_counter() - began)
    ratios = sorted(r / s for s, r in zip(seconds["stored"][1:], seconds["recomputed"][1:]))
    for mode, values in seconds.items():
        print(f"{mode}: median {sorted(values[1:])[repeats // 2]:.2f} s per evaluation "
              f"({', '.join(f'{v:.2f}' for v in values[1:])})")
    print(f"recomputed / stored, per alternating pair: median {ratios[repeats // 2]:.3f} "
          f"(range {ratios[0]:.3f}–{ratios[-1]:.3f}); the FLOP model says "
          f"{1 + recompute_share(style_layers, content_layers):.3f}")
    return 0


def _row(result: dict) -> None:
    if "error" in result:
        print(f"| {result['size']}² | {result['path']} | error: {result['error']} | | | | | |")
        return
    path = f"blocks of {result['block']}" if result["path"] == "blocks" else "whole image"
    masked = " (masked)" if result["masked"] else ""
    print(f"| {result['size']}² | {path} | {result['rss_before'] / MiB:.0f} MiB | {result['peak'] / MiB:.0f} MiB | "
          f"{result['evaluation'] / MiB:.0f} MiB{masked} | {result['activations_model'] / MiB:.0f} MiB | "
          f"{result['seconds'][0]:.1f} | {result['total']:.6g} |", flush=True)


if __name__ == "__main__":
    sys.exit(main())
