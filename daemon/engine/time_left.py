"""The time a run has left, from its measured rate per unit of work.

A unit of work is one pixel-iteration on the whole-image path: the convolutions' cost grows with
the pixels. A block-wise evaluation costs more per pixel (``evaluation_work``): its crops overlap
by their margins, and pass 1 runs the network once more to the deepest style layer. So a later,
larger scale is estimated as dearer than the coarse ones in proportion, and the rate measured on
the scale now running (once it has two evaluations: the first pays one-off set-up) is what the
estimate follows. A coarse-to-fine run's output size starts with a few cheaper bf16 evaluations
(``device_tuning.LeadingBf16``): they are weighed as cheaper (``BF16_CPU_COST``), and once a float32 one
has been timed the rate follows the float32 ones alone, since the bf16 share of the cost varies by host.
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
    """Seconds left in a run of scales with ``iterations[i]`` evaluations of ``work[i]`` units each.

    ``cheap[i] = (n, share)``: scale i's first n evaluations cost ``share`` of its others (none by default)."""

    def __init__(self, work: Sequence[float], iterations: Sequence[int],
                 clock: Callable[[], float] = time.perf_counter,
                 cheap: Sequence[tuple[int, float]] | None = None) -> None:
        self.work, self.iterations, self.clock = list(work), list(iterations), clock
        self.cheap = list(cheap) if cheap is not None else [(0, 1.0)] * len(self.work)
        self.spent = 0.0  # seconds of evaluation in finished scales
        self.done = 0.0  # their work
        self.scale = 0
        self.scale_started = clock()
        self.marks: list[float] = []  # the clock after each evaluation of the current scale

    def _work(self, scale: int, start: int, stop: int) -> float:
        """The work of scale ``scale``'s evaluations ``start`` to ``stop`` (0-based, ``stop`` excluded)."""
        count, share = self.cheap[scale]
        cheap = max(0, min(stop, count) - start)
        return self.work[scale] * (max(0, stop - start - cheap) + share * cheap)

    def start_scale(self, index: int) -> None:
        """Scale ``index`` begins optimising now (its targets are ready)."""
        if self.marks:
            self.spent += self.marks[-1] - self.scale_started
            self.done += self._work(self.scale, 0, len(self.marks))
        self.scale, self.scale_started, self.marks = index, self.clock(), []

    def evaluated(self) -> float | None:
        """Record one evaluation of the current scale; return the seconds left (None until measurable)."""
        self.marks.append(self.clock())
        rate = self._rate()
        if rate is None:
            return None
        left = self._work(self.scale, len(self.marks), self.iterations[self.scale])
        left += sum(self._work(i, 0, self.iterations[i]) for i in range(self.scale + 1, len(self.work)))
        return max(0.0, rate * left)

    def _rate(self) -> float | None:
        """Seconds per unit: this scale's after its first evaluation (its full-cost ones' once one is timed),
        else the run's so far."""
        timed = len(self.marks)
        full_cost = max(1, self.cheap[self.scale][0])  # the first full-cost evaluation (the first pays set-up)
        first = full_cost if timed - 1 >= full_cost else 1
        if timed >= 2:
            return (self.marks[-1] - self.marks[first - 1]) / self._work(self.scale, first, timed)
        spent = self.spent + (self.marks[-1] - self.scale_started if self.marks else 0.0)
        done = self.done + self._work(self.scale, 0, timed)
        return spent / done if done > 0 else None
