#!/usr/bin/env python3
"""What reading a region mask at admission costs the daemon's socket loop (issue 17).

Admission reads a mask's grey levels before ``accepted`` (to refuse an all-black one), in the socket
loop, where every other client's pings and heartbeats wait meanwhile; a picture only has its header
probed there. Printed per size: the baseline (``decode.probe`` of a PNG, the header only: what admission
does with a picture, and with a PNG mask) beside reading a mask's levels and peak
(``mask_images.mask_levels`` + ``mask_frame``) for a raw grey8 frame (what admission does with one), a
PNG grey8 and a PNG grey16 (what it would cost to judge those there too: the worker reads them when the
job starts), each the median of ``--repeat`` runs. A mask is a soft two-region split with noise
(a PNG of a real selection compresses better, so this errs on the dear side).

Usage: python bench/mask_admission_bench.py [--megapixels 1,6,24] [--repeat 5]
"""
from __future__ import annotations

import argparse
import io
import statistics
import sys
import time
from pathlib import Path

import numpy as np
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parent))
from daemon_bench import machine

from neural_style.daemon.mask_images import mask_frame, mask_levels
from neural_style.daemon.server.decode import probe
from neural_style.protocol.image_data import ImageData


def _mask(width: int, height: int, dtype: type) -> np.ndarray:
    top = np.iinfo(dtype).max
    ramp = np.clip((np.arange(width) - width / 2) / (width / 20) + 0.5, 0, 1)
    noise = np.random.default_rng(0).normal(0, 0.02, (height, width))
    return (np.clip(ramp[None, :] + noise, 0, 1) * top).astype(dtype)


def _png(levels: np.ndarray) -> bytes:
    out = io.BytesIO()
    Image.fromarray(levels).save(out, format="PNG")
    return out.getvalue()


def _median(run, repeat: int) -> float:
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        run()
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--megapixels", default="1,6,24")
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    print(machine())
    print(f"{'size':>12} {'probe (baseline)':>17} {'raw grey8':>10} {'PNG grey8':>10} {'PNG grey16':>11}  PNG bytes")
    for megapixels in (float(m) for m in args.megapixels.split(",")):
        width = int((megapixels * 1e6 * 3 / 2) ** 0.5)
        height = int(width * 2 / 3)
        limit = width * height
        eight, sixteen = _mask(width, height, np.uint8), _mask(width, height, np.uint16)
        raw = ImageData.raw(eight.tobytes(), width, height, 1)
        png8, png16 = ImageData.png(_png(eight)), ImageData.png(_png(sixteen))
        times = [_median(lambda png=png8, bound=limit: probe(png.data, "png", bound), args.repeat)]
        times += [_median(lambda image=image, bound=limit: mask_frame(mask_levels(image, bound)), args.repeat)
                  for image in (raw, png8, png16)]
        print(f"{width:>5}x{height:<6} " + " ".join(f"{t * 1000:>{w}.1f}" for t, w in zip(times, (14, 8, 8, 9)))
              + f" ms  {len(png8.data) / 2**20:.1f}/{len(png16.data) / 2**20:.1f} MiB")


if __name__ == "__main__":
    main()
