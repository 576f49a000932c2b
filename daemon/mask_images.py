"""Region masks (issue 17) as images: request frames and files ↔ grey levels ↔ the engine's mask tensors.

Why a module of its own: a mask is read the same way wherever it arrives (the daemon's admission, which
must see its pixels to refuse an all-black one before ``accepted``; its worker; the CLI's ``--local`` run
and its daemon path), so the one grey conversion lives here.  Levels stay integers (8 or 16 bits, as
sent) until the worker needs floats, so checking a mask costs one byte or two per pixel.  Torch only in
``mask_tensor``: the socket loop imports this without it.

Accepted (docs/PROTOCOL.md, "Regions"): raw grey8 (one channel), PNG grey8 or grey16, and any other
PNG/JPEG converted to its luminance (alpha ignored; EXIF rotation applied, as for a content photo).
"""
from __future__ import annotations

import io
import warnings
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from neural_style.daemon.engine.region_masks import MaskFrame
from neural_style.protocol.image_data import GREY, PNG_SIGNATURE, ImageData

from .local_errors import ImageError, ImageTooLarge

if TYPE_CHECKING:
    import torch

__all__ = ["mask_levels", "mask_tensor", "load_mask", "mask_frame"]

_SIXTEEN_BIT = ("I;16", "I;16B", "I;16L", "I;16N", "I")


def mask_levels(image: ImageData, max_pixels: int) -> np.ndarray:
    """The (H, W) grey levels of a mask, uint8 or uint16; ImageError (ImageTooLarge past ``max_pixels``)
    for what is not a usable mask."""
    if image.encoding == "raw":
        assert image.width is not None and image.height is not None  # ImageData checks raw descriptors
        if image.channels != GREY:
            raise ImageError(f"a raw mask has one grey channel, not {image.channels}")
        return np.frombuffer(image.data, dtype=np.uint8).reshape(image.height, image.width)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(bytes(image.data)), formats=[image.encoding.upper()]) as opened:
                width, height = opened.size
                if width * height > max_pixels:
                    raise ImageTooLarge(f"the mask is {width}x{height} = {width * height} pixels, above the "
                                        f"limit of {max_pixels}")
                return _levels(ImageOps.exif_transpose(opened))
    except Image.DecompressionBombError as exc:
        raise ImageTooLarge(f"the mask is refused as a decompression bomb ({exc})") from None
    except (UnidentifiedImageError, OSError, SyntaxError) as exc:
        raise ImageError(f"not a readable {image.encoding} mask ({exc})") from None


def _levels(image: Image.Image) -> np.ndarray:
    if image.mode in _SIXTEEN_BIT:  # a 16-bit grey PNG: keep its precision
        return np.clip(np.asarray(image, dtype=np.int64), 0, 65535).astype(np.uint16)
    if image.mode == "LA":
        image = image.getchannel("L")
    return np.asarray(image.convert("L"), dtype=np.uint8)


def mask_frame(levels: np.ndarray) -> MaskFrame:
    """What the engine's region rule (``region_masks.check_masks``) needs of a mask: its size and peak."""
    height, width = levels.shape
    return MaskFrame(height, width, float(levels.max()) / float(np.iinfo(levels.dtype).max))


def mask_tensor(levels: np.ndarray) -> torch.Tensor:
    """The engine's mask: a float (1, H, W) tensor in [0, 1] (a copy: ``levels`` may view a request frame)."""
    import torch

    scale = float(np.iinfo(levels.dtype).max)
    return torch.from_numpy(levels.astype(np.float32) / scale).unsqueeze(0)


def load_mask(path: Path) -> ImageData:
    """A mask file as a request image (the CLI sends it, or reads it as the daemon would for ``--local``):
    raw grey8, which the daemon judges whole before ``accepted``; a 16-bit grey PNG as it is, to keep its
    precision (its size is checked before ``accepted``, its pixels when the job starts)."""
    data = Path(path).read_bytes()
    try:
        with Image.open(io.BytesIO(data)) as opened:
            levels = _levels(ImageOps.exif_transpose(opened))
    except (UnidentifiedImageError, OSError, SyntaxError) as exc:
        raise ImageError(f"{path} is not an image PIL can read ({exc})") from None
    height, width = levels.shape
    if levels.dtype == np.uint16 and data.startswith(PNG_SIGNATURE):
        return ImageData(data, width, height, encoding="png")
    if levels.dtype != np.uint8:
        levels = (levels.astype(np.uint32) * 255 // 65535).astype(np.uint8)  # raw masks are grey8
    return ImageData.raw(levels.tobytes(), width, height, GREY)
