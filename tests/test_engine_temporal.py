"""The temporal term (Ruder et al. 2016): its value and gradient, block-wise against whole-image, and in stylize.

L_temporal = (λ / D) Σ c · (x − ω(x_prev))², D the pixel count. It wraps any objective, so the
block-wise objective with it must equal the whole-image objective with it, as for the paper's terms.
"""
from __future__ import annotations

import copy

import pytest
import torch
from conftest import smooth_image
from test_engine_blockwise import CASES, build, rel

from neural_style.daemon.engine import ParamError, StyleParams, stylize
from neural_style.daemon.engine.objective import whole_image_objective
from neural_style.daemon.engine.temporal import TemporalTarget, temporal_loss, with_temporal


@pytest.fixture(scope="module")
def model64(model):
    return copy.deepcopy(model).double()


def _targets(height: int, width: int, dtype=torch.float64, count: int = 1) -> list[TemporalTarget]:
    out = []
    for i in range(count):
        generator = torch.Generator().manual_seed(40 + i)
        certainty = (torch.rand((height, width), generator=generator) > 0.3).to(dtype)
        certainty[: height // 3] *= 0.5  # fractional certainties too, as the smoothed mask has
        out.append(TemporalTarget(smooth_image(height, width, seed=30 + i).to(dtype), certainty))
    return out


def _evaluate(objective, x):
    x = x.detach().clone().requires_grad_(True)
    total, terms = objective(x)
    total.backward()
    return {k: v.detach() for k, v in terms.items()}, x.grad


def test_value_and_gradient_are_the_formula():
    x = smooth_image(10, 14, seed=3)[None].double().requires_grad_(True)
    (target,) = _targets(10, 14)
    loss = temporal_loss(x, [target], 7.0)
    loss.backward()
    loss = loss.detach()
    difference = x.detach()[0] - target.image
    mask = target.certainty
    assert float(loss) == pytest.approx(7.0 / (10 * 14) * float((mask * difference**2).sum()), rel=1e-12)
    torch.testing.assert_close(x.grad[0], 2 * 7.0 / (10 * 14) * mask * difference)


@pytest.mark.parametrize("name", ["paper layers, 2 styles, tv"])  # content, style and TV terms at once
def test_blockwise_with_the_temporal_term_equals_the_whole_image_with_it(model64, name):
    blockwise, x, (whole_terms, whole_gradient) = build(model64, CASES[name])
    targets = _targets(*x.shape[-2:], count=2)
    weight = float(whole_terms["total"])  # a term of the paper's terms' size
    assert len(blockwise.grid(*x.shape[-2:]).blocks()) >= 6  # really split
    terms, gradient = _evaluate(with_temporal(blockwise, targets, weight), x)
    # the whole-image reference, with the temporal term added by autograd on its own
    reference = x.detach().clone().requires_grad_(True)
    temporal = temporal_loss(reference, targets, weight)
    temporal.backward()
    temporal = temporal.detach()
    assert float(temporal) > 1e-2 * float(whole_terms["total"])  # not negligible beside the paper's terms
    assert float(terms["temporal"]) == pytest.approx(float(temporal), rel=1e-12)
    assert float(terms["total"]) == pytest.approx(float(whole_terms["total"] + temporal), rel=1e-10)
    for key in ("content", "style", "tv"):
        assert float(terms[key]) == pytest.approx(float(whole_terms[key]), rel=1e-10, abs=1e-12)
    assert rel(gradient, whole_gradient + reference.grad) <= 1e-10


def test_the_whole_image_objective_with_the_term_is_its_sum(model64):
    x = smooth_image(32, 40, seed=5)[None].double()
    with torch.no_grad():
        content = model64(smooth_image(32, 40, seed=6)[None].double(), ("relu2_2",), "avg")
    objective = whole_image_objective(model64, content_targets=content)
    targets = _targets(32, 40)
    plain_terms, plain_gradient = _evaluate(objective, x)
    terms, gradient = _evaluate(with_temporal(objective, targets, 50.0), x)
    alone = x.clone().requires_grad_(True)
    temporal_loss(alone, targets, 50.0).backward()
    assert float(terms["total"]) == pytest.approx(float(plain_terms["total"] + terms["temporal"]), rel=1e-12)
    torch.testing.assert_close(gradient, plain_gradient + alone.grad)


def test_weight_zero_or_no_target_leaves_the_objective_itself():
    def objective(x):
        return x.sum(), {"total": x.sum()}

    assert with_temporal(objective, _targets(4, 4), 0.0) is objective
    assert with_temporal(objective, [], 10.0) is objective


def test_targets_are_checked_and_resized():
    with pytest.raises(ValueError, match="RGB"):
        TemporalTarget(torch.zeros(4, 8, 8), torch.ones(8, 8))
    with pytest.raises(ValueError, match="does not match"):
        TemporalTarget(torch.zeros(3, 8, 8), torch.ones(8, 9))
    target = TemporalTarget(torch.full((3, 8, 8), 0.25), torch.ones(8, 8)).at((4, 4), torch.device("cpu"),
                                                                           torch.float64)
    assert target.image.shape == (3, 4, 4) and target.certainty.shape == (1, 4, 4)
    assert target.image.dtype == torch.float64
    torch.testing.assert_close(target.image, torch.full((3, 4, 4), 0.25, dtype=torch.float64))
    TemporalTarget(torch.zeros(3, 75, 100), torch.ones(75, 100)).at((48, 64), torch.device("cpu"), torch.float32)
    with pytest.raises(ParamError, match="does not have the frame's shape"):
        TemporalTarget(torch.zeros(3, 8, 8), torch.ones(8, 8)).at((4, 6), torch.device("cpu"), torch.float32)


# ---------------------------------------------------------------------- in stylize
FAST = StyleParams(iterations=8, size=48, progress_every=1)


def test_weight_zero_reproduces_the_paper_run_bit_for_bit(model, content, style):
    plain = stylize(model, content, [style], FAST)
    (target,) = _targets(40, 48, torch.float32)
    off = stylize(model, content, [style], FAST.replace(temporal_weight=0.0), temporal=[target])
    assert torch.equal(plain.image, off.image)
    assert off.loss == plain.loss


def test_the_temporal_term_holds_the_result_to_the_target_where_certain(model, content, style):
    target_image = smooth_image(40, 48, seed=9)
    certainty = torch.zeros(40, 48)
    certainty[:, :24] = 1.0  # certain on the left half only
    target = TemporalTarget(target_image, certainty)
    free = stylize(model, content, [style], FAST.replace(temporal_weight=0.0))
    held = stylize(model, content, [style], FAST.replace(temporal_weight=1e6), temporal=[target])
    left, right = (slice(None), slice(None), slice(0, 24)), (slice(None), slice(None), slice(24, None))

    def distance(image, part):
        return float((image[part] - target_image[part]).abs().mean())

    assert distance(held.image, left) < 0.2 * distance(free.image, left)
    assert distance(held.image, right) > 0.5 * distance(free.image, right)  # uncertain pixels are not held
    assert held.loss.total > held.loss.content + held.loss.style  # the total carries the temporal term


def test_the_start_image_replaces_the_init(model, content, style):
    start = smooth_image(40, 48, seed=12)
    one = FAST.replace(iterations=1, optimizer="adam", learning_rate=1e-6, init="noise")
    result = stylize(model, content, [style], one, start_image=start)
    assert float((result.image - start).abs().max()) < 1e-3
    noise = stylize(model, content, [style], one)
    assert float((noise.image - start).abs().mean()) > 0.05


def test_long_term_targets_add_their_terms():
    x = smooth_image(12, 12, seed=1)[None].double()
    near, far = _targets(12, 12, count=2)
    both = temporal_loss(x, [near, far], 2.0)
    assert float(both) == pytest.approx(float(temporal_loss(x, [near], 2.0) + temporal_loss(x, [far], 2.0)))
