"""The time a run has left, from its measured rate per unit of work.

A unit of work is one pixel-iteration on the whole-image path: the convolutions' cost grows with
the pixels. A block-wise evaluation costs more per pixel (``evaluation_work``): its crops overlap
by their margins, and pass 1 runs the network once more to the deepest style layer. So a later,
larger scale is estimated as dearer than the coarse ones in proportion, and the rate measured on
the scale now running (once it has two evaluations: the first pays one-off set-up) is what the
estimate follows.
"""
from __future__ import annotations

import time
from collections.abc import Callable, Collection, Sequence

from .block_grid import BlockGrid
from .layers import LAYER_INDEX
from .memory_cost import forward_flops_per_pixel, recompute_share
from .memory_plan import MemoryPlan


def evaluation_work(plan: MemoryPlan, style_layers: Collection[str], content_layers: Collection[str]) -> float:
    """One evaluation's work under ``plan``, in whole-image pixel-iterations."""
    pixels = plan.height * plan.width
    if plan.path == "whole" or plan.block_size is None:
        return float(pixels)
    layers = (*style_layers, *content_layers)
    grid = BlockGrid.for_layers(plan.height, plan.width, layers, plan.block_size)
    crops = sum((b.rows.crop_stop - b.rows.crop_start) * (b.cols.crop_stop - b.cols.crop_start) for b in grid.blocks())
    pass_two = 3 * forward_flops_per_pixel(max(layers, key=LAYER_INDEX.__getitem__))  # forward and backward
    pass_one = forward_flops_per_pixel(max(style_layers, key=LAYER_INDEX.__getitem__)) if style_layers else 0.0
    factor = (pass_one + pass_two) / pass_two
    if plan.content_targets == "recomputed":
        factor *= 1 + recompute_share(tuple(style_layers), tuple(content_layers))
    return crops * factor


class TimeLeft:
    """Seconds left in a run of scales with ``iterations[i]`` evaluations of ``work[i]`` units each."""

    def __init__(self, work: Sequence[float], iterations: Sequence[int],
                 clock: Callable[[], float] = time.perf_counter) -> None:
        self.work, self.iterations, self.clock = list(work), list(iterations), clock
        self.spent = 0.0  # seconds of evaluation in finished scales
        self.done = 0.0  # their work
        self.scale = 0
        self.scale_started = clock()
        self.marks: list[float] = []  # the clock after each evaluation of the current scale

    def start_scale(self, index: int) -> None:
        """Scale ``index`` begins optimising now (its targets are ready)."""
        if self.marks:
            self.spent += self.marks[-1] - self.scale_started
            self.done += len(self.marks) * self.work[self.scale]
        self.scale, self.scale_started, self.marks = index, self.clock(), []

    def evaluated(self) -> float | None:
        """Record one evaluation of the current scale; return the seconds left (None until measurable)."""
        self.marks.append(self.clock())
        rate = self._rate()
        if rate is None:
            return None
        left = (self.iterations[self.scale] - len(self.marks)) * self.work[self.scale]
        left += sum(n * w for n, w in zip(self.iterations[self.scale + 1:], self.work[self.scale + 1:]))
        return max(0.0, rate * left)

    def _rate(self) -> float | None:
        """Seconds per unit: this scale's after its first evaluation, else the run's so far."""
        if len(self.marks) >= 2:
            return (self.marks[-1] - self.marks[0]) / ((len(self.marks) - 1) * self.work[self.scale])
        spent = self.spent + (self.marks[-1] - self.scale_started if self.marks else 0.0)
        done = self.done + len(self.marks) * self.work[self.scale]
        return spent / done if done > 0 else None
