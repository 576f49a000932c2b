"""Ruder et al.'s temporal term, wrapped around any objective: L_temporal = (λ / D) Σ c · (x − ω(x_prev))².

Ruder, Dosovitskiy & Brox, *Artistic style transfer for videos* (GCPR 2016). ω(x_prev) is an earlier
frame's stylized result warped onto this frame, c ∈ [0, 1] its per-pixel certainty, D the pixel
count (H·W; the sum runs over the three channels). With several earlier frames (the long-term
terms) each has its own target and certainty, the certainties already split so that each pixel is
held by the closest frame where it is visible (``sequence.flow.closest_first``), and their terms add.

The term is a per-pixel sum over an image-sized buffer, so it is added to the whole-image and the
block-wise objective alike, exactly (``with_temporal``); it needs no network pass. It is divided by
D, like the style term's averaged Grams and unlike the content term's sum over positions, so it needs
no per-scale factor in coarse to fine. Weight 0 (or no targets): the objective is returned unchanged.
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch

from .engine_errors import ParamError
from .imaging import resize
from .optimize import Objective


@dataclass(frozen=True)
class TemporalTarget:
    """One earlier frame's stylized result warped onto this frame, and where it can be trusted.

    ``image`` (3, H, W) in [0, 1]; ``certainty`` (H, W) or (1, H, W) in [0, 1]; both at the output size
    (``at`` resizes them to a scale's working size).
    """

    image: torch.Tensor
    certainty: torch.Tensor

    def __post_init__(self) -> None:
        mask = self.certainty if self.certainty.dim() == 3 else self.certainty.unsqueeze(0)
        if self.image.dim() != 3 or self.image.shape[0] != 3:
            raise ValueError(f"a temporal target is an RGB image (3, H, W), not {tuple(self.image.shape)}")
        if mask.dim() != 3 or mask.shape[0] != 1 or mask.shape[-2:] != self.image.shape[-2:]:
            raise ValueError(f"the certainty {tuple(self.certainty.shape)} does not match the target image "
                             f"{tuple(self.image.shape)}")
        object.__setattr__(self, "certainty", mask)

    def at(self, size: tuple[int, int], device: torch.device, dtype: torch.dtype) -> TemporalTarget:
        """This target at a working size, on the device and in the dtype the image is optimised in.

        The target may come at the content's size or the output's, not at another shape: a resize that
        would stretch it by more than a pixel is a ParamError."""
        height, width = self.image.shape[-2:]
        if abs(height * size[1] / width - size[0]) > 1.0 or abs(width * size[0] / height - size[1]) > 1.0:
            raise ParamError(f"a temporal target of {width}×{height} does not have the frame's shape "
                             f"({size[1]}×{size[0]})")
        return TemporalTarget(resize(self.image.float(), size).clamp(0, 1).to(device, dtype),
                              resize(self.certainty.float(), size).clamp(0, 1).to(device, dtype))


def temporal_loss(x: torch.Tensor, targets: Sequence[TemporalTarget], weight: float) -> torch.Tensor:
    """(λ / D) Σ_j Σ c_j (x − ω_j)² for x (1, 3, H, W); the targets at x's size."""
    pixels = x.shape[-2] * x.shape[-1]
    total = torch.zeros((), dtype=torch.promote_types(x.dtype, torch.float32), device=x.device)
    for target in targets:
        difference = x[0] - target.image
        total = total + (target.certainty * difference * difference).sum()
    return total * (weight / pixels)


def with_temporal(objective: Objective, targets: Sequence[TemporalTarget], weight: float) -> Objective:
    """``objective`` plus the temporal term, reported as ``terms["temporal"]`` and inside ``total``.

    The wrapped objective's gradient reaches x through autograd, beside whatever gradient the inner
    objective hands back (the block-wise one's precomputed gradient included). No targets or weight 0:
    ``objective`` itself, so the paper's losses are untouched.
    """
    if not weight or not targets:
        return objective
    kept = tuple(targets)

    def wrapped(x: torch.Tensor) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        total, terms = objective(x)
        with torch.enable_grad():
            temporal = temporal_loss(x, kept, weight)
        combined = total + temporal
        return combined, {**terms, "temporal": temporal.detach(), "total": combined}

    return wrapped


__all__ = ["TemporalTarget", "temporal_loss", "with_temporal"]
