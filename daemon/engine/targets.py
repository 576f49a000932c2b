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
from .losses import at_least_float32, gram_matrix, guided_gram_sum
from .regions import source_guides
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
                  stats: CacheStats, block_size: int | None = None,
                  source_masks: Sequence[torch.Tensor | None] | None = None) -> dict[str, torch.Tensor]:
    """The blended Gram targets A^l for an output of ``output`` (height, width): ``style_grams`` of each
    style (guided by its source mask, if any), weighted by ``blend``."""
    if not layers:
        return {}
    blended: dict[str, torch.Tensor] = {}
    every = style_grams(model, styles, layers, output=output, style_scale=style_scale, smallest=smallest,
                        pooling=pooling, precision=precision, autocast=autocast, cache=cache, stats=stats,
                        block_size=block_size, source_masks=source_masks)
    for grams, weight in zip(every, blend):
        for name, gram in grams.items():
            contribution = gram * weight
            blended[name] = blended[name] + contribution if name in blended else contribution
    return blended


def style_grams(model: VGG19Features, styles: Sequence[torch.Tensor], layers: tuple[str, ...], *,
                output: tuple[int, int], style_scale: float, smallest: int, pooling: str, precision: str,
                autocast: Autocast, cache: StyleCache | None, stats: CacheStats, block_size: int | None = None,
                source_masks: Sequence[torch.Tensor | None] | None = None) -> list[dict[str, torch.Tensor]]:
    """Each style's own Gram targets for an output of ``output``: g^l, or with ``source_masks[i]`` (style i's
    frame, (1, H, W)) the guided (F∘m)(F∘m)ᵀ / Σ m², the mask at the style's working size on each layer's grid.

    Memoised in ``cache`` by the style's and its source mask's content digests and the settings (not by
    how they were computed: in one pass and block by block they agree to float rounding). A style
    larger than ``block_size`` (the scale's blocks) is evaluated block by block.
    """
    out: list[dict[str, torch.Tensor]] = []
    for i, style in enumerate(styles):
        rgb = split_alpha(style.float())[0]
        source = source_masks[i] if source_masks is not None and i < len(source_masks) else None
        size = style_size(rgb.shape[-2], rgb.shape[-1], output, style_scale, smallest)
        key: tuple[Any, ...] = (_digest(rgb), size, layers, pooling, precision, model.weights_format,
                                 model.description, id(model))
        if source is not None:
            key += ("source", _digest(source))
        grams = cache.get(key) if cache is not None else None
        if grams is None:
            stats.misses += 1
            grams = _grams(model, resize(rgb, size).unsqueeze(0).to(model.device),
                           source_guides(source, size, layers, model.device), layers, pooling, autocast, block_size)
            if cache is not None:
                cache[key] = grams
        else:
            stats.hits += 1
        out.append(grams)
    return out


def _grams(model: VGG19Features, image: torch.Tensor, guides: dict[str, torch.Tensor] | None, layers: tuple[str, ...],
           pooling: str, autocast: Autocast, block_size: int | None) -> dict[str, torch.Tensor]:
    """One style image's (guided) Gram targets, in one pass or block by block beyond ``block_size``."""
    if block_size is not None and max(image.shape[-2:]) > block_size:
        return blockwise_grams(model, image, layers, block_size, pooling, autocast, guides)
    with torch.no_grad(), autocast():
        features = model(image, layers, pooling)
    with torch.no_grad():
        if guides is None:
            return {name: gram_matrix(features[name]) for name in layers}
        return {name: guided_gram_sum(features[name], guides[name]) / float(guides[name].pow(2).sum())
                for name in layers}


def _digest(image: torch.Tensor) -> str:
    array = image.detach().to("cpu", torch.float32).contiguous().numpy()
    return hashlib.blake2b(array.tobytes(), digest_size=16).hexdigest() + str(tuple(array.shape))
