"""Coarse-to-fine arithmetic (engine/schedule.py) and the time-left estimate (engine/time_left.py): pure functions."""
from __future__ import annotations

import itertools
import math

import pytest

from neural_style.daemon.engine.memory_budget import Budget
from neural_style.daemon.engine.memory_plan import MemoryPlan, OptimizerState, plan_memory, smaller_blocks
from neural_style.daemon.engine.params import DEFAULT_CONTENT_LAYERS, DEFAULT_STYLE_LAYERS
from neural_style.daemon.engine.schedule import (
    AUTO_STEP,
    COARSE_SIDE,
    Scale,
    scale_sizes,
    schedule,
    split_iterations,
)
from neural_style.daemon.engine.time_left import TimeLeft, evaluation_work

PAPER = dict(style_layers=DEFAULT_STYLE_LAYERS, content_layers=DEFAULT_CONTENT_LAYERS)


# ---------------------------------------------------------------------- the sizes
def test_automatic_sizes_run_from_about_the_coarse_side_up_to_the_output():
    for step in (2.0, math.sqrt(2)):
        sizes = scale_sizes(3000, 4000, 0, 16, step=step)
        assert sizes[-1] == (3000, 4000)
        assert max(sizes[0]) <= COARSE_SIDE < max(sizes[0]) * step  # the first size is the one just below
        for (h1, w1), (h2, w2) in itertools.pairwise(sizes):
            assert w2 / w1 == pytest.approx(step, rel=0.01) and h2 / h1 == pytest.approx(step, rel=0.01)
    assert scale_sizes(768, 1024, 0, step=2.0) == [(384, 512), (768, 1024)]
    assert scale_sizes(768, 1024, 0, step=math.sqrt(2)) == [(384, 512), (543, 724), (768, 1024)]


def test_an_output_no_larger_than_the_coarse_side_runs_at_one_size():
    assert scale_sizes(384, COARSE_SIDE, 0) == [(384, COARSE_SIDE)]
    assert scale_sizes(40, 48, 0) == [(40, 48)]


def test_explicit_scales_keep_their_meaning_each_twice_the_last():
    assert scale_sizes(400, 800, 3, 16) == [(100, 200), (200, 400), (400, 800)]
    assert scale_sizes(40, 48, 3, 16) == [(16, 16), (20, 24), (40, 48)]  # raised to the layers' smallest side
    assert scale_sizes(20, 20, 3, 16) == [(16, 16), (20, 20)]  # sizes that coincide once raised are merged


# ---------------------------------------------------------------------- the split
@pytest.mark.parametrize("total", [2, 3, 7, 100, 501])
def test_the_split_covers_every_size_sums_exactly_and_front_loads(total):
    pixels = [192 * 256, 384 * 512, 768 * 1024]
    if total < len(pixels):
        with pytest.raises(ValueError):
            split_iterations(total, pixels)
        return
    counts = split_iterations(total, pixels)
    assert sum(counts) == total and min(counts) >= 1
    assert counts == sorted(counts, reverse=True)  # more where an iteration is cheaper


def test_the_split_follows_its_exponent():
    pixels = [100, 400]
    assert split_iterations(102, pixels, front_loading=0.0) == [51, 51]  # equal iterations
    assert split_iterations(102, pixels, front_loading=1.0) == [81, 21]  # equal time: 80 × 100 ≈ 20 × 400
    half = split_iterations(302, pixels, front_loading=0.5)
    assert half == [201, 101]  # ∝ (400/100)^½ = 2 : 1


def test_with_fewer_iterations_than_sizes_the_coarsest_are_dropped():
    scales = schedule(3000, 4000, scales=0, iterations=2, smallest=16)
    assert [s.size for s in scales] == scale_sizes(3000, 4000, 0, 16)[-2:]
    assert [s.iterations for s in scales] == [1, 1]
    only = schedule(3000, 4000, scales=0, iterations=1, smallest=16)
    assert only == [Scale(3000, 4000, 1)]


def test_the_automatic_step_is_one_of_the_measured_ones():
    assert AUTO_STEP in (2.0, math.sqrt(2))


# ---------------------------------------------------------------------- time left
class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_time_left_follows_the_measured_rate_and_counts_later_scales_as_dearer():
    clock = FakeClock()
    left = TimeLeft(work=[100.0, 400.0], iterations=[4, 2], clock=clock)
    left.start_scale(0)
    clock.now = 3.0  # the first evaluation pays one-off set-up
    first = left.evaluated()
    assert first == pytest.approx(3.0 / 100 * (3 * 100 + 2 * 400))  # the run's rate so far
    clock.now = 4.0
    assert left.evaluated() == pytest.approx(1.0 / 100 * (2 * 100 + 2 * 400))  # this scale's own rate from now on
    clock.now, _ = 5.0, left.evaluated()
    clock.now = 6.0
    assert left.evaluated() == pytest.approx(0.01 * 800)  # the fine scale: 2 × 4 times the work
    clock.now = 7.0
    left.start_scale(1)
    clock.now = 11.0
    # The run's rate so far: 6 s for scale 1's 400 units, 4 s for this one's first 400 (the second
    # between the scales, computing targets, is not an evaluation's).
    assert left.evaluated() == pytest.approx(10.0 / 800 * 400)
    clock.now = 15.0
    assert left.evaluated() == 0.0


def test_time_left_weighs_the_output_sizes_leading_bf16_evaluations_and_then_follows_the_float32_ones():
    """The output size's first evaluations are cheaper (``cheap``: 2 at half the cost): the estimate weighs
    them so while they run, then follows the float32 ones' own rate, whatever the bf16 ones' share turned out."""
    clock = FakeClock()
    left = TimeLeft(work=[100.0], iterations=[5], clock=clock, cheap=[(2, 0.5)])
    left.start_scale(0)
    clock.now = 3.0  # the first (bf16) evaluation pays set-up: the run's rate so far, 3 s for 50 units
    assert left.evaluated() == pytest.approx(3.0 / 50 * (50 + 3 * 100))
    clock.now = 4.0  # the second bf16 one: 1 s for 50 units, the three float32 ones left at that rate
    assert left.evaluated() == pytest.approx(1.0 / 50 * 300)
    clock.now = 9.0  # the first float32 one took 5 s, not the 2 s the share predicted: its rate from now on
    assert left.evaluated() == pytest.approx(5.0 / 100 * 200)
    clock.now = 13.0
    assert left.evaluated() == pytest.approx(4.5 / 100 * 100)  # the float32 ones' mean: (5 + 4) / 2
    clock.now = 17.0
    assert left.evaluated() == 0.0


def test_a_block_wise_evaluation_counts_as_more_work_than_its_pixels():
    budget = Budget(1 << 40, "test")
    whole = plan_memory(2048, 2048, budget=budget, history=100, **PAPER)
    assert evaluation_work(whole, DEFAULT_STYLE_LAYERS, DEFAULT_CONTENT_LAYERS) == 2048 * 2048
    blocks = smaller_blocks(smaller_blocks(whole, **PAPER), **PAPER)
    assert blocks.block_size == 512
    work = evaluation_work(blocks, DEFAULT_STYLE_LAYERS, DEFAULT_CONTENT_LAYERS)
    assert 1.5 * 2048 * 2048 < work < 2.5 * 2048 * 2048  # margins of 80 px and pass 1's forward pass


# ---------------------------------------------------------------------- the retry's plans
def test_smaller_blocks_halve_the_side_down_to_the_layers_grid():
    whole = plan_memory(1000, 600, budget=Budget(1 << 40, "test"), history=100, **PAPER)
    assert whole.path == "whole"
    first = smaller_blocks(whole, **PAPER)
    assert (first.path, first.block_size, first.optimizer, first.content_targets) == (
        "blocks", 496, whole.optimizer, "stored")  # half of 1000, on relu5_1's 16-pixel grid
    sides = [first.block_size]
    plan: MemoryPlan | None = first
    while plan is not None:
        sides.append(plan.block_size)
        plan = smaller_blocks(plan, **PAPER)
    assert sides[-1] == 16 and all(b < a for a, b in itertools.pairwise(sides[1:]))
    assert first.predicted_peak > smaller_blocks(first, **PAPER).predicted_peak
    assert smaller_blocks(first, style_layers=("relu1_1",)).block_size == 248  # one pixel's grid: any size


def test_an_adam_plan_stays_adam_when_it_shrinks():
    plan = plan_memory(800, 800, budget=Budget(1 << 40, "test"), history=100, optimizer="adam", **PAPER)
    assert smaller_blocks(plan, **PAPER).optimizer == OptimizerState("adam")
