"""The paper's losses, exactly as Gatys, Ecker & Bethge (2015) define them.

- content:  L_content = ½ Σ (F^l − P^l)²
- style:    G^l = F^l F^lᵀ,  E_l = 1/(4 N_l² M_l²) Σ (G^l − A^l)²,  L_style = Σ w_l E_l
- total:    α L_content + β L_style (+ an optional total-variation term, off by default)

Gram matrices are kept divided by M_l (``g = F Fᵀ / M``). Then (G − A)/(2 N M) = (g − a)/(2 N), so
E_l = Σ ((g − a) / (2 N))²: the same number, computed without the 10¹⁵-sized intermediates that would
cost precision in fp32 and overflow in fp16.
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import torch

if TYPE_CHECKING:
    from .regions import LayerRegion


@dataclass(frozen=True)
class LossTerms:
    """The weighted loss terms of one evaluation (α·L_content, β·L_style, tv·L_tv) and their sum."""

    total: float
    content: float
    style: float
    tv: float

    def as_dict(self) -> dict[str, float]:
        return {"total": self.total, "content": self.content, "style": self.style, "tv": self.tv}


def at_least_float32(tensor: torch.Tensor) -> torch.Tensor:
    """The tensor in float32, or float64 if it already is: losses never run in half precision."""
    return tensor.to(torch.promote_types(tensor.dtype, torch.float32))


def _positions(features: torch.Tensor) -> torch.Tensor:
    """(M, N): one row per spatial position, in at least float32; a view when the input is NHWC."""
    channels = features.shape[-3]
    if features.dim() == 4 and features.is_contiguous(memory_format=torch.channels_last):
        return at_least_float32(features.permute(0, 2, 3, 1).reshape(-1, channels))
    return at_least_float32(features.reshape(channels, -1)).t()


def positions_of(features: torch.Tensor) -> int:
    """M_l, the number of spatial positions of one image's activations."""
    return features.shape[-2] * features.shape[-1]


def gram_sum(features: torch.Tensor) -> torch.Tensor:
    """G = F Fᵀ (not normalised), the sum over positions that block-wise evaluation accumulates block by block."""
    result: torch.Tensor = _Gram.apply(_positions(features), None)
    return result


def guided_gram_sum(features: torch.Tensor, guide: torch.Tensor) -> torch.Tensor:
    """(F∘m)(F∘m)ᵀ = Σ_p m_p² F_p F_pᵀ for a guide ``m`` (1, 1, h, w) on the features' grid (Gatys et al. 2017):
    still a sum over positions, so blocks add up to the whole image as ``gram_sum``'s do.

    Its backward keeps only the features (already kept by the network's own backward) and m², not a
    feature-sized F∘m per region: regions cost their guides' memory, not a copy of every style layer's."""
    positions = _positions(features)
    result: torch.Tensor = _Gram.apply(positions, guide.reshape(-1, 1).to(positions.dtype).pow(2))
    return result


class _Gram(torch.autograd.Function):
    """Pᵀ diag(w) P for positions P (M, N) and weights w (M, 1), or Pᵀ P without; dP = w ∘ P (dG + dGᵀ).

    One product for the backward, where autograd's matmul takes two (one per operand, P being both): a Gram's
    backward at half the cost (docs/PERFORMANCE.md, "Time to quality, fourth session")."""

    @staticmethod
    def forward(ctx: Any, positions: torch.Tensor, weights: torch.Tensor | None) -> torch.Tensor:
        ctx.save_for_backward(positions, weights)
        return (positions if weights is None else positions * weights).t() @ positions

    @staticmethod
    def backward(ctx: Any, upstream: torch.Tensor) -> tuple[torch.Tensor, None]:
        positions, weights = ctx.saved_tensors
        gradient: torch.Tensor = positions @ (upstream + upstream.t())
        return (gradient if weights is None else gradient * weights), None


def gram_matrix(features: torch.Tensor) -> torch.Tensor:
    """g = F Fᵀ / M for one image's activations (1, N, H, W) or (N, H, W); float32 (float64 stays float64).

    Float32 even under autocast, because the style loss subtracts nearly equal Gram entries.
    """
    return gram_sum(features) / positions_of(features)


def content_loss(features: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """L_content = ½ Σ (F − P)²."""
    return 0.5 * (at_least_float32(features) - at_least_float32(target)).pow(2).sum()


def style_layer_loss(gram: torch.Tensor, target_gram: torch.Tensor) -> torch.Tensor:
    """E_l = 1/(4 N² M²) Σ (G − A)², from M-normalised Gram matrices (see the module docstring)."""
    channels = gram.shape[0]
    return ((gram - target_gram) / (2.0 * channels)).pow(2).sum()


def style_loss(
    features: Mapping[str, torch.Tensor],
    target_grams: Mapping[str, torch.Tensor],
    layer_weights: Mapping[str, float],
) -> torch.Tensor:
    """L_style = Σ_l w_l E_l over the style layers."""
    total = torch.zeros((), device=next(iter(target_grams.values())).device)
    for layer, weight in layer_weights.items():
        if weight:
            total = total + weight * style_layer_loss(gram_matrix(features[layer]), target_grams[layer])
    return total


def guided_style_loss(
    features: Mapping[str, torch.Tensor],
    regions: Mapping[str, Sequence[LayerRegion]],
    layer_weights: Mapping[str, float],
) -> torch.Tensor:
    """L_style = Σ_l w_l Σ_r (Σ m_r² / M_l) E_l(G_r, A_r), G_r = (F∘m_r)(F∘m_r)ᵀ / Σ m_r²: each region against
    its own style's Gram, weighted by the share of the image it holds (``engine/regions.py``)."""
    total = torch.zeros((), device=next(iter(features.values())).device)
    for layer, weight in layer_weights.items():
        for region in regions.get(layer, ()) if weight else ():
            assert region.guide is not None
            gram = guided_gram_sum(features[layer], region.guide) / region.mass
            total = total + weight * region.share * style_layer_loss(gram, region.target)
    return total


def total_variation_loss(image: torch.Tensor, height: int | None = None, width: int | None = None) -> torch.Tensor:
    """Σ of squared differences between neighbouring pixels: a smoothness prior (not in the paper).

    With ``height``/``width``, only the differences that start in the top-left height × width pixels
    count (the pixels past them are neighbours only): a block's share, so that blocks sum to the whole.
    """
    h = image.shape[-2] if height is None else height
    w = image.shape[-1] if width is None else width
    down = image[..., : h + 1, :w]
    right = image[..., :h, : w + 1]
    dy = down[..., 1:, :] - down[..., :-1, :]
    dx = right[..., :, 1:] - right[..., :, :-1]
    return dy.pow(2).sum() + dx.pow(2).sum()
