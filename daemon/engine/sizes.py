"""Image sizes the engine works at: pure integer rules, torch-free.

Why a module of its own: the daemon's admission check must know whether a request's working size is a
scale-down of its content (bounded by ``max_size``) or the content's own (bounded by ``max_pixels``)
without importing torch, and it must be the engine's rule, not a restatement of it.
"""
from __future__ import annotations

from .params import StyleParams


def fit_longest_side(height: int, width: int, longest: int) -> tuple[int, int]:
    """(h, w) scaled so that the longer side is at most ``longest``; never upscaled."""
    if max(height, width) <= longest:
        return height, width
    scale = longest / max(height, width)
    return max(1, round(height * scale)), max(1, round(width * scale))


def scale_to_longest_side(height: int, width: int, longest: int) -> tuple[int, int]:
    """(h, w) scaled so that the longer side is exactly ``longest`` (up or down): for style images."""
    scale = longest / max(height, width)
    return max(1, round(height * scale)), max(1, round(width * scale))


def at_least(size: tuple[int, int], smallest: int) -> tuple[int, int]:
    """(h, w) with each side raised to ``smallest``: an extreme aspect ratio is squeezed rather than
    leaving the network a side too short for its poolings."""
    return max(smallest, size[0]), max(smallest, size[1])


def output_size(params: StyleParams, content: tuple[int, int] | None) -> tuple[int, int]:
    """(height, width) of the result: the content's (height, width) fitted to ``size`` (its own size for 0,
    never scaled up), or, with no content, the texture's ``height`` and ``width`` (``size`` where unset)."""
    if content is not None:
        height, width = content
        return (height, width) if params.size == 0 else fit_longest_side(height, width, params.size)
    return params.height or params.size, params.width or params.size
