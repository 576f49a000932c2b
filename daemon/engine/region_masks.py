"""Region masks of the styles (Gatys et al. 2017, spatial control): what is accepted, checked once, torch-free.

``stylize(..., style_masks=, style_source_masks=)`` takes one optional mask per style:

- ``style_masks[i]``: where style i goes, a greyscale weight in [0, 1] in the content's frame (its
  input size, H × W). None (or a missing entry) means the style has no region of its own.
- ``style_source_masks[i]``: which part of style image i to take its style from (the sky of a
  painting), in that style image's own frame. None means the whole style image.

The semantics (``regions.py`` does the math):

- every masked style is a region; its guided Gram G_r = (F∘m_r)(F∘m_r)ᵀ / Σ m_r² (the mask brought to
  each layer's resolution) is matched to its own style's Gram;
- where masks overlap beyond a total of 1, each is divided by their sum: their weights share the pixel;
- the styles without a mask share one region, "the rest": 1 − the masks' total, clamped to [0, 1],
  matched to their blend (``style_blend`` among them); with every style masked, what no mask covers
  gets no style (content only);
- a region's loss is weighted by its mass, Σ m_r² / M (the fraction of the image it holds): a pixel
  feels the same pull wherever it lies, a grey mask styles more weakly, and a region covering the
  whole image is exactly today's loss;
- no masks at all (both None, or every entry None) is today's loss, bit for bit.

This module only checks sizes and counts so that the daemon refuses before ``accepted``: the
server describes each decoded frame as a ``MaskFrame``, the engine does the same for its tensors.
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from .engine_errors import ParamError


@dataclass(frozen=True)
class MaskFrame:
    """What the checks need to know of one mask: its size and its largest value (0 = all black)."""

    height: int
    width: int
    peak: float  # the largest weight, in [0, 1]


def check_masks(style_masks: Sequence[MaskFrame | None] | None,
                style_source_masks: Sequence[MaskFrame | None] | None, *,
                content_size: tuple[int, int] | None, style_sizes: Sequence[tuple[int, int]]) -> None:
    """ParamError naming ``style_masks[i]`` / ``style_source_masks[i]`` for a mask too many, one of the wrong
    size (``content_size`` and ``style_sizes`` are (height, width) of the inputs as given), an all-black one,
    or regions without a content image (texture synthesis has no frame to place them in)."""
    if style_masks is not None and any(m is not None for m in style_masks) and content_size is None:
        raise ParamError("style_masks place the styles in the content's frame: a texture (no content) has none",
                         "style_masks")
    _check("style_masks", style_masks, [content_size or (0, 0)] * len(style_sizes), "the content's")
    _check("style_source_masks", style_source_masks, style_sizes, "its style image's")


def has_regions(style_masks: Sequence[object | None] | None) -> bool:
    """Whether any style carries a region mask (else the run is the plain, unmasked one)."""
    return style_masks is not None and any(m is not None for m in style_masks)


def _check(name: str, masks: Sequence[MaskFrame | None] | None, frames: Sequence[tuple[int, int]],
           whose: str) -> None:
    if masks is None:
        return
    if len(masks) > len(frames):
        raise ParamError(f"{name} has {len(masks)} masks for {len(frames)} style images: one mask per style, "
                         "in the order of the styles", f"{name}[{len(frames)}]")
    for i, (mask, (height, width)) in enumerate(zip(masks, frames)):
        if mask is None:
            continue
        where = f"{name}[{i}]"
        if (mask.height, mask.width) != (height, width):
            raise ParamError(f"{where} is {mask.width}x{mask.height}; it must have {whose} size, "
                             f"{width}x{height}", where)
        if not mask.peak > 0:
            raise ParamError(f"{where} is all black: it selects nothing (leave the style without a mask "
                             "for the whole image)", where)
        if mask.peak > 1:
            raise ParamError(f"{where} has weights above 1 (up to {mask.peak:g}); masks are in [0, 1]", where)
