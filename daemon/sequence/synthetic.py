"""Synthetic frame sequences with known motion, for the flow's tests and the temporal benchmark.

A camera pans over a photo by whole pixels per frame while a textured square (the occluder) moves
across it another way, so that the true flow is known everywhere and the square covers and
uncovers background: real occlusions, with their true mask. Whole-pixel motion keeps the ground
truth exact: frame t−1 warped by the true backward flow *is* frame t wherever ``visible`` says so.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

FloatArray = npt.NDArray[np.float32]
Mask = npt.NDArray[np.bool_]


@dataclass(frozen=True)
class SyntheticSequence:
    """``frames[t]`` (H, W, 3) float32 in [0, 1]; for t ≥ 1, ``backward[t]`` (t → t−1), ``forward[t]``
    (t−1 → t) and ``visible[t]`` (the pixels of frame t seen in frame t−1); index 0 of those is None."""

    frames: list[FloatArray]
    backward: list[FloatArray | None]
    forward: list[FloatArray | None]
    visible: list[Mask | None]
    occluder_boxes: list[tuple[int, int, int, int]]  # (x, y, side, side) of the square in each frame


def pan_with_occluder(photo: FloatArray, occluder: FloatArray, count: int, height: int, width: int, *,
                      pan: tuple[int, int] = (3, 1), speed: tuple[int, int] = (-5, 2),
                      side: int | None = None, turn: int | None = None) -> SyntheticSequence:
    """``count`` frames of ``height``×``width`` panning over ``photo`` by ``pan`` (dx, dy) pixels a frame,
    with a ``side``-pixel square cut from ``occluder`` moving by ``speed`` in the frame (default side:
    a third of the shorter side). ``photo`` must be large enough for the pan. ``turn``: the square goes
    back the way it came after that frame, uncovering what earlier frames saw (the long-term case)."""
    side = side or min(height, width) // 3
    dx, dy = pan
    need_w, need_h = width + abs(dx) * (count - 1), height + abs(dy) * (count - 1)
    if photo.shape[0] < need_h or photo.shape[1] < need_w:
        raise ValueError(f"the photo ({photo.shape[1]}×{photo.shape[0]}) is too small for the pan ({need_w}×{need_h})")
    if occluder.shape[0] < side or occluder.shape[1] < side:
        raise ValueError("the occluder image is smaller than the square")
    patch = np.asarray(occluder[:side, :side, :3], dtype=np.float32)
    origin_x, origin_y = (abs(dx) * (count - 1) if dx < 0 else 0), (abs(dy) * (count - 1) if dy < 0 else 0)
    sx, sy = speed
    # the square crosses the frame's middle half-way through the sequence
    start_x = (width - side) // 2 - sx * (count // 2)
    start_y = (height - side) // 2 - sy * (count // 2)
    frames: list[FloatArray] = []
    boxes: list[tuple[int, int, int, int]] = []
    for t in range(count):
        ox, oy = origin_x + dx * t, origin_y + dy * t
        frame = np.array(photo[oy:oy + height, ox:ox + width, :3], dtype=np.float32)
        step = t if turn is None or t <= turn else 2 * turn - t
        qx, qy = start_x + sx * step, start_y + sy * step
        _paste(frame, patch, qx, qy)
        frames.append(frame)
        boxes.append((qx, qy, side, side))
    backward: list[FloatArray | None] = [None]
    forward: list[FloatArray | None] = [None]
    visible: list[Mask | None] = [None]
    for t in range(1, count):
        inside_now, inside_before = _box_mask(height, width, boxes[t]), _box_mask(height, width, boxes[t - 1])
        vx, vy = boxes[t][0] - boxes[t - 1][0], boxes[t][1] - boxes[t - 1][1]  # the square's motion
        b = np.empty((height, width, 2), np.float32)
        b[...] = (dx, dy)
        b[inside_now] = (-vx, -vy)
        f = np.empty((height, width, 2), np.float32)
        f[...] = (-dx, -dy)
        f[inside_before] = (vx, vy)
        backward.append(b)
        forward.append(f)
        visible.append(_visible(b, inside_now, inside_before))
    return SyntheticSequence(frames, backward, forward, visible, boxes)


def _paste(frame: FloatArray, patch: FloatArray, x: int, y: int) -> None:
    """``patch`` onto ``frame`` with its top-left at (x, y), clipped to the frame."""
    height, width = frame.shape[:2]
    side_y, side_x = patch.shape[:2]
    x0, y0, x1, y1 = max(x, 0), max(y, 0), min(x + side_x, width), min(y + side_y, height)
    if x0 < x1 and y0 < y1:
        frame[y0:y1, x0:x1] = patch[y0 - y:y1 - y, x0 - x:x1 - x]


def _box_mask(height: int, width: int, box: tuple[int, int, int, int]) -> Mask:
    x, y, side_x, side_y = box
    mask = np.zeros((height, width), bool)
    mask[max(y, 0):max(min(y + side_y, height), 0), max(x, 0):max(min(x + side_x, width), 0)] = True
    return mask


def _visible(backward: FloatArray, inside_now: Mask, inside_before: Mask) -> Mask:
    """Pixels of frame t whose point is in frame t−1's picture and, for the background, not under the square there."""
    height, width = inside_now.shape
    grid_x, grid_y = np.meshgrid(np.arange(width), np.arange(height))
    src_x = grid_x + backward[..., 0].astype(np.int64)
    src_y = grid_y + backward[..., 1].astype(np.int64)
    in_frame = (src_x >= 0) & (src_x < width) & (src_y >= 0) & (src_y < height)
    covered = np.zeros_like(in_frame)
    covered[in_frame] = inside_before[src_y[in_frame], src_x[in_frame]]
    visible: Mask = in_frame & (inside_now | ~covered)
    return visible


__all__ = ["SyntheticSequence", "pan_with_occluder"]
