"""Seconds per iteration and final loss: our engine against the PyTorch-tutorial baseline, in one run.

Both use the same random (or real) VGG19 weights, the same white-noise start, the paper's losses and
layers, and L-BFGS with exactly the same number of loss-and-gradient evaluations. Runs alternate
(baseline, engine, baseline, engine, …) so that machine load hits both alike; the median is reported.

    python bench/engine_vs_baseline.py [--size 256] [--iterations 30] [--repeats 3] [--device auto]
"""
from __future__ import annotations

import argparse
import platform
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))

from tutorial_baseline import full_vgg19_features, run_style_transfer

from neural_style.daemon.engine import StyleParams, stylize
from neural_style.daemon.engine.imaging import resize
from neural_style.daemon.engine.sizes import fit_longest_side
from neural_style.daemon.engine.transfer import NOISE_MEAN, NOISE_STD
from neural_style.daemon.engine.vgg import random_vgg19_state_dict
from neural_style.daemon.image_files import load_image
from neural_style.daemon.weights import load_model

SHARED = Path(__file__).resolve().parents[2] / "shared" / "images"


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--iterations", type=int, default=30)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--content", type=Path, default=SHARED / "tubingen.jpg")
    parser.add_argument("--style", type=Path, default=SHARED / "starry_night.jpg")
    args = parser.parse_args()

    model = load_model("random", device=args.device)
    device = model.device
    state = random_vgg19_state_dict(0)
    baseline_cnn = full_vgg19_features(state).to(device)

    content = load_image(args.content)
    style = load_image(args.style)
    height, width = fit_longest_side(content.shape[-2], content.shape[-1], args.size)
    content = resize(content, (height, width))
    style = resize(style, (height, width))  # the tutorial needs equal sizes; style_scale 1 does the same for us
    params = StyleParams(iterations=args.iterations, size=args.size, progress_every=args.iterations, seed=0)
    start = NOISE_MEAN + NOISE_STD * torch.randn((1, 3, height, width), generator=torch.Generator().manual_seed(0))

    def run_baseline(clamp: bool = True) -> tuple[float, float]:
        _sync(device)
        began = time.perf_counter()
        _, losses = run_style_transfer(
            baseline_cnn, content[None].to(device), style[None].to(device), start.clone().to(device),
            args.iterations, params.content_weight, params.style_weight, params.content_layers, params.style_layers,
            clamp=clamp)
        _sync(device)
        return time.perf_counter() - began, losses[-1]

    def run_engine() -> tuple[float, float]:
        _sync(device)
        began = time.perf_counter()
        result = stylize(model, content, [style], params)
        _sync(device)
        return time.perf_counter() - began, result.loss.total

    run_baseline(), run_engine()  # warm-up: allocator, kernels, thread pools
    baseline_times, engine_times = [], []
    for _ in range(args.repeats):
        seconds, baseline_loss = run_baseline()
        baseline_times.append(seconds)
        seconds, engine_loss = run_engine()
        engine_times.append(seconds)

    _, unclamped_loss = run_baseline(clamp=False)
    base = statistics.median(baseline_times) / args.iterations
    ours = statistics.median(engine_times) / args.iterations
    base_min, ours_min = min(baseline_times) / args.iterations, min(engine_times) / args.iterations
    print(f"machine: {platform.processor() or platform.machine()}, torch {torch.__version__}, "
          f"{torch.get_num_threads()} threads, device {device}"
          + (f" ({torch.cuda.get_device_name()})" if device.type == "cuda" else ""))
    print(f"image {width}x{height}, {args.iterations} L-BFGS iterations, median of {args.repeats} alternating runs")
    print(f"baseline (PyTorch tutorial): {base:.4f} s/iteration (min {base_min:.4f}), final loss {baseline_loss:.6g}"
          f" (without its per-step clamp: {unclamped_loss:.6g})")
    print(f"neural-style engine:         {ours:.4f} s/iteration (min {ours_min:.4f}), final loss {engine_loss:.6g}")
    print(f"speed-up (median): {base / ours:.2f}x, (min): {base_min / ours_min:.2f}x; final loss engine/baseline: "
          f"{engine_loss / baseline_loss:.4f}, engine/unclamped baseline: {engine_loss / unclamped_loss:.4f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
