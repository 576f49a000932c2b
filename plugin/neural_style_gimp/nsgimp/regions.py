"""Where each style goes (issue 17): a style's region as a greyscale mask on the content the plug-in sends.

A style's region is the whole layer (no mask: today's behaviour), the current selection, a channel
or layer mask the user picks, or "the rest": what the other style's region leaves (255 − its mask),
so that two paintings meet along one painted mask.  A mask is read from the channel's buffer over
exactly the rectangle the content is read from (the layer's region in image coordinates, at the same
scale): it lies on the content pixel for pixel and has its width × height.  Outside the channel it
is black.  Nothing here needs GIMP; ``neural_style_gimp.py`` reads the buffers.

A selection used as a region does not limit the effect, unlike a selection with every region the
whole layer: the whole layer is stylized, and the selection only says where that style goes.
"""
from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Optional

REGIONS = ("layer", "selection", "channel", "rest")
REGION_DEFAULT = "layer"
# The dialog's words for the region choices.
REGION_LABELS = {"layer": "The whole layer", "selection": "The current selection",
                 "channel": "A channel or layer mask (choose it below)",
                 "rest": "What the other style's region leaves"}
MASK_FORMAT = "Y u8"  # babl: 8-bit grey, what a mask frame carries (protocol: gray8)


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


def complement(mask: bytes) -> bytes:
    """255 − the mask: what a region leaves."""
    return mask.translate(bytes(255 - v for v in range(256)))


def is_blank(mask: bytes) -> bool:
    """True when no pixel is in the region (an all-black mask: the daemon refuses it)."""
    return not mask.strip(b"\x00")


def selection_is_a_region(regions: Sequence[str]) -> bool:
    """Whether the selection says where a style goes (then it does not limit the effect)."""
    return "selection" in regions


def resolve(regions: Sequence[str], read: Callable[[int], bytes]) -> Optional[list[Optional[bytes]]]:
    """Each style's mask (None: the whole layer), or None when every region is the whole layer (the request
    then carries no masks at all, as before issue 17). ``read(i)`` reads style i's selection or channel.

    "rest" is the complement of the other style's mask; two styles each the other's rest, or a rest of
    the whole layer, are caught by :func:`region_problem` before anything is read."""
    if all(region == "layer" for region in regions):
        return None
    masks: list[Optional[bytes]] = [None if region in ("layer", "rest") else read(i)
                                    for i, region in enumerate(regions)]
    for i, region in enumerate(regions):
        if region == "rest":
            other = masks[1 - i] if len(regions) == 2 else None
            if other is None:
                raise ValueError(f"style {i}'s region is the rest of a region that is not a mask")
            masks[i] = complement(other)
    return masks


def region_problem(regions: Sequence[str]) -> Optional[tuple[int, str]]:
    """(the style, what is wrong) for a combination of regions that cannot work, else None.

    ``regions`` has one entry per style used."""
    for i, region in enumerate(regions):
        if region not in REGIONS:
            return i, f"must be one of {', '.join(REGIONS)} (got {region!r})"
        if region == "rest":
            if len(regions) != 2:
                return i, "is what the other style's region leaves, but there is no other style"
            other = regions[1 - i]
            if other in ("layer", "rest"):
                return i, ("is what the other style's region leaves, but that is "
                           + ("the whole layer" if other == "layer" else "the rest too")
                           + ": give the other style a selection or a channel")
    return None
