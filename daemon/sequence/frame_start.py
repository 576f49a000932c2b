"""Frame t's start and temporal target from frame t−1: what the daemon (and ``video --local``) prepare per frame.

Pure numpy (no torch, no files), so any worker can do it from the request alone: a frame's request
carries the previous content frame and the previous stylized frame, nothing is kept between requests.
Everything is worked at the output size (the size the engine will optimise at), so the flow of a 1080p
sequence scaled to 512 px costs a 512 px flow, and the buffers are three image-sized arrays.
"""
from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np
import numpy.typing as npt

from .flow import FloatArray, fill_disoccluded, frame_pair_flow, warp


@dataclass(frozen=True)
class FrameStart:
    """``start``: the image frame t starts from (the warped previous result, the content where it is not
    certain); ``target``: the warped previous result; ``certainty``: (h, w) in [0, 1]. (h, w, 3) float32."""

    start: FloatArray
    target: FloatArray
    certainty: FloatArray


def at_size(image: npt.NDArray[np.generic], size: tuple[int, int]) -> FloatArray:
    """An (H, W, C) float image at (height, width): area-averaged down, bilinear up; RGB only."""
    rgb = np.ascontiguousarray(np.asarray(image, dtype=np.float32)[..., :3])
    height, width = size
    if rgb.shape[:2] == (height, width):
        return rgb
    shrinking = height * width < rgb.shape[0] * rgb.shape[1]
    resized = cv2.resize(rgb, (width, height), interpolation=cv2.INTER_AREA if shrinking else cv2.INTER_LINEAR)
    return np.asarray(resized, dtype=np.float32)


def frame_start(content: npt.NDArray[np.generic], previous_content: npt.NDArray[np.generic],
                previous_stylized: npt.NDArray[np.generic], size: tuple[int, int],
                method: str = "dis") -> FrameStart:
    """Frame t's start and target at ``size`` (height, width) from the previous frame's content and result.

    ``content`` and ``previous_content`` (H, W, 3|4) float in [0, 1] of one size (a ValueError otherwise);
    ``previous_stylized`` any size of the same shape (it is resized to ``size``). The flow runs between the
    two content frames at ``size``; Ruder et al.'s certainty is frame t's (``flow.frame_pair_flow``).
    """
    if np.shape(content)[:2] != np.shape(previous_content)[:2]:
        raise ValueError(f"frames of different sizes: {np.shape(content)[1]}×{np.shape(content)[0]} and "
                         f"{np.shape(previous_content)[1]}×{np.shape(previous_content)[0]}")
    current, before = at_size(content, size), at_size(previous_content, size)
    pair = frame_pair_flow(before, current, method)
    target = np.clip(warp(at_size(previous_stylized, size), pair.backward), 0.0, 1.0).astype(np.float32)
    start = fill_disoccluded(target, current, pair.certainty)
    return FrameStart(start=start, target=target, certainty=pair.certainty)


__all__ = ["FrameStart", "at_size", "frame_start"]
