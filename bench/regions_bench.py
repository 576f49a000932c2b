"""Spatial and colour control (Gatys et al. 2017): do regions get their own style, does the histogram mode keep
the photo's colours, and what do regions cost per evaluation.

    python bench/regions_bench.py regions [--size 96] [--iterations 40]
        Tübingen, its left half → Starry Night (A), its right half → The Scream (B), against the same job
        without masks (the two styles blended over the whole image, the baseline). For each result, each
        half's guided style loss (the paper's, Σ_l w_l E_l(G_half, A_style), G_half the result's Gram guided
        by the half) against each style: with masks, each half must be closer to its own style.
    python bench/regions_bench.py colour [--size 96] [--iterations 40] [--modes off,luminance,histogram]
        Tübingen in Starry Night's style with preserve_color off, luminance and histogram: the distance of
        the result's RGB mean and covariance to the content's, and the style loss (against the style image
        the run used: for histogram, the matched one; and against the original painting).
    python bench/regions_bench.py cost [--size 128] [--evaluations 4]
        Seconds per loss-and-gradient evaluation (whole image) with 4 styles: blended without masks (the
        baseline), 2 regions (two halves masked, the two unmasked styles' rest empty) and 4 regions (four
        strips), interleaved round by round so that a shared machine's load falls on all alike.

Seeded random VGG19 weights; β = 10⁵ (with random weights the paper's α/β leaves the loss almost all content).
"""
from __future__ import annotations

import argparse
import contextlib
import platform
import statistics
import time
from pathlib import Path

import torch

from neural_style.daemon.engine import StyleParams, random_vgg19, stylize
from neural_style.daemon.engine.imaging import colour_statistics, match_colors, resize
from neural_style.daemon.engine.losses import guided_gram_sum, style_layer_loss, style_loss
from neural_style.daemon.engine.objective import whole_image_objective
from neural_style.daemon.engine.regions import layer_regions, scale_regions
from neural_style.daemon.engine.targets import CacheStats, style_grams
from neural_style.daemon.engine.vgg import VGG19Features
from neural_style.daemon.image_files import load_image

IMAGES = Path(__file__).resolve().parents[1].parent / "shared" / "images"
LAYERS = StyleParams().style_layers
WEIGHTS = StyleParams().style_layer_weight_map
BETA = 1e5


def _image(name: str, size: int) -> torch.Tensor:
    image = load_image(IMAGES / name)[:3]
    height, width = image.shape[-2:]
    scale = size / max(height, width)
    return resize(image, (max(16, round(height * scale)), max(16, round(width * scale))))


def _grams(model: VGG19Features, styles: list[torch.Tensor], output: tuple[int, int]) -> list[dict[str, torch.Tensor]]:
    return style_grams(model, styles, LAYERS, output=output, style_scale=1.0, smallest=16, pooling="avg",
                       precision="auto", autocast=contextlib.nullcontext, cache=None, stats=CacheStats())


def _halves(height: int, width: int) -> tuple[torch.Tensor, torch.Tensor]:
    left = torch.zeros(1, height, width)
    left[..., : width // 2] = 1
    return left, 1 - left


def _guided_loss(model: VGG19Features, image: torch.Tensor, mask: torch.Tensor,
                 target: dict[str, torch.Tensor]) -> float:
    """Σ_l w_l E_l(G_mask(image), A): the paper's style loss of one region against one style (unweighted by β)."""
    size = (image.shape[-2], image.shape[-1])
    regions = layer_regions(scale_regions([mask], (1.0,), size), [target], LAYERS, torch.device("cpu"),
                            torch.float32)
    with torch.no_grad():
        features = model(image[None], LAYERS)
        # the region's E_l itself, without its mass share: how far the half is from the style
        return sum(WEIGHTS[name] * float(style_layer_loss(guided_gram_sum(features[name], r.guide) / r.mass, r.target))
                   for name, parts in regions.items() for r in parts if r.guide is not None)


def regions(args: argparse.Namespace) -> None:
    model = random_vgg19(seed=0)
    content = _image("tubingen.jpg", args.size)
    styles = [_image("starry_night.jpg", args.size), _image("the_scream.jpg", args.size)]
    height, width = content.shape[-2:]
    left, right = _halves(height, width)
    params = StyleParams(iterations=args.iterations, size=0, style_weight=BETA, scales=1, seed=0)
    runs = {}
    for label, masks in (("without masks (blend)", None), ("with masks", [left, right])):
        started = time.perf_counter()
        runs[label] = (stylize(model, content, styles, params, style_masks=masks).image,
                       time.perf_counter() - started)
    targets = _grams(model, styles, (height, width))
    print(f"# regions: {width}×{height}, {args.iterations} iterations, β={BETA:g}, random weights, "
          f"{platform.processor() or platform.machine()}, torch {torch.__version__}")
    print("| run | left vs A (own) | left vs B | right vs B (own) | right vs A | s |")
    print("| --- | --- | --- | --- | --- | --- |")
    for label, (image, seconds) in runs.items():
        la, lb = (_guided_loss(model, image, left, t) for t in targets)
        ra, rb = (_guided_loss(model, image, right, t) for t in targets)
        print(f"| {label} | {la:.4g} | {lb:.4g} | {rb:.4g} | {ra:.4g} | {seconds:.1f} |")


def colour(args: argparse.Namespace) -> None:
    model = random_vgg19(seed=0)
    content = _image("tubingen.jpg", args.size)
    style = _image("starry_night.jpg", args.size)
    height, width = content.shape[-2:]
    mean_c, cov_c = colour_statistics(content)
    original = _grams(model, [style], (height, width))[0]
    matched = _grams(model, [match_colors(style, content)], (height, width))[0]
    print(f"# colour: {width}×{height}, {args.iterations} iterations, β={BETA:g}, random weights")
    print("| preserve_color | ‖μ − μ_content‖ | ‖C − C_content‖_F | style loss (its style) | style loss (painting) |")
    print("| --- | --- | --- | --- | --- |")
    for mode in args.modes.split(","):
        params = StyleParams(iterations=args.iterations, size=0, style_weight=BETA, scales=1, preserve_color=mode)
        image = stylize(model, content, [style], params).image
        mean, cov = colour_statistics(image)
        with torch.no_grad():
            features = model(image[None], LAYERS)
            own = float(style_loss(features, matched if mode == "histogram" else original, WEIGHTS))
            painting = float(style_loss(features, original, WEIGHTS))
        print(f"| {mode} | {float((mean - mean_c).norm()):.4f} | {float((cov - cov_c).norm()):.5f} | "
              f"{own:.4g} | {painting:.4g} |")


def cost(args: argparse.Namespace) -> None:
    model = random_vgg19(seed=0)
    content = _image("tubingen.jpg", args.size)
    names = ("starry_night.jpg", "the_scream.jpg", "shipwreck.jpg", "woman-with-hat-matisse.jpg")
    styles = [_image(name, args.size) for name in names]
    height, width = content.shape[-2:]
    size = (height, width)
    grams = _grams(model, styles, size)
    blend = (0.25,) * 4
    blended = {name: sum(g[name] * 0.25 for g in grams) for name in LAYERS}
    left, right = _halves(height, width)
    strips = []
    for i in range(4):
        strip = torch.zeros(1, height, width)
        strip[..., i * width // 4: (i + 1) * width // 4] = 1
        strips.append(strip)
    cases = {
        "none (4 styles blended)": dict(style_targets=blended),
        "2 regions (2 halves; the other 2 styles: none left)": dict(
            style_regions=layer_regions(scale_regions([left, right, None, None], blend, size), grams, LAYERS,
                                        torch.device("cpu"), torch.float32)),
        "4 regions (4 strips)": dict(
            style_regions=layer_regions(scale_regions(strips, blend, size), grams, LAYERS, torch.device("cpu"),
                                        torch.float32)),
    }
    objectives = {label: whole_image_objective(model, layer_weights=WEIGHTS, style_weight=BETA, **case)
                  for label, case in cases.items()}
    x = content[None].clone()
    times: dict[str, list[float]] = {label: [] for label in objectives}
    for _ in range(args.evaluations + 1):  # the first round warms up
        for label, objective in objectives.items():
            image = x.clone().requires_grad_(True)
            started = time.perf_counter()
            total, _ = objective(image)
            total.backward()
            times[label].append(time.perf_counter() - started)
    base = statistics.median(times["none (4 styles blended)"][1:])
    print(f"# cost: {width}×{height}, whole image, {args.evaluations} evaluations each (median), "
          f"{torch.get_num_threads()} threads")
    print("| regions | s per evaluation | × none |")
    print("| --- | --- | --- |")
    for label, seconds in times.items():
        median = statistics.median(seconds[1:])
        print(f"| {label} | {median:.3f} | {median / base:.2f} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="mode", required=True)
    for name, size in (("regions", 96), ("colour", 96), ("cost", 128)):
        p = sub.add_parser(name)
        p.add_argument("--size", type=int, default=size)
        p.add_argument("--iterations", type=int, default=40)
        p.add_argument("--evaluations", type=int, default=4)
        p.add_argument("--modes", default="off,luminance,histogram", help="colour: the preserve_color modes to run")
    args = parser.parse_args()
    torch.manual_seed(0)
    {"regions": regions, "colour": colour, "cost": cost}[args.mode](args)


if __name__ == "__main__":
    main()
