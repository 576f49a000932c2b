"""Where each style goes (issue 17): a style's region as a greyscale mask on the content the plug-in sends.

A style's region is the whole layer (no mask: today's behaviour), the current selection, or a channel
(a script may pass a layer mask; GIMP's chooser in the dialog lists an image's channels only, 3.0.4
and 3.2.6 alike).  A style without a mask takes what the other style's region leaves (the engine's
rule, docs/PROTOCOL.md "Regions"), so one painted mask on the second style is enough for two paintings
to meet along it; with both styles masked, what neither covers keeps the photo.  A mask is read from
the channel's buffer over exactly the rectangle the content is read from (the layer's region in image
coordinates, at the same scale): it lies on the content pixel for pixel and has its width × height.
Outside the channel it is black.  Nothing here needs GIMP; ``neural_style_gimp.py`` reads the buffers.

A selection used as a region does not limit the effect, unlike a selection with every region the
whole layer: the whole layer is stylized, and the selection only says where that style goes.
"""
from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Optional

REGIONS = ("layer", "selection", "channel")
REGION_DEFAULT = "layer"
# The dialog's words for the region choices.
REGION_LABELS = {"layer": "The whole layer (or what the other style's region leaves)",
                 "selection": "The current selection", "channel": "A channel (choose it below)"}
MASK_FORMAT, MASK_CHANNELS = "Y u8", 1  # babl's 8-bit grey: a raw mask frame's one byte a pixel (PROTOCOL.md)


@dataclass(frozen=True)
class Crop:
    """The rectangle to read from a channel's buffer, at ``scale`` (GEGL's scaled coordinates, as the
    content is read), so that the mask comes out at the sent content's width × height."""

    x: int
    y: int
    width: int
    height: int
    scale: float


def mask_crop(region: tuple[int, int, int, int], channel_offsets: tuple[int, int],
              sent: tuple[int, int]) -> Crop:
    """The channel's part under ``region`` (x, y, width, height in image coordinates: the layer's region
    the content comes from), read at the content's ``sent`` size (width, height).

    A channel has its own offsets (a layer mask its layer's, a saved selection none), so the same
    pixel of the image is the content's (x − layer offset) and the channel's (x − channel offset)."""
    x, y, width, _height = region
    cx, cy = channel_offsets
    scale = sent[0] / width
    return Crop(int((x - cx) * scale), int((y - cy) * scale), sent[0], sent[1], scale)


def is_blank(mask: bytes) -> bool:
    """True when no pixel is in the region (an all-black mask: the daemon refuses it)."""
    return not mask.strip(b"\x00")


def describe(mask: bytes, width: int) -> str:
    """A mask in a few numbers, for the debug log: its size, and how much of each half (left, right) it covers."""
    height = len(mask) // width
    half = width // 2
    left = sum(sum(mask[row * width:row * width + half]) for row in range(height)) / (255 * half * height)
    right = sum(sum(mask[row * width + half:(row + 1) * width]) for row in range(height)) / (
        255 * (width - half) * height)
    return f"{width}x{height}, covering {left:.3f} of the left half and {right:.3f} of the right"


def selection_is_a_region(regions: Sequence[str]) -> bool:
    """Whether the selection says where a style goes (then it does not limit the effect)."""
    return "selection" in regions


def resolve(regions: Sequence[str], read: Callable[[int], bytes]) -> Optional[list[Optional[bytes]]]:
    """Each style's mask (None: no region of its own), or None when every region is the whole layer (the
    request then carries no masks at all, as before issue 17). ``read(i)`` reads style i's selection or
    channel."""
    if all(region == REGION_DEFAULT for region in regions):
        return None
    return [None if region == REGION_DEFAULT else read(i) for i, region in enumerate(regions)]


def region_problem(regions: Sequence[str]) -> Optional[tuple[int, str]]:
    """(the style, what is wrong) for a region that is not one of :data:`REGIONS`, else None."""
    for i, region in enumerate(regions):
        if region not in REGIONS:
            return i, f"must be one of {', '.join(REGIONS)} (got {region!r})"
    return None
