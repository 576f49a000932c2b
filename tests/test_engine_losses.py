"""The losses are the paper's, checked against hand-written sums in float64."""
from __future__ import annotations

import itertools

import pytest
import torch

from neural_style.daemon.engine import StyleParams, content_loss, gram_matrix, style_layer_loss, stylize
from neural_style.daemon.engine.transfer import NOISE_MEAN, NOISE_STD


def hand_content_loss(F, P) -> float:
    """L = ½ Σ_ij (F_ij − P_ij)², written as loops."""
    n, m = len(F), len(F[0])
    return 0.5 * sum((F[i][j] - P[i][j]) ** 2 for i in range(n) for j in range(m))


def hand_style_loss(F, P) -> float:
    """E = 1/(4 N² M²) Σ_ij (G_ij − A_ij)² with G_ij = Σ_k F_ik F_jk, written as loops."""
    n, m = len(F), len(F[0])
    G = [[sum(F[i][k] * F[j][k] for k in range(m)) for j in range(n)] for i in range(n)]
    A = [[sum(P[i][k] * P[j][k] for k in range(m)) for j in range(n)] for i in range(n)]
    return sum((G[i][j] - A[i][j]) ** 2 for i, j in itertools.product(range(n), range(n))) / (4 * n**2 * m**2)


def test_content_and_style_losses_match_hand_computation():
    generator = torch.Generator().manual_seed(0)
    features = torch.rand((1, 3, 4, 5), generator=generator)
    target = torch.rand((1, 3, 4, 5), generator=generator)
    F = features.reshape(3, 20).double().tolist()
    P = target.reshape(3, 20).double().tolist()

    assert float(content_loss(features, target)) == pytest.approx(hand_content_loss(F, P), rel=1e-5)
    E = style_layer_loss(gram_matrix(features), gram_matrix(target))
    assert float(E) == pytest.approx(hand_style_loss(F, P), rel=1e-4)


def test_gram_matrix_is_normalised_by_positions():
    features = torch.ones((1, 2, 3, 3))
    assert torch.allclose(gram_matrix(features), torch.ones(2, 2))  # Σ_k 1·1 / M = 1


def test_first_evaluation_reports_paper_total_on_the_real_network(model, content):
    """α·L_content + β·L_style of the white-noise start, recomputed by hand from VGG19 features."""
    style = torch.flip(content, dims=(2,))  # same size as the content: no resampling ambiguity
    params = StyleParams(iterations=1, size=64, content_weight=2.0, style_weight=300.0, progress_every=1, seed=5,
                         content_layers=("relu2_1",), style_layers=("relu1_1", "relu2_1"))
    reported = []
    stylize(model, content, [style], params, on_progress=reported.append)

    start = NOISE_MEAN + NOISE_STD * torch.randn((1, 3, 40, 48), generator=torch.Generator().manual_seed(5))
    layers = {"relu1_1", "relu2_1"}
    with torch.no_grad():
        fx, fc, fs = (model(image, layers) for image in (start, content[None], style[None]))

    def flat(t):
        return t[0].reshape(t.shape[1], -1).double()

    content_term = 0.5 * (flat(fx["relu2_1"]) - flat(fc["relu2_1"])).pow(2).sum()
    style_term = 0.0
    for layer in ("relu1_1", "relu2_1"):
        f, p = flat(fx[layer]), flat(fs[layer])
        n, m = f.shape
        style_term += 0.5 * ((f @ f.T - p @ p.T).pow(2).sum() / (4 * n**2 * m**2))
    expected = 2.0 * content_term + 300.0 * style_term

    assert len(reported) == 1
    assert reported[0].loss.content == pytest.approx(float(2.0 * content_term), rel=1e-4)
    assert reported[0].loss.style == pytest.approx(float(300.0 * style_term), rel=1e-3)
    assert reported[0].loss.total == pytest.approx(float(expected), rel=1e-3)


def test_default_parameters_follow_the_paper():
    params = StyleParams()
    assert params.content_layers == ("relu4_2",)
    assert params.style_layers == ("relu1_1", "relu2_1", "relu3_1", "relu4_1", "relu5_1")
    assert params.style_layer_weight_map == {layer: 0.2 for layer in params.style_layers}
    assert params.content_weight / params.style_weight == pytest.approx(1e-3)
    assert (params.init, params.pooling, params.optimizer, params.tv_weight) == ("noise", "avg", "lbfgs", 0.0)


@pytest.mark.parametrize("channels_last", [False, True])
def test_the_gram_backward_in_one_product_is_autograds(channels_last):
    """gram_sum's own backward, P (dG + dGᵀ) in one product, gives what autograd's two-product matmul gives."""
    from neural_style.daemon.engine.losses import gram_sum

    features = torch.randn(1, 6, 5, 7, dtype=torch.float64)
    if channels_last:
        features = features.contiguous(memory_format=torch.channels_last)
    features.requires_grad_(True)
    weights = torch.randn(6, 6, dtype=torch.float64)  # a non-symmetric upstream gradient too
    (gram_sum(features) * weights).sum().backward()
    ours = features.grad.clone()
    features.grad = None
    plain = features.reshape(6, -1)
    ((plain @ plain.t()) * weights).sum().backward()
    assert torch.allclose(ours, features.grad, rtol=1e-12, atol=1e-12)
    assert torch.autograd.gradcheck(gram_sum, (features,))
