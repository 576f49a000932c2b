"""Optical flow between two content frames, warping by a flow, and Ruder et al.'s certainty mask.

Pure functions on numpy arrays (no torch, no files). A flow is an (H, W, 2) float32 array of
(dx, dy) displacements: ``flow(a, b)`` maps each pixel p of ``a`` to where it is in ``b``, so
``a(p) ≈ b(p + flow(p))``. For frame t stylized consistently with frame t−1 one needs the
*backward* flow (t → t−1): ``warp(stylized_prev, backward)`` is the previous result moved onto frame
t, and ``certainty(backward, forward)`` says where that moved image can be trusted.

The certainty is Ruder, Dosovitskiy & Brox's ``consistencyChecker.cpp`` (manuelruder/artistic-videos)
step for step: 0 where the forward–backward check fails (disocclusion,
|w + ŵ|² ≥ 0.01 (|w|² + |ŵ|²) + 0.5, ŵ read bilinearly at p + w), 0 at motion boundaries
(|∇u|² + |∇v|² > 0.01 |w|² + 0.002, central differences), 0 where p + w leaves the frame, 1
elsewhere; then a Gaussian of σ 0.8 in which disoccluded pixels count as −1, so that the smoothing
spreads outward from them, clipped to [0, 1].

Flow methods: OpenCV's DIS (``cv2.DISOpticalFlow_create``, no weights, milliseconds a frame pair;
the default) and Farnebäck's polynomial expansion (``cv2.calcOpticalFlowFarneback``).
"""
from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np
import numpy.typing as npt

FloatArray = npt.NDArray[np.float32]

#: The flow methods, default first.
FLOW_METHODS: tuple[str, ...] = ("dis", "farneback")

# consistencyChecker.cpp's constants.
DISOCCLUSION_RELATIVE = 0.01
DISOCCLUSION_ABSOLUTE = 0.5
MOTION_BOUNDARY_RELATIVE = 0.01
MOTION_BOUNDARY_ABSOLUTE = 0.002
SMOOTH_SIGMA = 0.8  # SMOOTH_STRENGH
SMOOTH_PRECISION = 2.0  # CSmooth's second argument: the kernel's radius is ceil(precision × sigma)


@dataclass(frozen=True)
class FramePairFlow:
    """The two flows between consecutive frames and what they give frame t.

    ``backward``: frame t → frame t−1 (what warps the previous result onto frame t);
    ``forward``: frame t−1 → frame t; ``certainty``: frame t's mask, (H, W) in [0, 1].
    """

    backward: FloatArray
    forward: FloatArray
    certainty: FloatArray


def to_gray8(image: npt.NDArray[np.generic]) -> npt.NDArray[np.uint8]:
    """An (H, W, 3|4) or (H, W) image, uint8 or float in [0, 1], as the 8-bit grey the flow methods read."""
    if image.dtype != np.uint8:
        image = np.clip(np.asarray(image, dtype=np.float32) * 255.0 + 0.5, 0, 255).astype(np.uint8)
    if image.ndim == 3:
        image = cv2.cvtColor(np.ascontiguousarray(image[..., :3]), cv2.COLOR_RGB2GRAY)
    return np.ascontiguousarray(image)


def optical_flow(source: npt.NDArray[np.generic], target: npt.NDArray[np.generic], method: str = "dis") -> FloatArray:
    """The flow from ``source`` to ``target``: ``source(p) ≈ target(p + flow(p))``, (H, W, 2) float32."""
    a, b = to_gray8(source), to_gray8(target)
    if a.shape != b.shape:
        raise ValueError(f"frames of different sizes: {a.shape[1]}×{a.shape[0]} and {b.shape[1]}×{b.shape[0]}")
    if method == "dis":
        dis = cv2.DISOpticalFlow.create(cv2.DISOpticalFlow_PRESET_MEDIUM)  # = cv2.DISOpticalFlow_create
        flow = dis.calc(a, b, np.zeros((*a.shape, 2), np.float32))
    elif method == "farneback":  # flags 0: the zeros are not taken as an initial estimate
        flow = cv2.calcOpticalFlowFarneback(a, b, np.zeros((*a.shape, 2), np.float32), pyr_scale=0.5, levels=5,
                                            winsize=15, iterations=3, poly_n=5, poly_sigma=1.2, flags=0)
    else:
        raise ValueError(f"unknown flow method {method!r}; known: {', '.join(FLOW_METHODS)}")
    return np.asarray(flow, dtype=np.float32)


def frame_pair_flow(previous: npt.NDArray[np.generic], current: npt.NDArray[np.generic],
                    method: str = "dis") -> FramePairFlow:
    """Both flows between two consecutive content frames and the current frame's certainty."""
    backward = optical_flow(current, previous, method)
    forward = optical_flow(previous, current, method)
    return FramePairFlow(backward=backward, forward=forward, certainty=certainty(backward, forward))


def warp(image: npt.NDArray[np.generic], flow: FloatArray) -> FloatArray:
    """``image`` moved by ``flow``: out(p) = image(p + flow(p)), bilinear; beyond the frame, its edge.

    ``image`` is (H, W) or (H, W, C) with any C (float32 out); ``flow`` (H, W, 2) of the output's frame.
    """
    height, width = flow.shape[:2]
    source = np.asarray(image, dtype=np.float32)
    channels = source.shape[2] if source.ndim == 3 else 0
    grid_x, grid_y = np.meshgrid(np.arange(width, dtype=np.float32), np.arange(height, dtype=np.float32))
    map_x, map_y = grid_x + flow[..., 0], grid_y + flow[..., 1]
    if channels <= 4:  # cv2.remap handles up to 4 channels
        out = cv2.remap(source, map_x, map_y, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
        return np.asarray(out, dtype=np.float32).reshape(source.shape[:2] + source.shape[2:])
    return np.stack([warp(source[..., c], flow) for c in range(channels)], axis=-1)


def certainty(flow: FloatArray, reverse: FloatArray, *, smooth: bool = True) -> FloatArray:
    """Where ``flow``'s frame may trust a warp by ``flow``: (H, W) float32 in [0, 1].

    ``reverse`` is the flow the other way (for frame t's mask: ``flow`` t → t−1, ``reverse`` t−1 → t).
    consistencyChecker.cpp's checks and smoothing, in float32 as the C++ computes them;
    ``smooth=False`` gives the unsmoothed 0/1 mask.
    """
    w = np.asarray(flow, dtype=np.float32)
    w_hat = np.asarray(reverse, dtype=np.float32)
    height, width = w.shape[:2]
    grid_x, grid_y = np.meshgrid(np.arange(width, dtype=np.float32), np.arange(height, dtype=np.float32))
    bx, by = grid_x + w[..., 0], grid_y + w[..., 1]
    x1, y1 = np.floor(bx).astype(np.int32), np.floor(by).astype(np.int32)
    inside = (x1 >= 0) & (x1 + 1 < width) & (y1 >= 0) & (y1 + 1 < height)
    back = _bilinear(w_hat, bx, by, x1, y1)  # ŵ at p + w
    squared = np.einsum("ijk,ijk->ij", w, w)
    round_trip = np.einsum("ijk,ijk->ij", w + back, w + back)
    disoccluded = round_trip >= DISOCCLUSION_RELATIVE * (squared + np.einsum("ijk,ijk->ij", back, back)) \
        + DISOCCLUSION_ABSOLUTE
    boundary = _motion_edge(w) > MOTION_BOUNDARY_RELATIVE * squared + MOTION_BOUNDARY_ABSOLUTE
    # The C++'s order: outside the frame 0; else disoccluded −1 (smoothing goes "to the outside"); else boundary 0.
    reliable = np.where(disoccluded, np.float32(-1.0), np.where(boundary, np.float32(0.0), np.float32(1.0)))
    reliable[~inside] = 0.0
    if smooth:
        kernel = _gaussian_kernel(SMOOTH_SIGMA, SMOOTH_PRECISION)
        reliable = cv2.sepFilter2D(reliable, cv2.CV_32F, kernel, kernel, borderType=_MIRROR)
    return np.clip(reliable, 0.0, 1.0).astype(np.float32)


def closest_first(certainties: list[FloatArray]) -> list[FloatArray]:
    """Long-term weights: each pixel held by the closest earlier frame where it is visible.

    ``certainties`` ordered closest first (t−1, then t−k…); each later mask keeps only what the
    closer ones do not already hold (artistic-videos' ``closestFirst``: subtract, clip at 0).
    """
    held = np.zeros_like(certainties[0]) if certainties else None
    out: list[FloatArray] = []
    for mask in certainties:
        assert held is not None
        own = np.clip(mask - held, 0.0, 1.0).astype(np.float32)
        held = held + own
        out.append(own)
    return out


def fill_disoccluded(warped: npt.NDArray[np.generic], content: npt.NDArray[np.generic],
                     mask: FloatArray) -> FloatArray:
    """The start of frame t: the warped previous result where it is certain, the content frame where not
    (blended by the certainty, so the seam follows the mask's smoothing)."""
    c = mask[..., None] if np.asarray(warped).ndim == 3 else mask
    return np.asarray(c * np.asarray(warped, np.float32) + (1.0 - c) * np.asarray(content, np.float32), np.float32)


# ---------------------------------------------------------------------- consistencyChecker's pieces
#: CFilter's edges: index −1 reads 0 and n reads n − 1 (OpenCV's BORDER_REFLECT, numpy's 'symmetric').
_MIRROR = cv2.BORDER_REFLECT


def _bilinear(field: FloatArray, bx: FloatArray, by: FloatArray, x1: npt.NDArray[np.int32],
              y1: npt.NDArray[np.int32]) -> FloatArray:
    """``field`` (H, W, 2) read at (bx, by) with the C++'s interpolation (indices clamped where it skips them)."""
    height, width = field.shape[:2]
    xa, xb = np.clip(x1, 0, width - 1), np.clip(x1 + 1, 0, width - 1)
    ya, yb = np.clip(y1, 0, height - 1) * width, np.clip(y1 + 1, 0, height - 1) * width
    flat_u, flat_v = field[..., 0].ravel(), field[..., 1].ravel()

    def read(index: npt.NDArray[np.int32]) -> FloatArray:  # flat takes: several times faster than field[y, x]
        return np.stack([np.take(flat_u, index), np.take(flat_v, index)], axis=-1)

    ax, ay = (bx - x1)[..., None], (by - y1)[..., None]
    top = (1.0 - ax) * read(ya + xa) + ax * read(ya + xb)
    bottom = (1.0 - ax) * read(yb + xa) + ax * read(yb + xb)
    result: FloatArray = (1.0 - ay) * top + ay * bottom
    return result


def _motion_edge(flow: FloatArray) -> FloatArray:
    """|∇u|² + |∇v|² with CDerivative(3) (½(f(x+1) − f(x−1))) and the C++'s mirrored edges."""
    derivative = np.array([-0.5, 0.0, 0.5], np.float32)
    one = np.array([1.0], np.float32)
    dx = cv2.sepFilter2D(flow, cv2.CV_32F, derivative, one, borderType=_MIRROR)
    dy = cv2.sepFilter2D(flow, cv2.CV_32F, one, derivative, borderType=_MIRROR)
    edge: FloatArray = np.einsum("ijk,ijk->ij", dx, dx) + np.einsum("ijk,ijk->ij", dy, dy)
    return edge


def _gaussian_kernel(sigma: float, precision: float) -> FloatArray:
    """CSmooth(sigma, precision): 2⌈precision·σ⌉ + 1 taps of a Gaussian, normalised to sum 1."""
    radius = int(np.ceil(precision * sigma))
    taps = np.exp(np.arange(-radius, radius + 1) ** 2 / (-2.0 * sigma * sigma))
    kernel: FloatArray = (taps / taps.sum()).astype(np.float32)
    return kernel


__all__ = [
    "FLOW_METHODS",
    "FramePairFlow",
    "optical_flow",
    "frame_pair_flow",
    "warp",
    "certainty",
    "closest_first",
    "fill_disoccluded",
    "to_gray8",
]
