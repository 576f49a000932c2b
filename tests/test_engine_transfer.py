"""stylize(): every mode and option, on tiny images with seeded random weights."""
from __future__ import annotations

import math

import pytest
import torch
from conftest import smooth_image

from neural_style.daemon.engine import Cancelled, NonFiniteLoss, ParamError, StyleParams, stylize
from neural_style.daemon.engine.imaging import _RGB_TO_YIQ
from neural_style.daemon.engine.schedule import schedule

FAST = StyleParams(iterations=6, size=48, progress_every=1)


def run(model, content, styles, style_blend=None, **changes):
    events = []
    result = stylize(model, content, styles, FAST.replace(**changes), style_blend=style_blend,
                     on_progress=events.append)
    return result, events


@pytest.mark.parametrize("optimizer", ["lbfgs", "adam"])
@pytest.mark.parametrize("iterations", [1, 2, 7])
def test_iterations_are_exact_evaluation_budgets(model, content, style, optimizer, iterations):
    result, events = run(model, content, [style], optimizer=optimizer, iterations=iterations)
    assert result.iterations == iterations
    assert [e.iteration for e in events] == list(range(1, iterations + 1))
    assert all(e.iterations == iterations for e in events)


@pytest.mark.parametrize("optimizer", ["lbfgs", "adam"])
def test_optimisation_lowers_the_loss(model, content, style, optimizer):
    result, events = run(model, content, [style], optimizer=optimizer, iterations=12, learning_rate=0.05)
    assert events[-1].loss.total < 0.5 * events[0].loss.total
    assert result.loss == events[-1].loss


def test_seed_repeats_bit_for_bit_on_cpu(model, content, style):
    first, _ = run(model, content, [style], seed=7)
    again, _ = run(model, content, [style], seed=7)
    other, _ = run(model, content, [style], seed=8)
    assert torch.equal(first.image, again.image)
    assert not torch.equal(first.image, other.image)


def test_progress_every_and_previews(model, content, style):
    result, events = run(model, content, [style], iterations=7, progress_every=3, preview=True)
    assert [e.iteration for e in events] == [3, 6, 7]  # every third, and always the last
    assert all(e.image is not None and e.image.shape == result.image.shape for e in events)
    assert all(e.elapsed >= 0 for e in events)
    _, quiet = run(model, content, [style], iterations=3, progress_every=1, preview=False)
    assert all(e.image is None for e in quiet)


def test_cancel_between_iterations(model, content, style):
    calls = []

    def should_stop() -> bool:
        calls.append(1)
        return len(calls) > 3

    with pytest.raises(Cancelled) as stopped:
        stylize(model, content, [style], FAST.replace(iterations=50), should_stop=should_stop)
    assert stopped.value.iteration == 3


def test_alpha_passes_through_untouched(model, style):
    rgba = smooth_image(40, 48, seed=3, channels=4)
    result, _ = run(model, rgba, [style])
    assert result.image.shape == (4, 40, 48)
    assert torch.equal(result.image[3], rgba[3])


def test_large_inputs_are_processed_at_size_and_alpha_follows(model, style):
    big = smooth_image(100, 60, seed=4, channels=4)
    result, _ = run(model, big, [style], size=50)
    assert result.image.shape == (4, 50, 30)
    assert torch.allclose(result.image[3].mean(), big[3].mean(), atol=0.02)
    small, _ = run(model, smooth_image(20, 30, seed=5), [style], size=50)
    assert small.image.shape == (3, 20, 30)  # never upscaled


def test_preserve_color_keeps_content_chroma(model, content, style):
    plain, _ = run(model, content, [style])
    kept, _ = run(model, content, [style], preserve_color=True)

    def chroma(image):
        return torch.einsum("ij,jhw->ihw", _RGB_TO_YIQ, image)[1:]

    assert (chroma(kept.image) - chroma(content)).abs().mean() < 0.02
    assert (chroma(plain.image) - chroma(content)).abs().mean() > (chroma(kept.image) - chroma(content)).abs().mean()


def test_multi_scale_runs_coarse_to_fine_within_the_budget(model, content, style):
    result, events = run(model, content, [style], iterations=9, scales=3)
    assert result.iterations == 9
    counts = [s.iterations for s in schedule(40, 48, scales=3, iterations=9, smallest=16)]
    assert counts[0] > counts[-1] and sum(counts) == 9  # front-loaded where iterations are cheap
    assert [e.scale for e in events] == [i for i, n in enumerate(counts, start=1) for _ in range(n)]
    assert all(e.scales == 3 for e in events)
    assert result.image.shape == (3, 40, 48)


@pytest.mark.parametrize("init", ["noise", "content", "style"])
def test_init_choices(model, content, style, init):
    _, events = run(model, content, [style], init=init, iterations=1)
    if init == "content":
        assert events[0].loss.content == 0.0
    else:
        assert events[0].loss.content > 0.0


def test_texture_synthesis_without_content(model, style):
    result, events = run(model, None, [style], width=40, height=24, content_layers=())
    assert result.image.shape == (3, 24, 40)
    assert all(e.loss.content == 0.0 for e in events)
    assert events[-1].loss.style < events[0].loss.style


def test_content_reconstruction_from_any_layer(model, content):
    for layer in ("relu1_1", "conv3_1", "relu5_1"):
        result, events = run(model, content, [], content_layers=(layer,), style_layers=(), style_weight=0.0)
        assert result.loss.style == 0.0
        assert events[-1].loss.content < events[0].loss.content


def test_style_targets_are_cached_by_image_and_settings(model, content, style):
    cache: dict = {}
    first = stylize(model, content, [style], FAST, target_cache=cache)
    second = stylize(model, content, [style], FAST, target_cache=cache)
    rescaled = stylize(model, content, [style], FAST.replace(style_scale=0.5), target_cache=cache)
    assert (first.style_cache_misses, first.style_cache_hits) == (1, 0)
    assert (second.style_cache_misses, second.style_cache_hits) == (0, 1)
    assert rescaled.style_cache_misses == 1
    assert torch.equal(first.image, second.image)
    assert not torch.equal(first.image, rescaled.image)


def test_style_blend_weights_the_grams(model, content, style):
    other = smooth_image(30, 40, seed=9)
    only_first, _ = run(model, content, [style])
    blended_all_first, _ = run(model, content, [style, other], style_blend=(1.0, 0.0))
    half, _ = run(model, content, [style, other], style_blend=(1.0, 1.0))
    assert torch.equal(only_first.image, blended_all_first.image)
    assert not torch.equal(only_first.image, half.image)


def test_tv_weight_adds_a_smoothness_term(model, content, style):
    off, _ = run(model, content, [style])
    on, _ = run(model, content, [style], tv_weight=10.0)
    assert off.loss.tv == 0.0 and on.loss.tv > 0.0


def test_style_layer_weights_and_pooling_change_the_result(model, content, style):
    base, _ = run(model, content, [style])
    weighted, _ = run(model, content, [style], style_layer_weights=(1, 0, 0, 0, 0))
    pooled, _ = run(model, content, [style], pooling="max")
    assert not torch.equal(base.image, weighted.image)
    assert not torch.equal(base.image, pooled.image)


def test_bf16_autocast_runs_with_float32_losses(model, content, style):
    result, _events = run(model, content, [style], precision="bf16", iterations=3)
    assert torch.isfinite(torch.tensor(result.loss.total))
    assert result.image.dtype == torch.float32


@pytest.mark.parametrize(
    "mapping, message",
    [
        ({"iterations": 0}, "iterations"),
        ({"style_weight": -1}, "style_weight"),
        ({"content_layers": ["conv9_9"]}, "unknown layer"),
        ({"colour": True}, "unknown parameter"),
        ({"iterations": "many"}, "integer"),
        ({"preserve_color": 1}, "true or false"),
        ({"optimizer": "sgd"}, "optimizer"),
        ({"style_layer_weights": [1, 2]}, "style_layer_weights"),
        ({"size": 4}, "size"),
        ({"style_weight": float("nan")}, "style_weight"),
    ],
)
def test_bad_parameters_are_refused_with_a_clear_message(mapping, message):
    with pytest.raises(ParamError, match=message):
        StyleParams.from_mapping(mapping)


def test_params_round_trip_through_a_mapping():
    params = StyleParams(iterations=9, style_layers=("relu1_1",), style_layer_weights=(2.0,), preserve_color=True)
    assert StyleParams.from_mapping(params.to_mapping()) == params


def test_missing_inputs_are_refused(model, content):
    with pytest.raises(ParamError, match="style image"):
        stylize(model, content, [], FAST)
    with pytest.raises(ParamError, match="nothing to optimise"):
        stylize(model, None, [], FAST)


@pytest.mark.parametrize("init", ["content", "style"])
@pytest.mark.parametrize("optimizer", ["lbfgs", "adam"])
def test_images_in_any_memory_layout(model, optimizer, init):
    """Decoded images are HWC buffers permuted to CHW (not contiguous); at native size they reach the optimiser as
    is."""
    hwc = smooth_image(40, 48, seed=6).permute(1, 2, 0).contiguous()
    content = hwc.permute(2, 0, 1)
    assert not content.is_contiguous()
    result, _ = run(model, content, [content], init=init, optimizer=optimizer, iterations=2)
    assert result.image.shape == (3, 40, 48)


# ---------------------------------------------------------------------- every size and layer runs (issue 10, item 5)
def test_the_smallest_side_follows_the_poolings_before_the_deepest_layer():
    from neural_style.daemon.engine.job_plan import smallest_side

    assert smallest_side(("relu1_1",)) == 16  # never below the smallest size a request may ask for
    assert smallest_side(("relu4_1", "relu5_4")) == 16  # four poolings: 2⁴
    assert smallest_side(("relu1_1", "pool5")) == 32  # five: 2⁵


@pytest.mark.parametrize(
    "style_shape, size",
    [
        ((16, 80), 64),  # a 5:1 style at size 64: its short side would be 13 px, relu5_1 needs 16
        ((8, 256), 64),  # a 32:1 panorama: 2 px
        ((256, 8), 64),  # the same, standing
    ],
)
def test_styles_of_any_aspect_ratio_run(model, style_shape, size):
    result, events = run(model, smooth_image(size, size, seed=1), [smooth_image(*style_shape, seed=2)],
                         size=size, iterations=2)
    assert result.image.shape == (3, size, size)
    assert all(math.isfinite(e.loss.total) for e in events)


@pytest.mark.parametrize("layers", [{"style_layers": ("relu1_1", "pool5")}, {"content_layers": ("pool5",)}])
def test_pool5_runs_at_the_smallest_size(model, layers):
    result, events = run(model, smooth_image(16, 16, seed=1), [smooth_image(16, 24, seed=2)], size=16, iterations=2,
                         **layers)
    assert result.image.shape == (3, 32, 32)  # raised to the 2⁵ pixels that pool5 needs
    assert all(math.isfinite(e.loss.total) for e in events)


def test_coarse_scales_of_a_wide_texture_keep_every_layer_fed(model, style):
    result, events = run(model, None, [style], width=256, height=16, content_layers=(), scales=3, iterations=3,
                         style_layers=("relu1_1", "pool5"))
    assert result.image.shape == (3, 32, 256)
    assert [e.scale for e in events] == [1, 2, 3]


def test_a_loss_that_overflows_float32_ends_the_run_with_a_clear_error(model, style):
    """Within every range a caller can still feed the engine values that overflow (here an image in
    [0, 10¹⁵] instead of [0, 1]); the run stops with a message, never reporting a non-finite loss."""
    reported = []
    with pytest.raises(NonFiniteLoss, match="overflowed float32") as stopped:
        stylize(model, smooth_image(32, 32, seed=1) * 1e15, [style], FAST.replace(size=32, content_weight=1e12),
                on_progress=reported.append)
    assert "content_weight" in str(stopped.value)
    assert all(math.isfinite(p.loss.total) for p in reported)


def test_style_blend_must_fit_the_styles(model, content, style):
    with pytest.raises(ParamError, match="2 weights for 1 style"):
        stylize(model, content, [style], FAST, style_blend=(1.0, 2.0))
