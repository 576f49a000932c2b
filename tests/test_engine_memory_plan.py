"""The memory planner's decisions, its cost model's arithmetic, and reading the budget (no GPU needed)."""
from __future__ import annotations

import itertools
from pathlib import Path

import pytest
import torch

from neural_style.daemon.engine import memory_budget as budget_module
from neural_style.daemon.engine import memory_plan
from neural_style.daemon.engine.memory_budget import Budget, available_ram, memory_budget, parse_meminfo
from neural_style.daemon.engine.memory_cost import (
    VECTOR_BYTES_PER_PIXEL,
    EvaluationCost,
    activation_floats,
    guide_bytes_per_pixel,
    recompute_share,
    region_evaluation_bytes,
    region_held_bytes,
    stored_target_bytes_per_pixel,
    temporal_vectors,
)
from neural_style.daemon.engine.memory_plan import (
    MAX_CROP_OVERHEAD,
    MemoryBudgetTooSmall,
    OptimizerState,
    _Sizing,
    economy_ladder,
    plan_memory,
)
from neural_style.daemon.engine.params import DEFAULT_CONTENT_LAYERS, DEFAULT_STYLE_LAYERS

GiB = 1 << 30
PAPER = dict(style_layers=DEFAULT_STYLE_LAYERS, content_layers=DEFAULT_CONTENT_LAYERS, history=100)


def plan(height, width, gib, **kwargs):
    return plan_memory(height, width, budget=Budget(int(gib * GiB), "test"), **{**PAPER, **kwargs})


def sizing(height, width, **kwargs):
    options = {"pooling": "avg", "precision": "fp32", **kwargs}
    layers = (*DEFAULT_STYLE_LAYERS, *DEFAULT_CONTENT_LAYERS)
    return _Sizing(height, width, layers, DEFAULT_CONTENT_LAYERS, options["pooling"], options["precision"],
                   EvaluationCost(), options.get("temporal_frames", 0), options.get("regions", 0), DEFAULT_STYLE_LAYERS)


# ---------------------------------------------------------------------- decisions
def test_an_image_that_fits_is_optimised_whole_with_the_full_history():
    p = plan(512, 512, 8)
    assert (p.path, p.block_size, p.blocks) == ("whole", None, 1)
    assert p.optimizer == OptimizerState("lbfgs", 100) and p.content_targets == "stored"
    assert p.predicted_peak <= 8 * GiB


def test_the_whole_image_with_a_shorter_history_comes_before_any_blocks():
    """Block-wise evaluations cost 2.0–2.4× the whole image's (docs/PERFORMANCE.md): where a history of 10 lets
    the whole image fit but 100 does not, the plan is the whole image with the shorter history."""
    s = sizing(1152, 1536)
    short, full = OptimizerState("lbfgs", 10), OptimizerState("lbfgs", 100)
    budget = (s.fixed_bytes(short, "stored") + s.whole_bytes() + 1) / GiB
    assert s.fixed_bytes(full, "stored") + s.whole_bytes() > budget * GiB  # the full history would need blocks
    p = plan(1152, 1536, budget)
    assert (p.path, p.optimizer) == ("whole", short) and p.predicted_peak <= budget * GiB


def test_an_image_that_does_not_fit_whole_gets_the_largest_blocks_that_fit(monkeypatch):
    monkeypatch.setattr(memory_plan, "HISTORY_FRACTIONS", ())  # else a shorter history fits it whole (above)
    s = sizing(2048, 2048)
    full = OptimizerState("lbfgs", 100)
    budget = (s.fixed_bytes(full, "stored") + s.block_bytes(1024) + 1) / GiB
    p = plan(2048, 2048, budget)
    assert s.fixed_bytes(full, "stored") + s.whole_bytes() > budget * GiB  # whole would not fit
    assert (p.path, p.optimizer, p.content_targets) == ("blocks", full, "stored") and p.blocks > 1
    assert p.block_size >= 1024 and p.predicted_peak <= budget * GiB
    room = budget * GiB - s.fixed_bytes(full, "stored")
    assert s.block_bytes(p.block_size + 16) > room  # one alignment step larger would not fit: the largest
    assert s.overhead(p.block_size) <= MAX_CROP_OVERHEAD
    assert p.block_size % 16 == 0 and p.margin == 80  # relu5_1's grid and margin


def test_a_tight_budget_walks_the_ladder_to_the_first_step_with_efficient_blocks():
    s = sizing(2048, 2048)
    budget = (s.fixed_bytes(OptimizerState("lbfgs", 20), "stored") + s.block_bytes(512)) / GiB
    p = plan(2048, 2048, budget)
    assert p.optimizer == OptimizerState("lbfgs", 20)  # 100 and 50 leave no room for efficient blocks
    assert s.overhead(p.block_size) <= MAX_CROP_OVERHEAD
    assert plan(1024, 1024, 1).optimizer == OptimizerState("adam")


def test_without_efficient_blocks_anywhere_the_largest_block_that_fits_is_taken():
    s = sizing(1024, 1024)
    budget = (s.fixed_bytes(OptimizerState("adam"), "recomputed") + s.block_bytes(160)) / GiB
    p = plan(1024, 1024, budget)
    assert p.path == "blocks" and s.overhead(p.block_size) > MAX_CROP_OVERHEAD
    assert p.optimizer == OptimizerState("adam") and p.content_targets == "recomputed" and p.block_size >= 160


def test_a_budget_too_small_for_any_block_is_a_clear_error():
    with pytest.raises(MemoryBudgetTooSmall, match=r"4000×3000 needs at least .* GiB .* budget is 0.50 GiB \(test\)"):
        plan(3000, 4000, 0.5)


def test_adam_asked_for_stays_adam():
    for gib in (1, 64):
        assert plan(1024, 1024, gib, optimizer="adam").optimizer == OptimizerState("adam")


def ladder(content_layers=DEFAULT_CONTENT_LAYERS, **kwargs):
    options = dict(optimizer="lbfgs", history=100, style_layers=DEFAULT_STYLE_LAYERS, content_layers=content_layers,
                   device_type="cpu", host_budget=0, host_history_supported=False, pixels=12_000_000)
    return economy_ladder(**{**options, **kwargs})


def test_the_ladder_of_economies():
    lbfgs = [OptimizerState("lbfgs", h) for h in (100, 50, 20, 10)]
    stored = [(state, "stored") for state in (*lbfgs, OptimizerState("adam"))]
    assert ladder() == [*stored, (OptimizerState("adam"), "recomputed")]
    assert ladder(content_layers=()) == [(state, "none") for state in (*lbfgs, OptimizerState("adam"))]
    assert ladder(optimizer="adam") == [(OptimizerState("adam"), "stored"), (OptimizerState("adam"), "recomputed")]
    # relu1_1 targets cost 256 B/px to store and almost nothing to recompute: recomputing comes first.
    assert ladder(content_layers=("relu1_1",))[:3] == [(lbfgs[0], "stored"), (lbfgs[0], "recomputed"),
                                                       (lbfgs[1], "recomputed")]
    assert ladder(history=10) == [(OptimizerState("lbfgs", h), "stored") for h in (10, 5, 2, 1)] + [
        (OptimizerState("adam"), "stored"), (OptimizerState("adam"), "recomputed")]


def test_history_on_the_host_only_for_a_gpu_whose_optimiser_supports_it():
    host = OptimizerState("lbfgs", 100, host_history=True)
    gpu = dict(device_type="cuda", host_budget=64 * GiB, host_history_supported=True)
    assert [state for state, _ in ladder(**gpu)][4:6] == [host, OptimizerState("adam")]
    assert host not in [state for state, _ in ladder(**{**gpu, "host_history_supported": False})]
    assert host not in [state for state, _ in ladder(**{**gpu, "device_type": "cpu"})]
    assert host not in [state for state, _ in ladder(**{**gpu, "host_budget": 1 * GiB})]  # 28.8 GB of history
    s = sizing(3000, 4000)
    budget = (s.fixed_bytes(host, "stored") + s.block_bytes(1024)) / GiB
    assert plan(3000, 4000, budget, **gpu).optimizer == host
    assert host.device_vectors() + 2 * 100 == OptimizerState("lbfgs", 100).device_vectors()


def test_shallow_content_targets_are_recomputed_before_the_history_is_shortened():
    assert recompute_share(DEFAULT_STYLE_LAYERS, ("relu1_1",)) < 0.01
    assert recompute_share(DEFAULT_STYLE_LAYERS, ("relu4_2",)) == pytest.approx(0.19, abs=0.01)
    s = _Sizing(3000, 4000, (*DEFAULT_STYLE_LAYERS, "relu1_1"), ("relu1_1",), "avg", "fp32", EvaluationCost())
    full = OptimizerState("lbfgs", 100)
    budget = (s.fixed_bytes(full, "recomputed") + s.block_bytes(512)) / GiB
    assert s.fixed_bytes(full, "stored") > budget * GiB  # storing them would leave no room at all
    shallow = plan(3000, 4000, budget, content_layers=("relu1_1",))
    assert (shallow.content_targets, shallow.optimizer.history) == ("recomputed", 100)


def test_no_content_layers_means_no_content_targets():
    assert plan(512, 512, 8, content_layers=()).content_targets == "none"


@pytest.mark.parametrize("height,width,gib,precision,pooling", list(itertools.product(
    (300, 1500, 4000), (700, 6000), (1, 3, 12, 80), ("fp32", "bf16"), ("avg", "max"))))
def test_every_plan_keeps_its_prediction_within_the_budget(height, width, gib, precision, pooling):
    try:
        p = plan(height, width, gib, precision=precision, pooling=pooling)
    except MemoryBudgetTooSmall:
        s = sizing(height, width, precision=precision, pooling=pooling)
        assert s.fixed_bytes(OptimizerState("adam"), "recomputed") + s.block_bytes(16) > gib * GiB
        return
    assert 0 < p.predicted_peak <= gib * GiB
    assert p.path == "blocks" or p.blocks == 1


def test_half_precision_predicts_less_memory_per_evaluation():
    """Half the bytes per activation, less the float32 copies the losses read (measured: about 20 % less)."""
    half, full = sizing(4000, 4000, precision="bf16").block_bytes(1024), sizing(4000, 4000).block_bytes(1024)
    assert 0.5 * full < half < 0.95 * full


def test_describe_is_one_line_with_the_choices():
    line = plan(2048, 2048, 4).describe()
    assert "\n" not in line
    for part in ("2048×2048", "blocks of", "margin 80 px", "L-BFGS history",
                 "content targets stored", "GiB of 4.00 GiB (test)"):
        assert part in line
    assert "whole image" in plan(256, 256, 4).describe()


# ---------------------------------------------------------------------- the cost model
def test_activation_count_follows_the_layer_table():
    # relu1_1: the input and its normalised copy (3 + 3), conv1_1's 64 channels; at its backward
    # step the 64-channel output and its gradient pair are alive: 6 + 64 + 64 + 3.
    assert activation_floats(("relu1_1",)) == 137
    # Requesting the convolution itself keeps the ReLU from running in place: one more 64-channel tensor.
    assert activation_floats(("conv1_1", "relu1_1")) > activation_floats(("relu1_1",))
    # Max pooling keeps int64 indices; deeper layers add activations.
    deepest_max, deepest_avg = activation_floats(("relu5_1",), "max"), activation_floats(("relu5_1",), "avg")
    assert deepest_max > deepest_avg > activation_floats(("relu3_1",))
    assert stored_target_bytes_per_pixel(("relu4_2",)) == 32 and stored_target_bytes_per_pixel(("relu1_1",)) == 256


# ---------------------------------------------------------------------- the budget
def test_meminfo_parsing_and_the_available_ram_fallback(tmp_path):
    text = ("MemTotal:       24000000 kB\nMemFree:         1000 kB\nMemAvailable:   20000000 kB\n"
            "HugePages_Total:       0\n")
    assert parse_meminfo(text) == {"MemTotal": 24000000 * 1024, "MemFree": 1024000, "MemAvailable": 20000000 * 1024,
                                   "HugePages_Total": 0}
    (tmp_path / "meminfo").write_text(text)
    assert available_ram(tmp_path / "meminfo") == (20000000 * 1024, "available RAM (MemAvailable)")
    fallback, source = available_ram(tmp_path / "absent")
    assert fallback > 0 and "MemAvailable" not in source


def test_cpu_budget_is_the_available_ram_or_the_cap_less_what_is_in_use(monkeypatch):
    total = parse_meminfo(Path("/proc/meminfo").read_text())["MemTotal"] if Path("/proc/meminfo").is_file() else None
    free = memory_budget("cpu")
    assert free.bytes > 0 and (total is None or free.bytes <= total)
    in_use = budget_module.process_rss()
    assert in_use > 0 or not Path("/proc/self/statm").is_file()
    # The process's RSS moves between two reads; held still, the cap's arithmetic is exact.
    monkeypatch.setattr(budget_module, "process_rss", lambda: in_use)
    capped = memory_budget("cpu", max_memory=free.bytes // 2)
    assert capped.bytes == max(0, free.bytes // 2 - in_use) and "max_memory" in capped.source


def test_cuda_budget_counts_the_allocators_unused_cache(monkeypatch):
    monkeypatch.setattr(torch.cuda, "mem_get_info", lambda device=None: (10 * GiB, 80 * GiB))
    monkeypatch.setattr(torch.cuda, "memory_reserved", lambda device=None: 3 * GiB)
    monkeypatch.setattr(torch.cuda, "memory_allocated", lambda device=None: 1 * GiB)
    assert memory_budget("cuda") == Budget(12 * GiB, "free CUDA memory")
    assert memory_budget("cuda", max_memory=5 * GiB).bytes == 4 * GiB
    assert memory_budget("cuda", max_memory=50 * GiB).bytes == 12 * GiB


# ---------------------------------------------------------------------- sequences (issue 15)
def test_a_sequence_frames_temporal_buffers_are_planned_for():
    """Each earlier frame a temporal term holds the frame to adds its target image and certainty (given and at
    the working size) and the term's saved tensors, image-sized only: a budget that fits the frame alone
    does not fit it held to two earlier frames, and the plan says so by going block-wise."""
    alone = OptimizerState("lbfgs", 100)
    extra = sizing(1080, 1920, temporal_frames=2).fixed_bytes(alone, "stored") - sizing(1080, 1920).fixed_bytes(
        alone, "stored")
    assert extra == pytest.approx(temporal_vectors(2) * VECTOR_BYTES_PER_PIXEL * 1080 * 1920, abs=2)
    assert temporal_vectors(1) == pytest.approx(8 / 3 + 2) and temporal_vectors(0) == 0
    whole = plan(1080, 1920, 64)
    tight = (whole.predicted_peak + extra / 2) / GiB  # room for the frame alone, not for two targets' buffers
    assert plan(1080, 1920, tight).path == "whole"
    held = plan(1080, 1920, tight, temporal_frames=2)
    assert held.path == "blocks" or held.optimizer != whole.optimizer
    assert held.predicted_peak <= tight * GiB


def test_stylize_plans_for_the_temporal_targets_it_is_given(model, content, style, monkeypatch):
    """The frame count reaches the planner (and the out-of-memory retry's plan) only with a temporal weight."""
    from neural_style.daemon.engine import StyleParams, job_plan, stylize, transfer
    from neural_style.daemon.engine.temporal import TemporalTarget

    seen: list[int] = []
    real = job_plan.plan_job
    monkeypatch.setattr(transfer, "plan_job", lambda *a, **k: (seen.append(k["temporal_frames"]), real(*a, **k))[1])
    params = StyleParams(iterations=2, size=32)
    target = TemporalTarget(torch.rand(3, 40, 48), torch.ones(40, 48))  # at the content's size
    stylize(model, content, [style], params.replace(temporal_weight=10.0), temporal=[target, target])
    stylize(model, content, [style], params.replace(temporal_weight=0.0), temporal=[target])
    assert seen == [2, 0]


# ---------------------------------------------------------------------- region masks (issue 17)
#: The paper's style layers' Gram sides N_l (relu1_1…relu5_1) and pooling levels k_l.
PAPER_CHANNELS, PAPER_LEVELS = (64, 128, 256, 512, 512), (0, 1, 2, 3, 4)


def test_region_masks_bytes_are_counted_per_region():
    """By hand from the documented figures (docs/PERFORMANCE.md, "Region masks' memory"): per region, float32
    guides on every style layer's grid (4 B/4^k a pixel: 5.33 B/px), its map (4 B/px) and three Gram-sized
    matrices per layer, held; per evaluation, its m² (5.33 B/px again) and, from two regions on, one relu1_1-sized
    float32 buffer (64 × 4 = 256 B/px) where their gradients are summed."""
    guides = sum(4 / 4**k for k in PAPER_LEVELS)
    assert guides == pytest.approx(5.33, abs=0.01) and guide_bytes_per_pixel(DEFAULT_STYLE_LAYERS) == guides
    grams = 3 * sum(4 * n * n for n in PAPER_CHANNELS)
    height, width, regions = 768, 1024, 3
    pixels = height * width
    plain, masked = sizing(height, width), sizing(height, width, regions=regions)
    state = OptimizerState("lbfgs", 100)
    held = masked.fixed_bytes(state, "stored") - plain.fixed_bytes(state, "stored")
    assert held == pytest.approx(regions * ((guides + 4) * pixels + grams), abs=2)
    assert held == region_held_bytes(regions, DEFAULT_STYLE_LAYERS, pixels)
    evaluation = masked.whole_bytes() - plain.whole_bytes()
    assert evaluation == pytest.approx((regions * guides + 256) * pixels, abs=2)
    grid = masked.grid_for(512)  # block-wise: the held guides are the whole image's, the rest goes with the crop
    crop = grid.crop_side(height) * grid.crop_side(width)
    assert masked.block_bytes(512) - plain.block_bytes(512) == pytest.approx((regions * guides + 256) * crop, abs=2)
    # One region's backward sums no gradients (measured: as the unmasked one's); none costs nothing.
    assert region_evaluation_bytes(1, DEFAULT_STYLE_LAYERS, pixels) == pytest.approx(guides * pixels, abs=1)
    assert region_held_bytes(0, DEFAULT_STYLE_LAYERS, pixels) == region_evaluation_bytes(0, DEFAULT_STYLE_LAYERS,
                                                                                        pixels) == 0
    # Deeper style layers only: coarser guides, a smaller summed buffer (relu3_1: 256 channels at 1/16).
    assert region_evaluation_bytes(2, ("relu3_1",), pixels) == pytest.approx((2 * 4 / 16 + 256 * 4 / 16) * pixels,
                                                                             abs=1)


@pytest.mark.parametrize("regions", [2, 3, 4])
def test_a_budget_that_fits_the_job_alone_sends_its_regions_block_wise(regions):
    """A budget with room for the plain job, not for its region masks' buffers: the plan goes block-wise (or to a
    smaller optimiser state) and still keeps its prediction, the regions' bytes included, within the budget."""
    whole = plan(768, 1024, 64)
    assert whole.path == "whole"
    extra = (sizing(768, 1024, regions=regions).fixed_bytes(whole.optimizer, "stored") + sizing(
        768, 1024, regions=regions).whole_bytes()) - whole.predicted_peak
    assert extra > 0
    tight = (whole.predicted_peak + extra / 2) / GiB
    assert plan(768, 1024, tight).path == "whole"
    masked = plan(768, 1024, tight, regions=regions)
    assert masked.path == "blocks" or masked.optimizer != whole.optimizer
    assert masked.predicted_peak <= tight * GiB


def test_the_out_of_memory_retry_keeps_the_region_count(content, style):
    """``job_plan.shrink`` (the retry's smaller blocks) predicts with the plan's regions, as the first plan did."""
    from neural_style.daemon.engine import StyleParams
    from neural_style.daemon.engine.job_plan import plan_job, shrink

    params, cpu, roomy = StyleParams(iterations=2, size=512), torch.device("cpu"), Budget(64 * GiB, "test")
    plain = plan_job(content, [style], params, None, cpu, budget=roomy)
    masked = plan_job(content, [style], params, None, cpu, budget=roomy, regions=2)
    assert masked.regions == 2 and plain.regions == 0
    smaller_plain, smaller_masked = (shrink(p, params, cpu, p.memory[-1]) for p in (plain, masked))
    assert smaller_plain is not None and smaller_masked is not None
    assert smaller_masked.block_size == smaller_plain.block_size
    height, width = masked.memory[-1].height, masked.memory[-1].width
    grid = _Sizing(height, width, (*DEFAULT_STYLE_LAYERS, *DEFAULT_CONTENT_LAYERS), DEFAULT_CONTENT_LAYERS, "avg",
                   "fp32", EvaluationCost()).grid_for(smaller_masked.block_size)
    crop = grid.crop_side(height) * grid.crop_side(width)
    assert smaller_masked.predicted_peak - smaller_plain.predicted_peak == pytest.approx(
        region_held_bytes(2, DEFAULT_STYLE_LAYERS, height * width)
        + region_evaluation_bytes(2, DEFAULT_STYLE_LAYERS, crop), abs=2)


def test_stylize_plans_for_the_regions_its_masks_make(model, content, style, monkeypatch):
    """The region count reaches the planner: one per masked style, and "the rest" for the unmasked ones."""
    from neural_style.daemon.engine import StyleParams, job_plan, stylize, transfer

    seen: list[int] = []
    real = job_plan.plan_job
    monkeypatch.setattr(transfer, "plan_job", lambda *a, **k: (seen.append(k["regions"]), real(*a, **k))[1])
    params = StyleParams(iterations=1, size=32)
    left = torch.zeros(1, 40, 48)
    left[..., :24] = 1
    right = 1 - left
    stylize(model, content, [style, style], params, style_masks=[left, right])
    stylize(model, content, [style, style], params, style_masks=[left])  # the second style takes the rest
    stylize(model, content, [style, style], params, style_masks=[None, None])
    stylize(model, content, [style], params)
    assert seen == [2, 2, 0, 0]
