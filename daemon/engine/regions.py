"""Spatial control (Gatys et al. 2017): the styles' regions at one scale, and each region's guided Gram target.

The semantics are ``region_masks``'s (checked there, torch-free). Here:

- ``checked_masks``: a caller's mask tensors, each (1, H, W) in [0, 1], described and checked;
- ``scale_regions``: the regions at one scale's size: every masked style's mask resized to it, shared
  where the masks' total passes 1, and "the rest" (1 − that total) for the unmasked styles' blend;
- ``layer_regions``: each region at each style layer's resolution (the mask averaged over the layer's
  2^k × 2^k pooling cells, so it lies on the features' grid exactly, the paper's "simple" guides),
  with its mass Σ m² and its Gram target: the ``LayerRegion`` records both objectives evaluate.

A region's loss is (Σ m² / M_l) · E_l(G_r, A_r), G_r = (F∘m)(F∘m)ᵀ / Σ m² (``losses.guided_style_loss``).
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from .engine_errors import ParamError
from .imaging import resize
from .layers import poolings_before
from .region_masks import MaskFrame, check_masks

#: A mask per style, or None (no region / the whole style image).
Masks = Sequence[torch.Tensor | None]


@dataclass(frozen=True)
class LayerRegion:
    """One region at one layer: its weights on the layer's grid (1, 1, h, w), their mass Σ m², and the region's
    Gram target A_r. ``guide`` None is the whole image unguided (mass M_l): the unmasked run's one term."""

    guide: torch.Tensor | None
    mass: float
    target: torch.Tensor
    positions: int  # M_l of the whole image at this layer

    @property
    def share(self) -> float:
        """Σ m² / M_l: the region's weight in the style loss (exactly 1 for the unguided whole image)."""
        return self.mass / self.positions


@dataclass(frozen=True)
class Region:
    """A region at a scale's size: its weights (1, 1, H, W) and its style blend (one weight per style)."""

    weights: torch.Tensor
    blend: tuple[float, ...]


def checked_masks(style_masks: Masks | None, style_source_masks: Masks | None, *,
                  content_size: tuple[int, int] | None,
                  style_sizes: Sequence[tuple[int, int]]) -> tuple[list[torch.Tensor | None] | None,
                                                                     list[torch.Tensor | None] | None]:
    """The masks as float32 (1, H, W) tensors padded with None to one per style (None where none was given),
    after the same checks the daemon makes (``region_masks.check_masks``) and the tensors' own."""
    frames = [_frame(mask, f"style_masks[{i}]") for i, mask in enumerate(style_masks or ())]
    sources = [_frame(mask, f"style_source_masks[{i}]") for i, mask in enumerate(style_source_masks or ())]
    check_masks(frames if style_masks is not None else None, sources if style_source_masks is not None else None,
                content_size=content_size, style_sizes=style_sizes)
    count = len(style_sizes)

    def padded(masks: Masks | None) -> list[torch.Tensor | None] | None:
        if masks is None or all(m is None for m in masks):
            return None
        out = [m.detach().float() if m is not None else None for m in masks]
        return out + [None] * (count - len(out))

    return padded(style_masks), padded(style_source_masks)


def _frame(mask: torch.Tensor | None, where: str) -> MaskFrame | None:
    if mask is None:
        return None
    if not isinstance(mask, torch.Tensor) or mask.dim() != 3 or mask.shape[0] != 1 or not mask.is_floating_point():
        raise ParamError(f"{where} must be a float tensor (1, H, W)", where)
    if not bool(torch.isfinite(mask).all()) or float(mask.min()) < 0:
        raise ParamError(f"{where} must hold weights in [0, 1]", where)
    return MaskFrame(height=mask.shape[-2], width=mask.shape[-1], peak=float(mask.max()))


def scale_regions(style_masks: Sequence[torch.Tensor | None], blend: Sequence[float],
                  size: tuple[int, int]) -> list[Region]:
    """The regions at ``size``: one per masked style, then "the rest" for the unmasked styles (if any, and if the
    masks leave anything uncovered), whose blend is ``blend`` among them renormalised."""
    maps = [resize(m.unsqueeze(0), size).clamp(0, 1) if m is not None else None for m in style_masks]
    given = [m for m in maps if m is not None]
    total = torch.stack(given).sum(0)
    share = total.clamp(min=1)  # overlapping masks share the pixel
    regions = [Region(m / share, tuple(float(i == j) for j in range(len(maps))))
               for i, m in enumerate(maps) if m is not None]
    rest_weight = sum(w for w, m in zip(blend, maps) if m is None)
    if rest_weight > 0:
        rest = 1 - total.clamp(max=1)
        if bool((rest > 0).any()):
            regions.append(Region(rest, tuple(w / rest_weight if m is None else 0.0 for w, m in zip(blend, maps))))
    return regions


def layer_guides(weights: torch.Tensor, layers: Sequence[str]) -> dict[str, torch.Tensor]:
    """``weights`` (1, 1, H, W) on each layer's grid: averaged over its 2^k × 2^k cells (the odd last pixels
    dropped, as VGG19's poolings drop them), so a guide value sits exactly on one feature."""
    out: dict[str, torch.Tensor] = {}
    for layer in layers:
        cell = 1 << poolings_before(layer)
        out[layer] = F.avg_pool2d(weights, cell) if cell > 1 else weights
    return out


def layer_regions(regions: Sequence[Region], grams: Sequence[Mapping[str, torch.Tensor]], layers: Sequence[str],
                  device: torch.device, dtype: torch.dtype) -> dict[str, list[LayerRegion]]:
    """Each region at each of ``layers``: its guide, mass and Gram target Σ_i blend_i A_i^l (``grams``: the styles'
    own, possibly source-guided, Gram targets). A region that vanishes at a layer is left out there."""
    out: dict[str, list[LayerRegion]] = {layer: [] for layer in layers}
    for region in regions:
        guides = layer_guides(region.weights.to(device, dtype), layers)
        for layer in layers:
            guide = guides[layer]
            mass = float(guide.pow(2).sum())
            if not mass > 0:
                continue
            parts = [g[layer] * w for g, w in zip(grams, region.blend) if w]
            target = parts[0]
            for part in parts[1:]:
                target = target + part
            out[layer].append(LayerRegion(guide=guide, mass=mass, target=target, positions=guide.numel()))
    return out


def source_guides(mask: torch.Tensor | None, size: tuple[int, int], layers: Sequence[str],
                  device: torch.device) -> dict[str, torch.Tensor] | None:
    """A style's source mask at its working ``size``, on each layer's grid (None: the whole style image)."""
    if mask is None:
        return None
    weights = resize(mask.unsqueeze(0), size).clamp(0, 1).to(device)
    return layer_guides(weights, layers)
