"""Block-wise evaluation gives the whole-image loss and gradient (Galerne et al. 2022): no seams by construction.

The reference is the whole-image objective (``objective.whole_image_objective``).
Exactness is checked in float64 (a float64 copy of the random-weights network), where rounding
cannot hide a wrong margin or a misaligned block; a too-short margin is shown to fail the same check.
"""
from __future__ import annotations

import contextlib
import copy

import pytest
import torch
from conftest import smooth_image

from neural_style.daemon.engine.block_grid import BlockGrid, layer_grid
from neural_style.daemon.engine.blockwise import (
    BlockwiseObjective,
    RecomputedContent,
    StoredContent,
    blockwise_features,
    blockwise_grams,
)
from neural_style.daemon.engine.layers import poolings_before, receptive_radius
from neural_style.daemon.engine.losses import gram_matrix
from neural_style.daemon.engine.objective import whole_image_objective
from neural_style.daemon.engine.optimize import minimise

PAPER_STYLE = ("relu1_1", "relu2_1", "relu3_1", "relu4_1", "relu5_1")


@pytest.fixture(scope="module")
def model64(model):
    return copy.deepcopy(model).double()


def rel(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a - b).norm() / b.norm())


def image(height: int, width: int, seed: int, dtype=torch.float64) -> torch.Tensor:
    return smooth_image(height, width, seed=seed)[None].to(dtype)


def blended_grams(model, styles, weights, layers, pooling):
    """A^l = Σ_s weight_s g_s^l / Σ weight_s, as transfer blends several styles."""
    out = {}
    with torch.no_grad():
        for style, weight in zip(styles, weights):
            for name, value in model(style, layers, pooling).items():
                part = gram_matrix(value) * (weight / sum(weights))
                out[name] = out[name] + part if name in out else part
    return out


def whole_image(model, x, *, content=None, style_targets=None, layer_weights=None, alpha=1.0, beta=1.0, tv=0.0,
                pooling="avg", autocast=contextlib.nullcontext):
    """(terms, gradient) of the whole-image objective, the reference."""
    objective = whole_image_objective(model, style_targets=style_targets, layer_weights=layer_weights,
                                      content_targets=content, content_weight=alpha, style_weight=beta, tv_weight=tv,
                                      pooling=pooling, autocast=autocast)
    x = x.detach().clone().requires_grad_(True)
    total, terms = objective(x)
    total.backward()
    return {k: v.detach() for k, v in terms.items()}, x.grad


def assert_same(blockwise, reference, tolerance):
    (terms, gradient), (expected_terms, expected_gradient) = blockwise, reference
    for name in ("content", "style", "tv", "total"):
        assert float(terms[name]) == pytest.approx(float(expected_terms[name]), rel=tolerance, abs=1e-12), name
    assert rel(gradient, expected_gradient) <= tolerance


# ---------------------------------------------------------------------- geometry
@pytest.mark.parametrize("height,width,layers,block", [
    (45, 203, PAPER_STYLE, 32), (100, 100, ("relu4_2",), 24), (17, 33, ("pool5",), 32), (64, 64, ("relu1_1",), 7),
    (200, 3, ("relu3_1",), 50),
])
def test_blocks_tile_the_image_on_the_pooling_grid_with_the_margin(height, width, layers, block):
    grid = BlockGrid.for_layers(height, width, layers, block)
    expected_grid, margin = layer_grid(layers)
    assert (grid.grid, grid.margin) == (expected_grid, margin) and margin >= max(map(receptive_radius, layers))
    covered = torch.zeros(height, width, dtype=torch.int32)
    for b in grid.blocks():
        covered[b.interior] += 1
        for span, length in ((b.rows, height), (b.cols, width)):
            assert 0 < span.stop - span.start <= grid.block_size
            for edge in (span.start, span.stop, span.crop_start, span.crop_stop):
                assert edge % grid.grid == 0 or edge == length  # aligned, except at the image's own end
            assert span.crop_start == max(0, span.start - margin) and span.crop_stop == min(length, span.stop + margin)
            assert span.crop_stop - span.crop_start <= grid.crop_side(length)
    assert bool((covered == 1).all())


def test_receptive_radius_is_what_the_network_actually_sees(model64):
    """The gradient of one relu5_1 / relu3_1 feature reaches exactly radius pixels past its cell."""
    x = image(24, 256, seed=3).requires_grad_(True)
    for layer in ("relu3_1", "relu5_1"):
        level, radius = poolings_before(layer), receptive_radius(layer)
        column = 128 >> level  # the feature whose cell starts at pixel 128
        (grad,) = torch.autograd.grad(model64(x, [layer])[layer][0, :, 0, column].sum(), x)
        seen = grad.abs().sum(dim=(0, 1, 2)).nonzero().flatten()
        assert (int(seen.min()), int(seen.max()) + 1) == (128 - radius, 128 + 2**level + radius), layer
    assert (receptive_radius("relu5_1"), receptive_radius("relu4_2"), receptive_radius("pool5")) == (70, 38, 118)


@pytest.mark.parametrize("pooling", ["avg", "max"])
def test_blockwise_features_equal_the_whole_images(model64, pooling):
    content = image(34, 330, seed=4)  # wide enough for crops whose both sides lie inside the image at pool5
    layers = ("relu1_2", "pool2", "relu4_2", "pool5")
    got = blockwise_features(model64, content, layers, block_size=32, pooling=pooling)
    with torch.no_grad():
        expected = model64(content, layers, pooling)
    for name in layers:
        assert got[name].shape == expected[name].shape
        assert rel(got[name], expected[name]) < 1e-12, name


@pytest.mark.parametrize("pooling", ["avg", "max"])
def test_blockwise_grams_equal_the_whole_images(model64, pooling):
    """Style images too large for one pass get their Gram targets block by block (targets.style_targets)."""
    style = image(88, 120, seed=5)  # sides not multiples of 16: the last blocks end at the image's edge
    got = blockwise_grams(model64, style, PAPER_STYLE, block_size=32, pooling=pooling)
    with torch.no_grad():
        expected = {name: gram_matrix(value) for name, value in model64(style, PAPER_STYLE, pooling).items()}
    assert set(got) == set(PAPER_STYLE)
    for name in PAPER_STYLE:
        assert rel(got[name], expected[name]) < 1e-12, name


# ---------------------------------------------------------------------- exactness, float64
CASES = {
    # the paper's setting: conv4_2 content, five style layers, two styles blended, TV on, odd sizes
    "paper layers, 2 styles, tv": dict(size=(45, 203), block=32, content=("relu4_2",), style=PAPER_STYLE,
                                       weights=(0.2, 0.2, 0.2, 0.2, 0.2), blend=(3.0, 1.0), tv=0.3, pooling="avg"),
    "max pooling, pool layers, pre-activation content": dict(
        size=(40, 150), block=16, content=("conv3_1",), style=("pool1", "relu2_2", "pool4"), weights=(1.0, 0.5, 2.0),
        blend=(1.0,), tv=0.0, pooling="max"),
    "content only, two layers": dict(size=(72, 90), block=16, content=("relu2_2", "relu4_2"), style=(),
                                     weights=(), blend=(), tv=0.0, pooling="avg"),
    "style only, a zero-weight layer, tv": dict(size=(60, 76), block=8, content=(),
                                                style=("relu1_1", "relu2_1", "relu3_1"),
                                               weights=(1.0, 0.0, 3.0), blend=(1.0, 1.0, 2.0), tv=1.0, pooling="max"),
}


def build(model, case, dtype=torch.float64, content_kind=StoredContent, **extra):
    height, width = case["size"]
    x, content = image(height, width, 10, dtype), image(height, width, 11, dtype)
    styles = [image(30 + 7 * i, 40 + 5 * i, 20 + i, dtype) for i in range(len(case["blend"]))]
    pooling = case["pooling"]
    with torch.no_grad():
        targets = model(content, case["content"], pooling) if case["content"] else {}
    grams = blended_grams(model, styles, case["blend"], case["style"], pooling) if case["style"] else {}
    layer_weights = dict(zip(case["style"], case["weights"]))
    weights = dict(alpha=2.0 if case["content"] else 0.0, beta=500.0, tv=case["tv"])
    contents = None
    if case["content"]:
        contents = StoredContent(targets) if content_kind is StoredContent else RecomputedContent(
            model, content, case["content"], pooling)
    objective = BlockwiseObjective(
        model, block_size=case["block"], style_targets=grams, layer_weights=layer_weights, content=contents,
        content_weight=weights["alpha"], style_weight=weights["beta"], tv_weight=weights["tv"], pooling=pooling,
        **extra)
    reference = whole_image(model, x, content=targets, style_targets=grams, layer_weights=layer_weights,
                            pooling=pooling, **weights)
    return objective, x, reference


@pytest.mark.parametrize("name", list(CASES))
def test_blockwise_equals_whole_image_in_float64(model64, name):
    objective, x, reference = build(model64, CASES[name])
    assert len(objective.grid(*x.shape[-2:]).blocks()) >= 6  # really split
    assert_same(objective.evaluate(x), reference, 1e-10)


def test_recomputed_content_targets_equal_stored_ones(model64):
    objective, x, reference = build(model64, CASES["content only, two layers"], content_kind=RecomputedContent)
    assert_same(objective.evaluate(x), reference, 1e-10)


def test_a_margin_below_the_receptive_radius_is_not_exact(model64):
    """The control: the same check fails when crops are cut short, so it can tell a seam."""
    objective, x, reference = build(model64, CASES["paper layers, 2 styles, tv"], margin=32)
    _terms, gradient = objective.evaluate(x)
    assert rel(gradient, reference[1]) > 1e-3


# ---------------------------------------------------------------------- float32 and autocast
def test_blockwise_is_close_in_float32(model):
    objective, x, reference = build(model, CASES["paper layers, 2 styles, tv"], dtype=torch.float32)
    assert_same(objective.evaluate(x), reference, 1e-4)


def test_blockwise_under_bf16_autocast_agrees_with_the_whole_image_under_bf16(model):
    """Splitting into blocks adds far less error than bf16 itself; losses and the gradient stay float32."""
    case = CASES["style only, a zero-weight layer, tv"]
    autocast = lambda: torch.autocast("cpu", dtype=torch.bfloat16)  # noqa: E731
    objective, x, float32_reference = build(model, case, dtype=torch.float32, autocast=autocast)
    terms, gradient = objective.evaluate(x)
    reference = whole_image(model, x, style_targets=objective.style_targets, layer_weights=objective.layer_weights,
                            beta=objective.style_weight, tv=objective.tv_weight, pooling=case["pooling"],
                            autocast=autocast)
    assert all(value.dtype == torch.float32 for value in terms.values()) and gradient.dtype == torch.float32
    assert float(terms["total"]) == pytest.approx(float(reference[0]["total"]), rel=1e-4)
    split_error, bf16_error = rel(gradient, reference[1]), rel(reference[1], float32_reference[1])
    assert split_error < 0.01 and split_error < bf16_error / 5


# ---------------------------------------------------------------------- as the optimiser's objective
def test_a_drop_in_objective_for_minimise(model64):
    """Three L-BFGS steps with the block-wise objective land where the whole-image objective does."""
    case = CASES["style only, a zero-weight layer, tv"]
    objective, x, _ = build(model64, case)
    whole = whole_image_objective(model64, style_targets=objective.style_targets, layer_weights=objective.layer_weights,
                                  style_weight=objective.style_weight, tv_weight=objective.tv_weight,
                                  pooling=case["pooling"])
    block_run = minimise(objective, x, 3, "lbfgs")
    whole_run = minimise(whole, x, 3, "lbfgs")
    assert block_run.evaluations == whole_run.evaluations == 3
    assert rel(block_run.image - x, whole_run.image - x) < 1e-8
    assert float(block_run.terms["total"].detach()) == pytest.approx(float(whole_run.terms["total"].detach()),
                                                                     rel=1e-10)


def test_backward_scales_the_gradient_by_the_upstream_factor(model64):
    objective, x, (_, expected) = build(model64, CASES["style only, a zero-weight layer, tv"])
    for factor in (1.0, 2.5):
        leaf = x.clone().requires_grad_(True)
        total, terms = objective(leaf)
        (factor * total).backward()
        assert rel(leaf.grad, factor * expected) < 1e-10
        assert set(terms) == {"total", "content", "style", "tv"}


def test_nothing_to_evaluate_is_an_error(model64):
    with pytest.raises(ValueError, match="nothing to evaluate"):
        BlockwiseObjective(model64, block_size=32)
