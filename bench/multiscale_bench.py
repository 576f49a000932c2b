"""Coarse-to-fine (--scales N) against a single scale, at the same total iteration budget, in one run.

Prints wall time and the final loss at full resolution for each N, so the speed-up is read beside
what it costs (or gains) in the objective. Seeded random weights unless --weights is given.

    python bench/multiscale_bench.py [--size 256] [--iterations 30] [--scales 1,2,3]
"""
from __future__ import annotations

import argparse
import platform
import sys
import time
from pathlib import Path

import torch

from neural_style.daemon.engine import StyleParams, stylize
from neural_style.daemon.image_files import load_image
from neural_style.daemon.weights import load_model

SHARED = Path(__file__).resolve().parents[2] / "shared" / "images"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--iterations", type=int, default=30)
    parser.add_argument("--scales", default="1,2,3")
    parser.add_argument("--weights", default="random")
    parser.add_argument("--device", default="auto")
    args = parser.parse_args()

    model = load_model(args.weights, device=args.device)
    content, style = load_image(SHARED / "tubingen.jpg"), load_image(SHARED / "starry_night.jpg")
    base = StyleParams(iterations=args.iterations, size=args.size, progress_every=args.iterations)
    stylize(model, content, [style], base.replace(iterations=2))  # warm-up
    print(f"machine: {platform.machine()}, torch {torch.__version__}, {torch.get_num_threads()} threads, "
          f"device {model.device}; {args.size} px, {args.iterations} iterations in total")
    reference = None
    for scales in (int(s) for s in args.scales.split(",")):
        began = time.perf_counter()
        result = stylize(model, content, [style], base.replace(scales=scales))
        seconds = time.perf_counter() - began
        reference = reference or seconds
        print(f"scales={scales}: {seconds:6.2f} s ({reference / seconds:.2f}x), final loss {result.loss.total:.6g}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
