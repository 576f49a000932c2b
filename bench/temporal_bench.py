"""Temporal consistency of stylized sequences (Ruder et al. 2016) and what the flow costs.

    python bench/temporal_bench.py consistency [--size 96] [--frames 6] [--iterations 30] [--weights 1000]
        A synthetic sequence with known motion (a camera pan over Tübingen, a square of Starry Night
        moving across it: real occlusions) stylized three ways, frame by frame in turn so that a shared
        machine's load falls on all alike: each frame independently from the same seeded noise (what a
        user's loop does today, the baseline), initialised from the warped previous result only, and
        with the temporal loss as well (one run per --weights value; --long-term 1,2,4 adds a run with
        those earlier frames; --turn T sends the square back after frame T, so that it uncovers what
        earlier frames saw, the long-term case, measured as the "reappearing" error). The flow is DIS on
        the content frames, as a sequence would run; the
        measure uses the TRUE flow and occlusion mask: the warping error, the mean over frames t ≥ 1 of
        Σ c (S_t − ω(S_{t−1}))² / Σ c (c the true visibility; squared RGB distance in [0, 1] units),
        beside each way's paper loss (content + style of the result) and frames per hour.
    python bench/temporal_bench.py cost [--sizes 512,1080p] [--evaluations 3]
        The flow and mask's share of a frame's time: both DIS flows, the certainty and the warp of the
        previous result, against the frame's optimisation (the loss-and-gradient evaluations measured
        over --evaluations, a frame counted at the default 500 iterations and at the bench's 30).

Seeded random VGG19 weights (the measures are on pixels); β defaults to 10⁵ here because with random
weights the paper's α/β leaves the loss almost all content (trained weights balance the terms).
"""
from __future__ import annotations

import argparse
import platform
import statistics
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np
import torch
from PIL import Image

from neural_style.daemon.engine import EngineProgress, StyleParams, random_vgg19, stylize
from neural_style.daemon.sequence import flow
from neural_style.daemon.sequence.synthetic import SyntheticSequence, pan_with_occluder
from neural_style.daemon.temporal_inputs import temporal_inputs

IMAGES = Path(__file__).resolve().parents[1].parent / "shared" / "images"
DEFAULT_ITERATIONS = StyleParams().iterations


def _photo(name: str) -> np.ndarray:
    return np.asarray(Image.open(IMAGES / name).convert("RGB"), np.float32) / 255.0


def _tensor(image: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(image)).permute(2, 0, 1).float()


def _array(image: torch.Tensor) -> np.ndarray:
    return image[:3].permute(1, 2, 0).contiguous().numpy().astype(np.float32)


# ---------------------------------------------------------------------- consistency
@dataclass
class Way:
    """One way of stylizing the sequence, with its results and measures."""

    name: str
    warm_start: bool
    weight: float  # the temporal weight; 0: none
    long_term: tuple[int, ...] = (1,)
    results: list[np.ndarray] = field(default_factory=list)
    paper_loss: list[float] = field(default_factory=list)
    seconds: list[float] = field(default_factory=list)
    flow_seconds: list[float] = field(default_factory=list)


def stylize_frame(way: Way, t: int, seq: SyntheticSequence, model, style: torch.Tensor, params: StyleParams,
                  cache: dict) -> None:
    """Frame t the way ``way`` says, its start and targets from the shipped path (``temporal_inputs``:
    what the daemon's worker and ``video --local`` run), the long-term frames those it has."""
    content = seq.frames[t]
    frame_params = params.replace(temporal_weight=way.weight)
    started = time.perf_counter()
    start_image, targets = None, ()
    if way.warm_start and t > 0:
        earlier = [(_tensor(seq.frames[t - back]), _tensor(way.results[t - back]))
                   for back in way.long_term[1:] if t - back >= 0]
        start_image, targets = temporal_inputs(_tensor(content), _tensor(seq.frames[t - 1]),
                                               _tensor(way.results[t - 1]), frame_params, "dis", earlier)
    flow_done = time.perf_counter()
    result = stylize(model, _tensor(content), [style], frame_params,
                     target_cache=cache, start_image=start_image, temporal=targets)
    way.seconds.append(time.perf_counter() - started)
    way.flow_seconds.append(flow_done - started)
    way.results.append(_array(result.image))
    way.paper_loss.append(result.loss.content + result.loss.style + result.loss.tv)


def _inside(box: tuple[int, int, int, int], x: np.ndarray, y: np.ndarray) -> np.ndarray:
    bx, by, side_x, side_y = box
    return (x >= bx) & (x < bx + side_x) & (y >= by) & (y < by + side_y)


def reappearing_error(results: Sequence[np.ndarray], seq: SyntheticSequence, pan: tuple[int, int]) -> float:
    """What only a long-term frame can hold: on the background frame t−1's square covered (true motion),
    the mean squared distance of S_t to the closest earlier result that saw the point, over t ≥ 2; NaN when
    the sequence uncovers nothing an earlier frame saw."""
    height, width = results[0].shape[:2]
    x, y = np.meshgrid(np.arange(width), np.arange(height))
    dx, dy = pan
    total, count = 0.0, 0
    for t in range(2, len(results)):
        pending = ~_inside(seq.occluder_boxes[t], x, y) & _inside(seq.occluder_boxes[t - 1], x + dx, y + dy)
        for back in range(2, t + 1):
            qx, qy = x + back * dx, y + back * dy
            seen = pending & (qx >= 0) & (qx < width) & (qy >= 0) & (qy < height)
            seen[seen] = ~_inside(seq.occluder_boxes[t - back], qx[seen], qy[seen])
            if seen.any():
                difference = results[t][seen] - results[t - back][qy[seen], qx[seen]]
                total += float((difference ** 2).sum())
                count += int(seen.sum())
            pending &= ~seen
    return total / count if count else float("nan")


def warping_error(results: Sequence[np.ndarray], seq: SyntheticSequence) -> float:
    """Mean over t ≥ 1 of Σ c (S_t − ω(S_{t−1}))² / Σ c, with the true flow and visibility."""
    errors = []
    for t in range(1, len(results)):
        backward, visible = seq.backward[t], seq.visible[t]
        assert backward is not None and visible is not None
        warped = flow.warp(results[t - 1], backward)
        c = visible.astype(np.float64)
        errors.append(float((c * ((results[t] - warped) ** 2).sum(axis=-1)).sum() / c.sum()))
    return statistics.fmean(errors)


def consistency(args: argparse.Namespace) -> None:
    torch.manual_seed(0)
    height, width = round(args.size * 3 / 4), args.size
    pan = (2, 1)
    seq = pan_with_occluder(_photo("tubingen.jpg")[200:, 150:], _photo("starry_night.jpg"), args.frames, height,
                            width, pan=pan, speed=(-4, 2), turn=args.turn)
    style = _tensor(_photo("starry_night.jpg"))
    model = random_vgg19(0)
    params = StyleParams(iterations=args.iterations, size=args.size, style_weight=args.style_weight,
                         progress_every=args.iterations, scales=1)
    ways = [Way("independent (baseline)", warm_start=False, weight=0.0),
            Way("warped previous as start", warm_start=True, weight=0.0)]
    ways += [Way(f"+ temporal loss λ={w:g}", warm_start=True, weight=w) for w in args.weights]
    if args.long_term:
        ways.append(Way(f"+ temporal λ={args.weights[0]:g}, long-term {','.join(map(str, args.long_term))}",
                        warm_start=True, weight=args.weights[0], long_term=tuple(args.long_term)))
    cache: dict = {}
    for t in range(args.frames):
        for way in ways:
            stylize_frame(way, t, seq, model, style, params, cache)
        print(f"frame {t + 1}/{args.frames} done", file=sys.stderr, flush=True)
    baseline = ways[0]
    base_error = warping_error(baseline.results, seq)
    base_loss = statistics.fmean(baseline.paper_loss[1:])
    print(f"\n{args.frames} frames of {width}×{height}, {args.iterations} iterations each, α 1, "
          f"β {args.style_weight:g}, L-BFGS; {platform.processor() or platform.machine()}, torch {torch.__version__}, "
          f"{torch.get_num_threads()} threads, random weights")
    base_reappearing = reappearing_error(baseline.results, seq, pan)
    print(f"{'way':44} {'warping error':>14} {'× baseline':>10} {'reappearing':>12} {'× baseline':>10} "
          f"{'paper loss ×':>12} {'frames/hour':>12} {'flow share':>10}")
    for way in ways:
        error = warping_error(way.results, seq)
        reappearing = reappearing_error(way.results, seq, pan)
        loss = statistics.fmean(way.paper_loss[1:]) / base_loss
        per_frame = statistics.fmean(way.seconds[1:])
        share = statistics.fmean(way.flow_seconds[1:]) / per_frame
        print(f"{way.name:44} {error:14.5f} {error / base_error:10.3f} {reappearing:12.5f} "
              f"{reappearing / base_reappearing:10.3f} {loss:12.3f} {3600 / per_frame:12.1f} {share:10.2%}")
    if args.save:
        args.save.mkdir(parents=True, exist_ok=True)
        for way in ways:
            strip = np.concatenate(way.results, axis=1)
            name = way.name.split(" (")[0].replace(" ", "_").replace("+", "").replace("=", "").strip("_")
            Image.fromarray((strip * 255 + 0.5).clip(0, 255).astype(np.uint8)).save(args.save / f"{name}.png")


# ---------------------------------------------------------------------- cost
def _two_frames(height: int, width: int) -> tuple[np.ndarray, np.ndarray]:
    """Two frames of a pan over Tübingen scaled to cover height × width."""
    photo = _photo("tubingen.jpg")
    scale = max((height + 8) / photo.shape[0], (width + 8) / photo.shape[1])
    if scale > 1:
        photo = cv2.resize(photo, (int(photo.shape[1] * scale) + 1, int(photo.shape[0] * scale) + 1),
                           interpolation=cv2.INTER_LINEAR)
    return photo[:height, :width], photo[2:2 + height, 3:3 + width]


def flow_overhead(previous: np.ndarray, current: np.ndarray, result: np.ndarray) -> float:
    """Seconds for what a consistent frame adds: both flows, the mask, the warp and the start image."""
    started = time.perf_counter()
    pair = flow.frame_pair_flow(previous, current, "dis")
    warped = flow.warp(result, pair.backward)
    flow.fill_disoccluded(warped, current, pair.certainty)
    return time.perf_counter() - started


def evaluation_seconds(model, content: np.ndarray, style: torch.Tensor, evaluations: int, max_memory: int) -> float:
    """Seconds per loss-and-gradient evaluation at the content's size (from the progress reports' clock)."""
    stamps: list[float] = []
    params = StyleParams(iterations=evaluations, size=max(content.shape[:2]), progress_every=1, scales=1,
                         max_memory=max_memory)

    def record(progress: EngineProgress) -> None:
        stamps.append(progress.elapsed)

    stylize(model, _tensor(content), [style], params, on_progress=record)
    return (stamps[-1] - stamps[0]) / (len(stamps) - 1)


def cost(args: argparse.Namespace) -> None:
    sizes = {"512": (384, 512), "1080p": (1080, 1920)}
    model = random_vgg19(0)
    style = _tensor(_photo("starry_night.jpg"))
    print(f"{platform.processor() or platform.machine()}, torch {torch.__version__}, {torch.get_num_threads()} "
          f"threads, OpenCV {cv2.__version__} ({cv2.getNumThreads()} threads), random weights")
    print(f"{'size':>10} {'flow+mask+warp':>15} {'evaluation':>11} {'share at 500 it':>16} "
          f"{'share at 30 it':>15}")
    for label in args.sizes:
        height, width = sizes[label]
        previous, current = _two_frames(height, width)
        overhead = statistics.median(flow_overhead(previous, current, previous) for _ in range(args.repeats))
        evaluation = evaluation_seconds(model, current, style, args.evaluations, args.max_memory)
        shares = [overhead / (overhead + n * evaluation) for n in (DEFAULT_ITERATIONS, 30)]
        print(f"{width}×{height:<5} {overhead * 1000:12.0f} ms {evaluation:9.2f} s {shares[0]:16.3%} "
              f"{shares[1]:15.3%}", flush=True)


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    run = sub.add_parser("consistency")
    run.add_argument("--size", type=int, default=96, help="frame width (height 3/4 of it)")
    run.add_argument("--frames", type=int, default=6)
    run.add_argument("--iterations", type=int, default=30)
    run.add_argument("--style-weight", type=float, default=1e5)
    run.add_argument("--weights", type=lambda s: [float(v) for v in s.split(",")],
                     default=[StyleParams().temporal_weight], help="temporal weights, one run each")
    run.add_argument("--long-term", type=lambda s: [int(v) for v in s.split(",")], default=None,
                     help="earlier frames for a long-term run, e.g. 1,2,4")
    run.add_argument("--turn", type=int, default=None,
                     help="the square goes back after this frame, uncovering what earlier frames saw")
    run.add_argument("--save", type=Path, default=None, help="a folder for each way's frames side by side")
    price = sub.add_parser("cost")
    price.add_argument("--sizes", type=lambda s: s.split(","), default=["512", "1080p"])
    price.add_argument("--evaluations", type=int, default=3)
    price.add_argument("--repeats", type=int, default=3)
    price.add_argument("--max-memory", type=int, default=6144, help="MiB for the frame's optimisation")
    args = parser.parse_args(argv)
    {"consistency": consistency, "cost": cost}[args.command](args)


if __name__ == "__main__":
    main()
