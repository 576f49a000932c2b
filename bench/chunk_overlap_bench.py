"""A video cut into chunks (one per cluster worker): the warping error at the boundaries against inside, by overlap.

    python bench/chunk_overlap_bench.py [--size 64] [--frames 16] [--chunks 4] [--overlaps 0,1,2,4] [--iterations 30]

The synthetic pan of bench/temporal_bench.py (a camera pan over Tübingen, a square of Starry Night moving
across it), written as a folder of frames and run through ``neural-style video``'s own loop
(``sequence_run.run_sequence`` with one ``LocalFrames`` per chunk, the chunks on their threads as the
cluster's workers would run them, each stylizing its frames exactly as a worker does): once in one chunk
(the baseline: every frame from the one before), then cut into --chunks chunks for each --overlaps value.
The measure uses the TRUE flow and visibility: for a pair of frames (t−1, t), Σ c (S_t − ω(S_{t−1}))² / Σ c;
"boundary" is its mean over the pairs where t starts a chunk, "inside" over the others, and the baseline's
error at the same boundary frames says what a boundary would cost with no chunks. Also the frames each
run stylized (the lead frames are paid once more). Seeded random VGG19 weights (the measure is on pixels),
β 10⁵ as in temporal_bench.py, the default temporal weight.
"""
from __future__ import annotations

import argparse
import io
import platform
import statistics
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from neural_style.daemon.engine import StyleParams, random_vgg19
from neural_style.daemon.progress_bar import FrameProgress
from neural_style.daemon.sequence import flow
from neural_style.daemon.sequence.chunks import plan_chunks
from neural_style.daemon.sequence.frames import read_image, write_frame
from neural_style.daemon.sequence.synthetic import SyntheticSequence, pan_with_occluder
from neural_style.daemon.sequence_run import LocalFrames, open_source, run_sequence

IMAGES = Path(__file__).resolve().parents[1].parent / "shared" / "images"


def _photo(name: str) -> np.ndarray:
    return np.asarray(Image.open(IMAGES / name).convert("RGB"), np.float32) / 255.0


def pair_error(results: Sequence[np.ndarray], seq: SyntheticSequence, t: int) -> float:
    """Σ c (S_t − ω(S_{t−1}))² / Σ c for the pair (t−1, t), with the true flow and visibility."""
    backward, visible = seq.backward[t], seq.visible[t]
    assert backward is not None and visible is not None
    c = visible.astype(np.float64)
    return float((c * ((results[t] - flow.warp(results[t - 1], backward)) ** 2).sum(axis=-1)).sum() / c.sum())


def run(frames: Path, out: Path, chunks: int, overlap: int, model: torch.nn.Module, style: torch.Tensor,
        params: StyleParams, count: int) -> tuple[list[np.ndarray], int, float]:
    """The sequence through the real loop in ``chunks`` chunks; (results in [0, 1], frames stylized, seconds)."""
    stylizers = [LocalFrames(model, [style], params, None, "dis") for _ in range(chunks)]
    stylized = [0] * chunks

    def counted(index: int) -> LocalFrames:
        inner = stylizers[index]

        def frame(content, previous, on_progress, *, stop=None):  # type: ignore[no-untyped-def]
            stylized[index] += 1
            return inner(content, previous, on_progress, stop=stop)
        return frame  # type: ignore[return-value]

    started = time.perf_counter()
    run_sequence(open_source(frames), out, [counted(i) for i in range(chunks)],
                 FrameProgress(count, params.iterations, stream=io.StringIO()), overlap=overlap)
    seconds = time.perf_counter() - started
    results = [read_image(out / f"f{t:03d}.png").astype(np.float32) / 255.0 for t in range(count)]
    return results, sum(stylized), seconds


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", type=int, default=64, help="frame width (height 3/4 of it)")
    parser.add_argument("--frames", type=int, default=16)
    parser.add_argument("--chunks", type=int, default=4)
    parser.add_argument("--overlaps", type=lambda s: [int(v) for v in s.split(",")], default=[0, 1, 2, 4])
    parser.add_argument("--iterations", type=int, default=30)
    parser.add_argument("--style-weight", type=float, default=1e5)
    args = parser.parse_args(argv)

    torch.manual_seed(0)
    torch.set_num_threads(1)  # one thread per chunk, as the cluster's CPU workers run
    height, width = round(args.size * 3 / 4), args.size
    seq = pan_with_occluder(_photo("tubingen.jpg")[200:, 150:], _photo("starry_night.jpg"), args.frames, height,
                            width, pan=(2, 1), speed=(-4, 2))
    style = torch.from_numpy(_photo("starry_night.jpg")).permute(2, 0, 1).contiguous()
    model = random_vgg19(0)
    params = StyleParams(iterations=args.iterations, size=args.size, style_weight=args.style_weight,
                         progress_every=args.iterations, scales=1)
    boundaries = [c.begin for c in plan_chunks(args.frames, args.chunks, 0)[1:]]
    inside = [t for t in range(1, args.frames) if t not in boundaries]
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        for t, frame in enumerate(seq.frames):
            write_frame(root / "in", f"f{t:03d}", (frame * 255 + 0.5).astype(np.uint8))
        print(f"baseline: one chunk of {args.frames} frames", file=sys.stderr, flush=True)
        base, base_count, base_seconds = run(root / "in", root / "one", 1, 0, model, style, params, args.frames)
        rows = []
        for overlap in args.overlaps:
            print(f"{args.chunks} chunks, overlap {overlap}", file=sys.stderr, flush=True)
            results, count, seconds = run(root / "in", root / f"o{overlap}", args.chunks, overlap, model, style,
                                          params, args.frames)
            rows.append((overlap, results, count, seconds))

    def mean(results: Sequence[np.ndarray], pairs: Sequence[int]) -> float:
        return statistics.fmean(pair_error(results, seq, t) for t in pairs)

    base_inside, base_boundary = mean(base, inside), mean(base, boundaries)
    print(f"\n{args.frames} frames of {width}×{height}, {args.iterations} iterations each, β {args.style_weight:g}, "
          f"temporal weight {params.temporal_weight:g}; {args.chunks} chunks (boundaries at frames "
          f"{', '.join(map(str, boundaries))}), one thread each; {platform.processor() or platform.machine()}, "
          f"torch {torch.__version__}, random weights")
    print(f"{'run':26} {'inside':>9} {'boundary':>9} {'boundary/inside':>16} {'frames stylized':>16} {'seconds':>8}")
    print(f"{'one chunk (baseline)':26} {base_inside:9.5f} {base_boundary:9.5f} {base_boundary / base_inside:16.2f} "
          f"{base_count:16d} {base_seconds:8.1f}")
    for overlap, results, count, seconds in rows:
        inner, edge = mean(results, inside), mean(results, boundaries)
        print(f"{f'{args.chunks} chunks, overlap {overlap}':26} {inner:9.5f} {edge:9.5f} {edge / inner:16.2f} "
              f"{count:16d} {seconds:8.1f}")


if __name__ == "__main__":
    main()
