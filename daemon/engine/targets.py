"""The optimisation's targets at one scale: the content's features P^l and the styles' blended Grams A^l.

Both are computed without gradients, on the whole image when the scale's memory plan optimises
the whole image and block by block otherwise (``blockwise``), so that a target never needs more
memory than the evaluations that use it. Each style's Grams are memoised in the caller's cache.
"""
from __future__ import annotations

import contextlib
import hashlib
from collections.abc import MutableMapping, Sequence
from dataclasses import dataclass
from typing import Any

import torch

from .blockwise import Autocast, blockwise_features, blockwise_grams
from .imaging import resize, split_alpha
from .losses import at_least_float32, gram_matrix
from .sizes import at_least, scale_to_longest_side
from .vgg import VGG19Features

#: Memoised Gram targets: a style image and the settings that shape its Grams → the Grams per layer.
StyleCache = MutableMapping[tuple[Any, ...], dict[str, torch.Tensor]]


def autocast_for(precision: str, device: torch.device) -> Autocast:
    """Autocast for fp16/bf16 (the convolutions); Gram matrices and losses stay float32."""
    if precision in ("fp16", "bf16"):
        dtype = torch.float16 if precision == "fp16" else torch.bfloat16
        return lambda: torch.autocast(device_type=device.type, dtype=dtype)
    return contextlib.nullcontext


def content_features(model: VGG19Features, content: torch.Tensor, layers: Sequence[str], pooling: str,
                     autocast: Autocast, block_size: int | None = None) -> dict[str, torch.Tensor]:
    """P^l of ``content`` (1, 3, H, W) in at least float32: in one pass, or block by block with ``block_size``."""
    if block_size is not None:
        return blockwise_features(model, content, layers, block_size, pooling, autocast)
    with torch.no_grad(), autocast():
        features = model(content, layers, pooling)
    return {name: at_least_float32(value.detach()) for name, value in features.items()}


def style_size(style_height: int, style_width: int, output: tuple[int, int], style_scale: float,
               smallest: int) -> tuple[int, int]:
    """The size a style image is used at: its longest side ``style_scale`` × the output's, so that
    strokes keep their size relative to the image from scale to scale, but never above its own
    (an upsampled painting has no finer strokes to give, only blur); each side at least ``smallest``."""
    longest = min(round(max(output) * style_scale), max(style_height, style_width))
    return at_least(scale_to_longest_side(style_height, style_width, max(1, longest)), smallest)


@dataclass
class CacheStats:
    hits: int = 0
    misses: int = 0


def style_targets(model: VGG19Features, styles: Sequence[torch.Tensor], blend: Sequence[float],
                  layers: tuple[str, ...], *, output: tuple[int, int], style_scale: float, smallest: int,
                  pooling: str, precision: str, autocast: Autocast, cache: StyleCache | None,
                  stats: CacheStats, block_size: int | None = None) -> dict[str, torch.Tensor]:
    """The blended Gram targets A^l for an output of ``output`` (height, width).

    Each style's Grams are memoised in ``cache`` by content digest and settings (not by how they
    were computed: in one pass and block by block they agree to float rounding). A style larger
    than ``block_size`` (the scale's blocks) is evaluated block by block.
    """
    if not layers:
        return {}
    blended: dict[str, torch.Tensor] = {}
    for style, weight in zip(styles, blend):
        rgb = split_alpha(style.float())[0]
        size = style_size(rgb.shape[-2], rgb.shape[-1], output, style_scale, smallest)
        key = (_digest(rgb), size, layers, pooling, precision, model.weights_format, model.description, id(model))
        grams = cache.get(key) if cache is not None else None
        if grams is None:
            stats.misses += 1
            image = resize(rgb, size).unsqueeze(0).to(model.device)
            if block_size is not None and max(size) > block_size:
                grams = blockwise_grams(model, image, layers, block_size, pooling, autocast)
            else:
                with torch.no_grad(), autocast():
                    features = model(image, layers, pooling)
                with torch.no_grad():
                    grams = {name: gram_matrix(features[name]) for name in layers}
            if cache is not None:
                cache[key] = grams
        else:
            stats.hits += 1
        for name, gram in grams.items():
            contribution = gram * weight
            blended[name] = blended[name] + contribution if name in blended else contribution
    return blended


def _digest(image: torch.Tensor) -> str:
    array = image.detach().to("cpu", torch.float32).contiguous().numpy()
    return hashlib.blake2b(array.tobytes(), digest_size=16).hexdigest() + str(tuple(array.shape))
