"""Writing result files: the PNG text chunks that say which weights and settings made an image, and the save.

PIL only, no torch: the command line's daemon path writes results without importing the engine.
"""
from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from PIL import Image, PngImagePlugin

from .local_errors import ImageError

SOFTWARE = "neural-style-gimp"


def output_metadata(weights_description: str, params: Mapping[str, Any] | None = None) -> dict[str, str]:
    """Which weights made the image (random weights say so) and with which settings."""
    metadata = {"Software": SOFTWARE, "NeuralStyle-Weights": weights_description}
    if params is not None:
        metadata["NeuralStyle-Params"] = json.dumps(dict(params), sort_keys=True)
    return metadata


def pil_from_raw(data: bytes, width: int, height: int, channels: int) -> Image.Image:
    """The protocol's ``raw`` encoding (8-bit interleaved RGB/RGBA, row-major) as a PIL image."""
    if channels not in (3, 4) or len(data) != width * height * channels:
        raise ImageError(f"raw image of {width}×{height}×{channels} cannot hold {len(data)} bytes")
    return Image.frombytes("RGBA" if channels == 4 else "RGB", (width, height), bytes(data))


def save_pil(image: Image.Image, path: str | Path, metadata: Mapping[str, str] | None = None) -> None:
    """Write PNG (with ``metadata`` as text chunks) or, by extension, any format PIL writes."""
    path = Path(path)
    try:
        if path.suffix.lower() in (".png", ""):
            info = PngImagePlugin.PngInfo()
            for key, value in (metadata or {}).items():
                info.add_text(key, value)
            image.save(path, format="PNG", pnginfo=info)
        else:
            if image.mode == "RGBA" and path.suffix.lower() in (".jpg", ".jpeg"):
                image = image.convert("RGB")
            image.save(path)
    except (OSError, ValueError, KeyError) as error:
        raise ImageError(f"could not write {path} ({error})") from None
