"""Spatial control (Gatys et al. 2017): region masks, guided Gram matrices, and colour by histogram.

The checks are torch-free (``region_masks``, what the daemon's admission calls); the guided Grams are
checked block-wise against the whole image in float64, as the other terms are.
"""
from __future__ import annotations

import subprocess
import sys

import pytest

from neural_style.daemon.engine.engine_errors import ParamError
from neural_style.daemon.engine.region_masks import MaskFrame, check_masks


def _refused(style_masks, sources=None, *, content=(40, 48), styles=((36, 36), (30, 20))) -> ParamError:
    with pytest.raises(ParamError) as refused:
        check_masks(style_masks, sources, content_size=content, style_sizes=list(styles))
    return refused.value


def test_the_mask_checks_name_the_mask_and_need_no_torch():
    code = ("import sys\n"
            "from neural_style.daemon.engine.region_masks import MaskFrame, check_masks\n"
            "check_masks([None, MaskFrame(4, 6, 1.0)], [MaskFrame(3, 3, 0.5)], content_size=(4, 6),"
            " style_sizes=[(3, 3), (5, 5)])\n"
            "assert 'torch' not in sys.modules\n")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    whole = MaskFrame(40, 48, 1.0)
    assert _refused([whole, whole, whole]).field == "style_masks[2]"  # one mask too many
    wrong = _refused([None, MaskFrame(48, 40, 1.0)])
    assert wrong.field == "style_masks[1]" and "48x40" in str(wrong)
    assert _refused([MaskFrame(40, 48, 0.0)]).field == "style_masks[0]"  # all black
    assert "all black" in str(_refused([MaskFrame(40, 48, 0.0)]))
    assert _refused(None, [None, MaskFrame(36, 36, 1.0)]).field == "style_source_masks[1]"  # style 1 is 30x20
    assert _refused(None, [MaskFrame(36, 36, 0.0)]).field == "style_source_masks[0]"
    assert _refused([whole], content=None).field == "style_masks"  # a texture has no frame for regions
    check_masks([whole], [None, MaskFrame(30, 20, 0.2)], content_size=(40, 48), style_sizes=[(36, 36), (30, 20)])
    check_masks([None, None], None, content_size=None, style_sizes=[(36, 36), (30, 20)])


# ---------------------------------------------------------------------- the math (torch from here on)
import contextlib  # noqa: E402
import copy  # noqa: E402

import torch  # noqa: E402
from conftest import smooth_image  # noqa: E402

from neural_style.daemon.engine import memory_budget  # noqa: E402
from neural_style.daemon.engine.blockwise import BlockwiseObjective, StoredContent, blockwise_grams  # noqa: E402
from neural_style.daemon.engine.imaging import colour_statistics, match_colors  # noqa: E402
from neural_style.daemon.engine.losses import gram_matrix, guided_gram_sum, style_layer_loss  # noqa: E402
from neural_style.daemon.engine.objective import whole_image_objective  # noqa: E402
from neural_style.daemon.engine.params import StyleParams  # noqa: E402
from neural_style.daemon.engine.regions import layer_guides, layer_regions, scale_regions  # noqa: E402
from neural_style.daemon.engine.targets import CacheStats, style_grams  # noqa: E402
from neural_style.daemon.engine.transfer import stylize  # noqa: E402

PAPER_STYLE = ("relu1_1", "relu2_1", "relu3_1", "relu4_1", "relu5_1")
WEIGHTS = {name: 0.2 for name in PAPER_STYLE}


@pytest.fixture(scope="module")
def model64(model):
    return copy.deepcopy(model).double()


def _rel(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a - b).norm() / b.norm())


def _soft_mask(height: int, width: int, seed: int) -> torch.Tensor:
    """A smooth greyscale mask in [0, 1] with black and white parts."""
    return (smooth_image(height, width, seed=seed, channels=1) * 3 - 1).clamp(0, 1)


def _grams(model, image, layers=PAPER_STYLE):
    with torch.no_grad():
        return {name: gram_matrix(value) for name, value in model(image, layers).items()}


def _evaluate(objective, x):
    x = x.detach().clone().requires_grad_(True)
    total, terms = objective(x)
    total.backward()
    return {k: float(v.detach()) for k, v in terms.items()}, x.grad


def test_regions_share_overlaps_and_the_rest_goes_to_the_unmasked_styles():
    left = torch.zeros(1, 8, 8)
    left[..., :5] = 1.0  # columns 0-4
    right = torch.zeros(1, 8, 8)
    right[..., 3:] = 1.0  # columns 3-7: overlaps left on 3-4
    shared, other = scale_regions([left, right], (0.5, 0.5), (8, 8))
    assert shared.blend == (1.0, 0.0) and other.blend == (0.0, 1.0)
    assert torch.equal(shared.weights[0, 0, 0], torch.tensor([1, 1, 1, .5, .5, 0, 0, 0]))
    assert torch.equal((shared.weights + other.weights)[0, 0], torch.ones(8, 8))
    sky, rest = scale_regions([None, right, None], (2.0, 1.0, 6.0), (8, 8))
    assert sky.blend == (0.0, 1.0, 0.0) and rest.blend == (0.25, 0.0, 0.75)  # the unmasked styles' blend
    assert torch.equal(rest.weights, 1 - right.unsqueeze(0))
    assert len(scale_regions([right], (1.0,), (8, 8))) == 1  # every style masked: the uncovered part is unstyled
    assert len(scale_regions([None, torch.ones(1, 8, 8)], (0.5, 0.5), (8, 8))) == 1  # nothing left for the rest


@pytest.mark.parametrize("layout", [torch.contiguous_format, torch.channels_last])
def test_the_guided_grams_own_backward_is_its_gradient(layout):
    features = torch.rand(1, 5, 4, 6, dtype=torch.float64).contiguous(memory_format=layout).requires_grad_(True)
    guide = torch.rand(1, 1, 4, 6, dtype=torch.float64)
    assert torch.autograd.gradcheck(lambda f: guided_gram_sum(f, guide), (features,))
    weighted = features.detach()[0] * guide[0, 0]
    torch.testing.assert_close(guided_gram_sum(features, guide).detach(),
                               torch.einsum("chw,dhw->cd", weighted, weighted))


def test_guides_lie_on_each_layers_grid():
    weights = _soft_mask(45, 70, seed=3)[None]
    guides = layer_guides(weights, PAPER_STYLE)
    assert [tuple(guides[n].shape[-2:]) for n in PAPER_STYLE] == [(45, 70), (22, 35), (11, 17), (5, 8), (2, 4)]
    assert float(guides["relu2_1"][0, 0, 3, 4]) == pytest.approx(float(weights[0, 0, 6:8, 8:10].mean()))


def test_a_region_covering_the_whole_image_is_the_unmasked_loss(model64):
    x = smooth_image(40, 56, seed=4)[None].double()
    style = smooth_image(36, 36, seed=5)[None].double()
    targets = _grams(model64, style)
    regions = layer_regions(scale_regions([torch.ones(1, 40, 56)], (1.0,), (40, 56)), [targets], PAPER_STYLE,
                            torch.device("cpu"), torch.float64)
    plain = _evaluate(whole_image_objective(model64, style_targets=targets, layer_weights=WEIGHTS), x)
    guided = _evaluate(whole_image_objective(model64, style_regions=regions, layer_weights=WEIGHTS), x)
    assert guided[0]["style"] == pytest.approx(plain[0]["style"], rel=1e-12)
    assert _rel(guided[1], plain[1]) < 1e-12


def test_the_guided_loss_is_each_regions_gram_against_its_own_style(model64):
    x = smooth_image(32, 48, seed=6)[None].double()
    mask = _soft_mask(32, 48, seed=7)
    a, b = (_grams(model64, smooth_image(32, 32, seed=s)[None].double()) for s in (8, 9))
    regions = layer_regions(scale_regions([mask, None], (0.5, 0.5), (32, 48)), [a, b], ("relu2_1",),
                            torch.device("cpu"), torch.float64)
    terms, _ = _evaluate(whole_image_objective(model64, style_regions=regions, layer_weights={"relu2_1": 1.0}), x)
    with torch.no_grad():
        features = model64(x, ["relu2_1"])["relu2_1"][0]  # (C, 16, 24)
    expected = 0.0
    for weights, target in ((mask, a), (1 - mask, b)):
        m = torch.nn.functional.avg_pool2d(weights[None].double(), 2)[0, 0]
        gram = torch.einsum("chw,dhw->cd", features * m, features * m) / m.pow(2).sum()
        expected += float(m.pow(2).sum() / m.numel()) * float(style_layer_loss(gram, target["relu2_1"]))
    assert terms["style"] == pytest.approx(expected, rel=1e-10)


def test_blockwise_guided_grams_equal_the_whole_images_in_float64(model64):
    """Masks are sums over positions like the rest: block by block is the whole image's loss and gradient."""
    (height, width), block = (40, 150), 32
    size = (height, width)
    x = smooth_image(height, width, seed=10)[None].double()
    content = smooth_image(height, width, seed=11)[None].double()
    grams = [_grams(model64, smooth_image(40, 40, seed=s)[None].double()) for s in (12, 13, 14)]
    masks = [_soft_mask(height, width, seed=15), None, _soft_mask(height, width, seed=16)]
    regions = layer_regions(scale_regions(masks, (1.0, 2.0, 1.0), size), grams, PAPER_STYLE,
                            torch.device("cpu"), torch.float64)
    assert len(regions["relu1_1"]) == 3
    with torch.no_grad():
        stored = model64(content, ["relu4_2"])
    common = dict(style_regions=regions, layer_weights=WEIGHTS, content_weight=0.5, style_weight=1e3, tv_weight=0.2)
    whole = _evaluate(whole_image_objective(model64, content_targets=stored, **common), x)
    blocks = _evaluate(BlockwiseObjective(model64, block_size=block, content=StoredContent(stored), **common), x)
    for name in ("content", "style", "tv", "total"):
        assert blocks[0][name] == pytest.approx(whole[0][name], rel=1e-10), name
    assert _rel(blocks[1], whole[1]) < 1e-10


def test_source_masks_guide_the_style_targets_block_by_block_and_key_the_cache(model64):
    style = smooth_image(40, 100, seed=17)
    source = _soft_mask(40, 100, seed=18)
    cache: dict = {}
    stats = CacheStats()
    options = dict(output=(40, 100), style_scale=1.0, smallest=16, pooling="avg", precision="auto",
                   autocast=contextlib_null, cache=cache, stats=stats)
    (guided,) = style_grams(model64, [style], PAPER_STYLE, source_masks=[source], **options)
    (plain,) = style_grams(model64, [style], PAPER_STYLE, **options)
    assert (stats.misses, stats.hits) == (2, 0)  # the source mask is part of the key
    (again,) = style_grams(model64, [style], PAPER_STYLE, source_masks=[source], **options)
    assert stats.hits == 1 and again is guided
    image = style[None].double()
    guides = layer_guides(source[None].double(), PAPER_STYLE)
    with torch.no_grad():
        features = model64(image, PAPER_STYLE)
    for name in PAPER_STYLE:
        expected = guided_gram_sum(features[name], guides[name]) / guides[name].pow(2).sum()
        assert _rel(guided[name], expected) < 1e-6, name  # the mask's mass is summed in float32
        assert _rel(plain[name], gram_matrix(features[name])) < 1e-12, name
    blockwise = blockwise_grams(model64, image, PAPER_STYLE, block_size=32, guides=guides)
    for name in PAPER_STYLE:
        expected = guided_gram_sum(features[name], guides[name]) / guides[name].pow(2).sum()
        assert _rel(blockwise[name], expected) < 1e-12, name


def contextlib_null():
    return contextlib.nullcontext()


FAST = StyleParams(iterations=6, size=48, progress_every=1)


def test_no_masks_is_the_unmasked_run_bit_for_bit(model, content, style):
    other = smooth_image(30, 40, seed=19)
    plain = stylize(model, content, [style, other], FAST)
    nones = stylize(model, content, [style, other], FAST, style_masks=[None, None], style_source_masks=[None])
    assert torch.equal(plain.image, nones.image) and plain.loss == nones.loss


def test_masks_reach_the_run_and_are_checked_as_tensors(model, content, style):
    left = torch.zeros(1, 40, 48)
    left[..., :24] = 1
    other = smooth_image(30, 40, seed=19)
    plain = stylize(model, content, [style, other], FAST)
    masked = stylize(model, content, [style, other], FAST, style_masks=[left, 1 - left])
    sourced = stylize(model, content, [style, other], FAST, style_source_masks=[None, _soft_mask(30, 40, seed=2)])
    assert not torch.equal(plain.image, masked.image) and not torch.equal(plain.image, sourced.image)
    for bad, field in (([torch.zeros(1, 40, 48)], "style_masks[0]"), ([None, left[:, :, :40]], "style_masks[1]"),
                       ([left, left, left], "style_masks[2]"), ([left[0]], "style_masks[0]"),
                       ([left * 2 - 1], "style_masks[0]")):
        with pytest.raises(ParamError) as refused:
            stylize(model, content, [style, other], FAST, style_masks=bad)
        assert refused.value.field == field
    with pytest.raises(ParamError) as refused:
        stylize(model, None, [style], FAST, style_masks=[torch.ones(1, 48, 48)])
    assert refused.value.field == "style_masks"


def test_in_float64_a_block_wise_job_with_regions_ends_where_the_whole_image_job_does(model64, style, monkeypatch,
                                                                                       full_history_only):
    """Every scale's regions reach both paths alike: a tight budget (blocks) gives the whole image's result."""
    monkeypatch.setattr(memory_budget, "process_rss", lambda: 0)  # the budget is max_memory itself
    content = smooth_image(96, 128, seed=4)
    left = torch.zeros(1, 96, 128)
    left[..., :50] = 1
    params = StyleParams(iterations=4, size=0, progress_every=1, style_layers=("relu1_1", "relu2_1"),
                         content_layers=("relu2_1",))
    masks = [left, None]
    styles = [style, smooth_image(30, 40, seed=19)]
    whole = stylize(model64, content, styles, params, style_masks=masks)
    blocks = stylize(model64, content, styles, params.replace(max_memory=135), style_masks=masks)
    assert whole.plans[0].path == "whole" and blocks.plans[0].path == "blocks" and blocks.plans[0].blocks > 1
    assert float((blocks.image - whole.image).abs().max()) < 1e-6
    assert blocks.loss.total == pytest.approx(whole.loss.total, rel=1e-10)


def test_histogram_matching_moves_the_colours_to_the_references_mean_and_covariance():
    image = smooth_image(40, 50, seed=20) * torch.tensor([0.6, 0.3, 0.2])[:, None, None] + 0.1
    reference = smooth_image(30, 30, seed=21).flip(0) * 0.5 + 0.25
    moved = match_colors(image, reference)
    mean, cov = colour_statistics(moved)
    ref_mean, ref_cov = colour_statistics(reference)
    assert _rel(mean, ref_mean) < 1e-3 and _rel(cov, ref_cov) < 1e-2
    weights = torch.zeros(1, 30, 30)
    weights[..., :10] = 1  # a region of the reference: its colours, not the whole image's
    region_mean, _ = colour_statistics(reference[..., :10])
    assert _rel(colour_statistics(match_colors(image, reference, reference_weights=weights))[0], region_mean) < 1e-3


def test_the_histogram_mode_runs_on_matched_styles(model, content, style):
    off = stylize(model, content, [style], FAST)
    histogram = stylize(model, content, [style], FAST.replace(preserve_color="histogram"))
    luminance = stylize(model, content, [style], FAST.replace(preserve_color=True))
    assert not torch.equal(off.image, histogram.image) and not torch.equal(histogram.image, luminance.image)
    # the histogram mode is decided before stylizing: it starts from matched styles, not from the off run's result
    assert stylize(model, content, [match_colors(style, content)], FAST).loss == histogram.loss
