"""The paper's objective on the whole image, α·L_content + β·Σ w_l E_l + tv·L_tv, for ``optimize.minimise``.

Takes the same keyword arguments as ``blockwise.BlockwiseObjective`` (content targets as whole-image
feature maps here), so that the memory plan's choice of path is one constructor or the other.
"""
from __future__ import annotations

import contextlib
from collections.abc import Mapping, Sequence

import torch

from .blockwise import Autocast
from .losses import content_loss, guided_style_loss, style_loss, total_variation_loss
from .optimize import Objective
from .regions import LayerRegion
from .vgg import VGG19Features


def whole_image_objective(
    model: VGG19Features,
    *,
    style_targets: Mapping[str, torch.Tensor] | None = None,
    layer_weights: Mapping[str, float] | None = None,
    content_targets: Mapping[str, torch.Tensor] | None = None,
    content_weight: float = 1.0,
    style_weight: float = 1.0,
    tv_weight: float = 0.0,
    pooling: str = "avg",
    autocast: Autocast = contextlib.nullcontext,
    style_regions: Mapping[str, Sequence[LayerRegion]] | None = None,
) -> Objective:
    """f(x) → (total, weighted terms); the network runs under ``autocast``, the losses outside it (float32).

    ``style_regions`` (spatial control: each style layer's regions, ``engine/regions.py``) replaces
    ``style_targets`` when given."""
    style_targets, content_targets = dict(style_targets or {}), dict(content_targets or {})
    regions = {name: list(parts) for name, parts in (style_regions or {}).items() if parts}
    styled = regions or style_targets
    weights = {name: w for name, w in (layer_weights or {}).items() if name in styled}
    layers = set(content_targets) | set(styled)

    def objective(x: torch.Tensor) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        with autocast():
            features = model(x, layers, pooling)
        zero = torch.zeros((), device=x.device)
        content = sum((content_loss(features[name], target) for name, target in content_targets.items()), zero)
        if regions:
            style = guided_style_loss(features, regions, weights)
        else:
            style = style_loss(features, style_targets, weights) if style_targets else zero
        tv = total_variation_loss(x) if tv_weight else zero
        terms = {"content": content_weight * content, "style": style_weight * style, "tv": tv_weight * tv}
        terms["total"] = terms["content"] + terms["style"] + terms["tv"]
        return terms["total"], terms

    return objective
