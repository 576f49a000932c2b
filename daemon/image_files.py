"""Image files and bytes ↔ float tensors (C, H, W) in [0, 1], sRGB, with alpha kept when present."""
from __future__ import annotations

import io
from collections.abc import Mapping
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageOps, UnidentifiedImageError

from .local_errors import ImageError, ImageTooLarge
from .png_output import save_pil

#: Default ceiling on decoded pixels (a 16k × 16k image), against decompression bombs.
DEFAULT_MAX_PIXELS = 16384 * 16384


def load_image(path: str | Path, max_pixels: int = DEFAULT_MAX_PIXELS) -> torch.Tensor:
    """Read an image file: RGB, or RGBA when it has transparency; EXIF rotation applied."""
    path = Path(path)
    if not path.exists():
        raise ImageError(f"no such file: {path}")
    if path.is_dir():
        raise ImageError(f"{path} is a folder, not an image")
    return _decode(path, max_pixels, str(path))


def decode_image(data: bytes, max_pixels: int = DEFAULT_MAX_PIXELS) -> torch.Tensor:
    """Decode PNG/JPEG (or any PIL format) bytes, checking the size before the pixels are decompressed."""
    return _decode(io.BytesIO(data), max_pixels, "image data")


def _decode(source: Path | io.BytesIO, max_pixels: int, name: str) -> torch.Tensor:
    """Open lazily, refuse oversized images from the header alone, then decode to RGB or RGBA."""
    try:
        with Image.open(source) as image:
            width, height = image.size
            if width * height > max_pixels:
                raise ImageTooLarge(f"{name} is {width}×{height} = {width * height} pixels, "
                                    f"above the limit of {max_pixels}")
            image = ImageOps.exif_transpose(image)
            has_alpha = image.mode in ("RGBA", "LA", "PA") or (image.mode == "P" and "transparency" in image.info)
            return _tensor_from_array(np.asarray(image.convert("RGBA" if has_alpha else "RGB"), dtype=np.uint8))
    except Image.DecompressionBombError as error:
        raise ImageTooLarge(f"{name} is refused as a decompression bomb ({error})") from None
    except (UnidentifiedImageError, OSError, SyntaxError) as error:
        raise ImageError(f"{name} is not an image PIL can read ({error})") from None


def _tensor_from_array(array: np.ndarray) -> torch.Tensor:
    """(H, W, C) uint8 → (C, H, W) float in [0, 1] (a copy: the source buffer may be read-only or reused)."""
    return torch.from_numpy(array.copy()).permute(2, 0, 1).float() / 255.0


def tensor_from_bytes(data: bytes | bytearray | memoryview, width: int, height: int, channels: int) -> torch.Tensor:
    """Raw 8-bit interleaved RGB/RGBA, row-major (the protocol's ``raw`` encoding) → tensor."""
    expected = width * height * channels
    if channels not in (3, 4):
        raise ImageError(f"raw images have 3 or 4 channels, not {channels}")
    if len(data) != expected:
        raise ImageError(f"raw image of {width}×{height}×{channels} needs {expected} bytes, got {len(data)}")
    return _tensor_from_array(np.frombuffer(data, dtype=np.uint8).reshape(height, width, channels))


def tensor_to_array(image: torch.Tensor) -> np.ndarray:
    """(C, H, W) float in [0, 1] → (H, W, C) uint8, rounded."""
    return (image.detach().cpu().clamp(0, 1) * 255.0).round().to(torch.uint8).permute(1, 2, 0).contiguous().numpy()


def tensor_to_bytes(image: torch.Tensor) -> tuple[bytes, int, int, int]:
    """Tensor → (raw bytes, width, height, channels) in the protocol's ``raw`` encoding."""
    array = tensor_to_array(image)
    height, width, channels = array.shape
    return array.tobytes(), width, height, channels


def to_pil(image: torch.Tensor) -> Image.Image:
    array = tensor_to_array(image)
    return Image.fromarray(array, "RGBA" if array.shape[2] == 4 else "RGB")


def save_image(image: torch.Tensor, path: str | Path, metadata: Mapping[str, str] | None = None) -> None:
    """Write PNG (with ``metadata`` as text chunks) or, by extension, any format PIL writes."""
    save_pil(to_pil(image), path, metadata)
