"""Request images ↔ tensors, for the daemon only.

Why here and not in the socket loop: probing a PNG/JPEG header is cheap and
happens in the loop (a decompression bomb is refused before ``accepted``);
checking a PNG's chunks (``verify_png``) and inflating a region mask's levels
happen on the admission pool's threads, still before ``accepted``; inflating a
picture's pixels and converting them to float tensors is dearer still, so the
worker does it when the job starts.  The actual conversions are the lead's
``neural_style.daemon.image_files`` functions; this module adds the daemon's error
mapping (a ``CodedError`` carries the protocol's error code) and the pixel limit.

The daemon never opens a file a request names: images arrive as bytes only.
"""

from __future__ import annotations

import io
import warnings
from typing import TYPE_CHECKING, Any

from PIL import Image

from neural_style.daemon.local_errors import ImageError, ImageTooLarge
from neural_style.protocol.errors import CodedError, ErrorCode
from neural_style.protocol.image_data import ImageData

if TYPE_CHECKING:  # torch only in annotations: the socket loop and the CLI import this without it
    from collections.abc import Sequence

    import numpy as np
    import torch

    from neural_style.daemon.engine.params import StyleParams
    from neural_style.daemon.engine.temporal import TemporalTarget
    from neural_style.protocol.messages import Earlier, Previous

__all__ = ["probe", "verify_png", "decode_request_image", "decode_mask_levels", "decode_masks", "decode_previous",
           "encode_result"]


_ORIENTATION = 0x0112  # EXIF's orientation tag
_TURNED = (5, 6, 7, 8)  # orientations whose rotation swaps width and height


def _buffer(payload: Any) -> memoryview:
    return payload if isinstance(payload, memoryview) else memoryview(payload)


def probe(payload: Any, encoding: str, max_pixels: int) -> tuple[int, int]:
    """Width and height of a PNG/JPEG from its header alone, refusing more than ``max_pixels``.

    Pillow reads only the header here; no pixel is inflated, so a tiny file that claims
    to be 100000×100000 costs nothing to refuse.  A JPEG's size is the decoded one, its EXIF
    rotation applied (as ``image_files`` decodes it), so a region mask painted on the upright
    photo fits it.
    """
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(_buffer(payload)), formats=[encoding.upper()]) as im:
                width, height = im.size
                if encoding == "jpeg" and im.getexif().get(_ORIENTATION) in _TURNED:  # read from the header
                    width, height = height, width  # as decoded (EXIF rotation applied): a mask must fit that
    except Image.DecompressionBombError as exc:
        raise CodedError(ErrorCode.TOO_LARGE, f"refused as a decompression bomb: {exc}") from None
    except Exception as exc:  # Pillow raises many types for broken data
        raise CodedError(ErrorCode.BAD_REQUEST, f"not a readable {encoding} image: {exc}") from None
    if width * height > max_pixels:
        raise CodedError(ErrorCode.TOO_LARGE,
                           f"{encoding} image is {width}x{height} = {width * height} pixels; "
                           f"this daemon accepts at most {max_pixels} pixels per image")
    return width, height


def verify_png(payload: Any) -> None:
    """A PNG's structure checked without inflating it: every chunk there, each CRC right (Pillow's ``verify``,
    about a twentieth of a decode's time), so a truncated or corrupted PNG is refused before ``accepted``.
    Data that passes and still does not inflate (only a crafted file does) is found when the job starts."""
    try:
        with Image.open(io.BytesIO(_buffer(payload)), formats=["PNG"]) as im:
            im.verify()
    except Exception as exc:  # Pillow raises many types for broken data
        raise CodedError(ErrorCode.BAD_REQUEST, f"not a readable png image: {exc}") from None


def decode_request_image(image: ImageData, max_pixels: int, field: str | None = None) -> torch.Tensor:
    """The float (C, H, W) tensor in [0, 1] of one request image (raw, PNG or JPEG); ``field`` is where the
    request holds it ("content", "styles[1]"), for the error."""
    from neural_style.daemon import image_files

    ref, payload = image, image.data
    if ref.encoding == "raw":
        assert ref.width is not None and ref.height is not None and ref.channels is not None
        try:
            return image_files.tensor_from_bytes(_buffer(payload), ref.width, ref.height, ref.channels)
        except (ValueError, TypeError) as exc:
            raise CodedError(ErrorCode.BAD_REQUEST, f"raw image: {exc}", field=field) from None
    try:
        return image_files.decode_image(bytes(_buffer(payload)), max_pixels)
    except ImageTooLarge as exc:
        raise CodedError(ErrorCode.TOO_LARGE, f"{ref.encoding} image: {exc}", field=field) from None
    except ImageError as exc:
        raise CodedError(ErrorCode.BAD_REQUEST, f"{ref.encoding} image: {exc}", field=field) from None


def decode_mask_levels(image: ImageData, max_pixels: int, field: str) -> np.ndarray:
    """A region mask's grey levels (``mask_images.mask_levels``), its errors coded for ``field``
    ("style_masks[1]"): admission reads them to refuse an all-black mask, the worker to run."""
    from neural_style.daemon.mask_images import mask_levels

    try:
        return mask_levels(image, max_pixels)
    except ImageTooLarge as exc:
        raise CodedError(ErrorCode.TOO_LARGE, f"{field}: {exc}", field=field) from None
    except ImageError as exc:
        raise CodedError(ErrorCode.BAD_REQUEST, f"{field}: {exc}", field=field) from None


def decode_masks(masks: Sequence[ImageData | None] | None, max_pixels: int,
                 name: str) -> list[torch.Tensor | None] | None:
    """``stylize``'s ``style_masks`` (or ``style_source_masks``, by ``name``): each a (1, H, W) tensor."""
    if masks is None:
        return None
    from neural_style.daemon.mask_images import mask_tensor

    return [None if mask is None else mask_tensor(decode_mask_levels(mask, max_pixels, f"{name}[{i}]"))
            for i, mask in enumerate(masks)]


def decode_previous(content: torch.Tensor | None, previous: Previous | None, params: StyleParams,
                    max_pixels: int, earlier: Sequence[Earlier] | None = None,
                    ) -> tuple[torch.Tensor | None, Sequence[TemporalTarget]]:
    """A frame's ``stylize`` arguments ``start_image`` and ``temporal`` from its request's previous frame
    and long-term ``earlier`` frames (None and none without a previous frame): the images decoded, then
    flow, warp, certainty and the closest-visible weights (``temporal_inputs``)."""
    if previous is None or content is None:
        return None, ()
    from neural_style.daemon.temporal_inputs import temporal_inputs

    assert previous.content is not None and previous.stylized is not None  # the decoder requires both
    before = decode_request_image(previous.content, max_pixels, "previous.content")
    stylized = decode_request_image(previous.stylized, max_pixels, "previous.stylized")
    far = []
    for i, frame in enumerate(earlier or ()):
        assert frame.content is not None and frame.stylized is not None  # the decoder requires both
        far.append((decode_request_image(frame.content, max_pixels, f"earlier[{i}].content"),
                    decode_request_image(frame.stylized, max_pixels, f"earlier[{i}].stylized")))
    try:
        return temporal_inputs(content, before, stylized, params, previous.flow, far)
    except ValueError as exc:  # frames of different sizes (admission compares the descriptors)
        raise CodedError(ErrorCode.BAD_REQUEST, f"previous.content: {exc}", field="previous.content") from None


def encode_result(image: torch.Tensor) -> tuple[bytes, int, int, int]:
    """A result or preview tensor as raw 8-bit interleaved bytes: (data, width, height, channels)."""
    from neural_style.daemon import image_files

    return image_files.tensor_to_bytes(image)
