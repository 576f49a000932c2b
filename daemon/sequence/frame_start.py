"""Frame t's start and temporal target from frame t−1: what the daemon (and ``video --local``) prepare per frame.

Pure numpy (no torch, no files), so any worker can do it from the request alone: a frame's request
carries the previous content frame and the previous stylized frame, nothing is kept between requests.
Everything is worked at the output size (the size the engine will optimise at), so the flow of a 1080p
sequence scaled to 512 px costs a 512 px flow, and the buffers are three image-sized arrays.
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import cv2
import numpy as np
import numpy.typing as npt

from .flow import FloatArray, closest_first, fill_disoccluded, frame_pair_flow, warp


@dataclass(frozen=True)
class Warped:
    """An earlier frame's result warped onto frame t, ``image`` (h, w, 3), and its weight, (h, w) in [0, 1]."""

    image: FloatArray
    weight: FloatArray


@dataclass(frozen=True)
class FrameStart:
    """``start``: the image frame t starts from (the warped previous result, the content where it is not
    certain); ``target``: the warped previous result; ``certainty``: (h, w) in [0, 1]. (h, w, 3) float32.
    ``earlier``: the long-term frames' warped results, each weighted by what the closer frames leave it."""

    start: FloatArray
    target: FloatArray
    certainty: FloatArray
    earlier: tuple[Warped, ...] = ()


def at_size(image: npt.NDArray[np.generic], size: tuple[int, int]) -> FloatArray:
    """An (H, W, C) float image at (height, width): area-averaged down, bilinear up; RGB only."""
    rgb = np.ascontiguousarray(np.asarray(image, dtype=np.float32)[..., :3])
    height, width = size
    if rgb.shape[:2] == (height, width):
        return rgb
    shrinking = height * width < rgb.shape[0] * rgb.shape[1]
    resized = cv2.resize(rgb, (width, height), interpolation=cv2.INTER_AREA if shrinking else cv2.INTER_LINEAR)
    return np.asarray(resized, dtype=np.float32)


Image = npt.NDArray[np.generic]


def _warped(current: FloatArray, content: Image, stylized: Image, size: tuple[int, int],
            method: str) -> tuple[FloatArray, FloatArray]:
    """An earlier frame's result warped onto ``current`` (at ``size``) by the flow between their content
    frames, and Ruder et al.'s certainty of that warp (``flow.frame_pair_flow``)."""
    pair = frame_pair_flow(at_size(content, size), current, method)
    target = np.clip(warp(at_size(stylized, size), pair.backward), 0.0, 1.0).astype(np.float32)
    return target, pair.certainty


def _same_size(content: Image, other: Image) -> None:
    if np.shape(content)[:2] != np.shape(other)[:2]:
        raise ValueError(f"frames of different sizes: {np.shape(content)[1]}×{np.shape(content)[0]} and "
                         f"{np.shape(other)[1]}×{np.shape(other)[0]}")


def frame_start(content: Image, previous_content: Image, previous_stylized: Image, size: tuple[int, int],
                method: str = "dis", earlier: Sequence[tuple[Image, Image]] = ()) -> FrameStart:
    """Frame t's start and targets at ``size`` (height, width) from the previous frame's content and result.

    ``content`` and ``previous_content`` (H, W, 3|4) float in [0, 1] of one size (a ValueError otherwise);
    ``previous_stylized`` any size of the same shape (it is resized to ``size``). The flow runs between the
    two content frames at ``size``; Ruder et al.'s certainty is frame t's (``flow.frame_pair_flow``).
    ``earlier``: (content, stylized) of frames further back, closest first (the long-term frames); each is
    flowed to frame t directly and weighted by ``flow.closest_first``, frame t−1 holding first.
    """
    _same_size(content, previous_content)
    for before, _ in earlier:
        _same_size(content, before)
    current = at_size(content, size)
    target, certainty = _warped(current, previous_content, previous_stylized, size, method)
    start = fill_disoccluded(target, current, certainty)
    far = [_warped(current, before, stylized, size, method) for before, stylized in earlier]
    weights = closest_first([certainty, *(mask for _, mask in far)])[1:]
    return FrameStart(start=start, target=target, certainty=certainty,
                      earlier=tuple(Warped(image, weight) for (image, _), weight in zip(far, weights)))


__all__ = ["FrameStart", "Warped", "at_size", "frame_start"]
