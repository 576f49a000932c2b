"""Full resolution in stylize(): the content's own size, the memory plan in the loop (whole image or
blocks), the retry after running out of memory, previews capped, the time left, and a result that is
computed at its size rather than upscaled. Small images, small blocks and small budgets."""
from __future__ import annotations

import copy
import logging
import math

import pytest
import torch
from conftest import smooth_image

from neural_style.daemon.engine import MemoryBudgetTooSmall, ParamError, StyleParams, stylize, transfer
from neural_style.daemon.engine import memory_budget as budget_module
from neural_style.daemon.engine.imaging import resize
from neural_style.daemon.engine.schedule import content_weight_factor, schedule
from neural_style.daemon.engine.targets import style_size

#: Shallow layers: a 2-pixel grid and a 4-pixel margin, so that blocks are efficient on small images.
SHALLOW = dict(style_layers=("relu1_1", "relu2_1"), content_layers=("relu2_1",))


@pytest.fixture
def no_rss(monkeypatch):
    """``max_memory`` caps the process's total; pytest's own RSS (the whole suite's) is not the run's, so it
    counts as 0 here and the budget is ``max_memory`` itself."""
    monkeypatch.setattr(budget_module, "process_rss", lambda: 0)


def test_size_0_is_the_contents_own_size(model, style):
    content = smooth_image(90, 140, seed=3, channels=4)
    result = stylize(model, content, [style], StyleParams(iterations=2, size=0))
    assert result.image.shape == (4, 90, 140)
    assert torch.equal(result.image[3], content[3])
    assert [(p.height, p.width) for p in result.plans] == [(90, 140)]


def test_size_0_without_a_content_needs_the_textures_size(model, style):
    with pytest.raises(ParamError, match="width and height"):
        stylize(model, None, [style], StyleParams(iterations=1, size=0, content_layers=()))
    texture = stylize(model, None, [style], StyleParams(iterations=1, size=0, content_layers=(), width=40, height=24))
    assert texture.image.shape == (3, 24, 40)


def test_a_small_max_memory_goes_block_wise_and_gives_the_whole_images_result(model, style, no_rss, full_history_only):
    content = smooth_image(96, 128, seed=4)
    params = StyleParams(iterations=5, size=0, progress_every=1, **SHALLOW)
    whole = stylize(model, content, [style], params)
    blocks = stylize(model, content, [style], params.replace(max_memory=135))  # 6 blocks with history 100
    assert whole.plans[0].path == "whole"
    assert blocks.plans[0].path == "blocks" and blocks.plans[0].blocks > 1
    assert blocks.plans[0].optimizer == whole.plans[0].optimizer  # the same L-BFGS: only the path differs
    assert blocks.image.shape == whole.image.shape
    # Equal up to float32 rounding, which L-BFGS (no line search) amplifies at a few pixels, and the box's
    # projection at a few more (a pixel a rounding away from a bound clamps in one run and not the other):
    difference = (blocks.image - whole.image).abs()
    assert float(difference.mean()) < 1e-4
    assert float((difference > 1 / 255).float().mean()) < 1e-2
    assert blocks.loss.total == pytest.approx(whole.loss.total, rel=1e-3)


def test_in_float64_the_block_wise_job_ends_exactly_where_the_whole_image_job_does(model, style, no_rss,
                                                                                    full_history_only):
    """With rounding at 1e-16 there is nothing for L-BFGS to amplify: the whole job, not only one evaluation,
    gives the whole image's result block by block (the image and the optimiser take the network's dtype)."""
    model64 = copy.deepcopy(model).double()
    content = smooth_image(96, 128, seed=4)
    params = StyleParams(iterations=5, size=0, progress_every=1, **SHALLOW)
    whole = stylize(model64, content, [style], params)
    blocks = stylize(model64, content, [style], params.replace(max_memory=135))
    assert whole.plans[0].path == "whole" and blocks.plans[0].path == "blocks" and blocks.plans[0].blocks > 1
    assert float((blocks.image - whole.image).abs().max()) < 1e-6  # the result's own float32 rounding
    assert blocks.loss.total == pytest.approx(whole.loss.total, rel=1e-10)


def test_a_budget_too_small_for_any_block_is_refused_with_what_it_needs(model, style, no_rss):
    with pytest.raises(MemoryBudgetTooSmall, match=r"needs at least .* budget is 0\.06 GiB"):
        stylize(model, smooth_image(96, 128, seed=4), [style], StyleParams(iterations=2, size=0, max_memory=64))


def test_the_plan_is_logged_at_the_start_of_every_job(model, content, style, caplog):
    with caplog.at_level(logging.INFO, logger="neural_style.daemon.engine"):
        stylize(model, content, [style], StyleParams(iterations=3, size=48, scales=2))
    lines = [r.getMessage() for r in caplog.records if r.name.startswith("neural_style.daemon.engine")]
    assert lines[0].startswith("plan: 2 scales: 24×20 (") and "→ 48×40 (" in lines[0]
    assert lines[1].startswith("plan: scale 1/2: 24×20: whole image, L-BFGS history 100")
    assert lines[2].startswith("plan: scale 2/2: 48×40:") and "predicted peak" in lines[2]


# ---------------------------------------------------------------------- running out of memory
def _failing_once(monkeypatch, error: BaseException) -> list[int]:
    """The whole-image objective raises ``error`` on its first evaluation (a fake out-of-memory)."""
    calls: list[int] = []
    real = transfer.whole_image_objective

    def build(*args, **kwargs):
        objective = real(*args, **kwargs)

        def evaluate(x):
            calls.append(1)
            if len(calls) == 1:
                raise error
            return objective(x)

        return evaluate

    monkeypatch.setattr(transfer, "whole_image_objective", build)
    return calls


def test_an_out_of_memory_evaluation_is_retried_with_smaller_blocks(model, style, monkeypatch, caplog):
    content = smooth_image(64, 96, seed=5)
    params = StyleParams(iterations=4, size=0, progress_every=1, **SHALLOW)
    expected = stylize(model, content, [style], params)
    calls = _failing_once(monkeypatch, torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB"))
    events = []
    with caplog.at_level(logging.WARNING, logger="neural_style.daemon.engine"):
        result = stylize(model, content, [style], params, on_progress=events.append)
    assert calls == [1]  # the whole image failed once; blocks took over
    assert result.iterations == 4 and [e.iteration for e in events] == [1, 2, 3, 4]
    plan = result.plans[0]
    assert (plan.path, plan.block_size, plan.blocks, plan.interior) == ("blocks", 48, 4, (32, 48))  # half of 96
    assert "ran out of memory" in caplog.text and "retrying with" in caplog.text
    assert float((result.image - expected.image).abs().mean()) < 1e-4  # the same optimisation, by blocks


def test_other_errors_are_not_retried(model, content, style, monkeypatch):
    _failing_once(monkeypatch, RuntimeError("a bug, not memory"))
    with pytest.raises(RuntimeError, match="a bug"):
        stylize(model, content, [style], StyleParams(iterations=2, size=48))


def test_out_of_memory_at_the_smallest_blocks_ends_the_job(model, content, style, monkeypatch):
    def always(*args, **kwargs):
        def evaluate(x):
            raise RuntimeError("DefaultCPUAllocator: can't allocate memory: you tried to allocate 1 bytes")
        return evaluate

    monkeypatch.setattr(transfer, "whole_image_objective", always)
    monkeypatch.setattr(transfer, "BlockwiseObjective", lambda *a, **k: always())
    with pytest.raises(RuntimeError, match="can't allocate memory"):
        stylize(model, content, [style], StyleParams(iterations=2, size=48))


# ---------------------------------------------------------------------- progress
def test_previews_are_capped_at_preview_size_and_the_result_is_not(model, style):
    content = smooth_image(60, 80, seed=6, channels=4)
    events = []
    result = stylize(model, content, [style], StyleParams(iterations=3, size=0, progress_every=1, preview=True,
                                                         preview_size=32, preserve_color=True),
                     on_progress=events.append)
    assert result.image.shape == (4, 60, 80)
    assert [tuple(e.image.shape) for e in events] == [(4, 24, 32)] * 3
    uncapped = []
    stylize(model, content, [style], StyleParams(iterations=1, size=0, preview=True, preview_size=0),
            on_progress=uncapped.append)
    assert uncapped[0].image.shape == (4, 60, 80)


def test_progress_carries_the_scale_and_the_time_left(model, content, style):
    events = []
    stylize(model, content, [style], StyleParams(iterations=6, size=48, scales=2, progress_every=1),
            on_progress=events.append)
    counts = [s.iterations for s in schedule(40, 48, scales=2, iterations=6, smallest=16)]
    assert [(e.scale, e.scales) for e in events] == [(i, 2) for i, n in enumerate(counts, start=1) for _ in range(n)]
    assert all(e.seconds_left is not None and e.seconds_left >= 0 for e in events)
    assert events[-1].seconds_left == 0.0


# ---------------------------------------------------------------------- a result computed at its size
def test_the_result_is_computed_at_full_size_not_upscaled_from_the_coarse_scale(model, style):
    """The full size moves the stretched coarse result far and lowers its loss. (A high-frequency measure is no
    guide with random weights: a noisy image scores high, and a run whose steps blew up scored higher still.)"""
    content = smooth_image(128, 160, seed=1)
    params = StyleParams(iterations=8, size=0, style_layers=("relu1_1", "relu2_1", "relu3_1"),
                         content_layers=("relu2_1",))
    full_size: list[float] = []
    two_scales = stylize(model, content, [style], params.replace(scales=2, progress_every=1),
                         on_progress=lambda p: full_size.append(p.loss.total) if p.scale == 2 else None).image
    coarse_part, fine_part = schedule(128, 160, scales=2, iterations=8, smallest=16)
    coarse = stylize(model, content, [style], params.replace(
        scales=1, size=max(coarse_part.size), iterations=coarse_part.iterations,
        content_weight=params.content_weight * content_weight_factor(coarse_part, fine_part))).image
    upscaled = resize(coarse, (128, 160))  # where the full-size scale started
    assert (two_scales - upscaled).abs().mean() > 8 / 255  # far more than rounding: the fine scale worked
    assert full_size[-1] < 0.5 * full_size[0]  # and its iterations, from the first (issue 19), lowered the loss


def test_a_coarse_scale_optimises_the_outputs_trade_off(model, style):
    """At a size with a quarter of the output's pixels the content weight is 4 α (the content loss sums over
    positions, the style's Grams average over them): the first scale of a two-scale job is exactly a one-scale
    job at that size with α × 4, and its reported loss estimates the output's."""
    content = smooth_image(96, 128, seed=6)
    # float32 at both sizes: under "auto" a coarse size may run in bf16 (device_tuning.scale_precision)
    params = StyleParams(iterations=6, size=0, scales=2, progress_every=1, precision="fp32", **SHALLOW)
    coarse_part, fine_part = schedule(96, 128, scales=2, iterations=6, smallest=2)
    assert content_weight_factor(coarse_part, fine_part) == 4 and content_weight_factor(fine_part, fine_part) == 1
    two_scales, alone = [], []
    stylize(model, content, [style], params, on_progress=lambda p: two_scales.append((p.scale, p.loss)))
    stylize(model, content, [style], params.replace(scales=1, size=max(coarse_part.size),
                                                    iterations=coarse_part.iterations, content_weight=4.0),
            on_progress=lambda p: alone.append(p.loss))
    first_scale = [loss for scale, loss in two_scales if scale == 1]
    assert len(first_scale) == coarse_part.iterations == len(alone)
    for ours, reference in zip(first_scale, alone):
        assert ours.total == pytest.approx(reference.total, rel=1e-6)
        assert ours.content == pytest.approx(reference.content, rel=1e-6)


# ---------------------------------------------------------------------- the style's size
def test_the_style_is_never_upsampled_past_its_own_size():
    assert style_size(100, 80, (400, 400), 1.0, 16) == (100, 80)  # used as it is at a large output
    assert style_size(100, 80, (50, 40), 1.0, 16) == (50, 40)  # scaled down with the output
    assert style_size(100, 80, (40, 40), 2.0, 16) == (80, 64)  # style_scale × the output's longest side
    assert style_size(400, 20, (64, 64), 1.0, 16) == (64, 16)  # a panorama keeps a short side the layers need


def test_coarse_and_fine_scales_see_the_style_at_the_same_relative_size(model, content, monkeypatch):
    """style_scale is relative to each scale's output: the strokes keep their size from preview to result."""
    sizes = []
    real = transfer.style_targets

    def spy(*args, **kwargs):
        sizes.append((kwargs["output"], style_size(256, 256, kwargs["output"], kwargs["style_scale"], 16)))
        return real(*args, **kwargs)

    monkeypatch.setattr(transfer, "style_targets", spy)
    stylize(model, smooth_image(64, 80, seed=1), [smooth_image(256, 256, seed=2)],
            StyleParams(iterations=2, size=0, scales=2, style_scale=0.5))
    assert [(out, style) for out, style in sizes] == [((32, 40), (20, 20)), ((64, 80), (40, 40))]
    assert all(math.isclose(max(style) / max(out), 0.5) for out, style in sizes)


def test_only_a_cpu_job_without_a_budget_and_with_room_keeps_its_freed_blocks(model, style, monkeypatch, no_rss):
    """heap_threshold.freed_blocks_kept: wanted for a CPU job without ``max_memory`` whose plan fits 1.5 times over;
    a budgeted job's freed tensors must leave the process instead."""
    asked: list[bool] = []
    real = transfer.freed_blocks_kept
    monkeypatch.setattr(transfer, "freed_blocks_kept", lambda wanted: asked.append(wanted) or real(wanted))
    content = smooth_image(48, 64, seed=5)
    params = StyleParams(iterations=1, size=0, **SHALLOW)
    plan = stylize(model, content, [style], params).plans[0]
    stylize(model, content, [style], params.replace(max_memory=135))
    monkeypatch.setattr(budget_module, "available_ram", lambda: (int(1.4 * plan.predicted_peak), "test"))
    stylize(model, content, [style], params)  # the plan fits, but not 1.5 times over
    assert asked == [True, False, False]
