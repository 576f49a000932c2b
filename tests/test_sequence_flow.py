"""The flow module on synthetic motion with known flow: a pan over a photo and a square moving across it.

The square covers and uncovers background, so the sequence has real occlusions and a true mask
(``sequence/synthetic.py``). Checked: the warp, consistencyChecker.cpp's rules (on exact flows and at
their thresholds), and DIS and Farnebäck estimates against the truth.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from neural_style.daemon.sequence import flow
from neural_style.daemon.sequence.synthetic import pan_with_occluder

IMAGES = Path(__file__).resolve().parents[1] / ".." / "shared" / "images"
HEIGHT, WIDTH = 120, 160


def _photo(name: str) -> np.ndarray:
    return np.asarray(Image.open(IMAGES / name).convert("RGB"), np.float32) / 255.0


def _sequence(speed: tuple[int, int]):
    return pan_with_occluder(_photo("tubingen.jpg")[250:, 200:], _photo("starry_night.jpg"), 4, HEIGHT, WIDTH,
                             pan=(3, 1), speed=speed)


@pytest.fixture(scope="module")
def sequence():
    """The square moves 7 px a frame against the background: disocclusions wide enough to have an interior."""
    return _sequence((-10, 4))


@pytest.fixture(scope="module")
def slow():
    """The square moves 2–3 px a frame against the background, what an estimate at this tiny size can follow."""
    return _sequence((-5, 2))


def _near(mask: np.ndarray, radius: int) -> np.ndarray:
    """Pixels within ``radius`` (Chebyshev) of a True pixel of ``mask``."""
    out = mask.copy()
    for dy in range(-radius, radius + 1):
        for dx in range(-radius, radius + 1):
            out |= np.roll(np.roll(mask, dy, axis=0), dx, axis=1)
    return out


def _object_edge(box: tuple[int, int, int, int]) -> np.ndarray:
    x, y, side, _ = box
    inside = np.zeros((HEIGHT, WIDTH), bool)
    inside[max(y, 0):y + side, max(x, 0):x + side] = True
    return _near(inside, 1) & _near(~inside, 1)


def test_the_sequence_has_real_occlusions(sequence):
    for t in range(1, 4):
        visible = sequence.visible[t]
        inside = np.zeros_like(visible)
        x, y, side, _ = sequence.occluder_boxes[t]
        inside[y:y + side, x:x + side] = True
        in_frame = (np.arange(WIDTH) < WIDTH - 3)[None, :] & (np.arange(HEIGHT) < HEIGHT - 1)[:, None]
        uncovered = ~visible & ~inside & in_frame
        assert uncovered.sum() > 100  # background that was under the square in frame t−1


def test_warping_by_the_true_flow_gives_the_next_frame_where_visible(sequence):
    for t in range(1, 4):
        warped = flow.warp(sequence.frames[t - 1], sequence.backward[t])
        visible = sequence.visible[t]
        assert np.abs(warped - sequence.frames[t])[visible].max() < 1e-5
        assert np.abs(warped - sequence.frames[t])[~visible].mean() > 0.05  # occluded pixels do differ


def test_warp_moves_by_fractions_of_a_pixel_bilinearly():
    ramp = np.tile(np.arange(8, dtype=np.float32), (4, 1))
    shift = np.zeros((4, 8, 2), np.float32)
    shift[..., 0] = 0.25
    out = flow.warp(ramp, shift)
    np.testing.assert_allclose(out[:, :7], ramp[:, :7] + 0.25, atol=1e-2)  # cv2.remap's 1/32-pixel weights
    np.testing.assert_allclose(out[:, 7], 7.0)  # beyond the frame: its edge


def test_certainty_from_true_flows_never_trusts_an_occluded_pixel(sequence):
    for t in range(1, 4):
        visible = sequence.visible[t]
        raw = flow.certainty(sequence.backward[t], sequence.forward[t], smooth=False)
        assert set(np.unique(raw)) <= {0.0, 1.0}
        assert not (raw.astype(bool) & ~visible).any()
        # distrusted visible pixels: the square's motion boundary, and the last column and row, where the C++
        # needs the bilinear read's second neighbour inside the frame
        distrusted = ~raw.astype(bool) & visible
        edge_band = _near(_object_edge(sequence.occluder_boxes[t]), 1)
        last = np.zeros_like(visible)
        last[:, WIDTH - 4] = last[HEIGHT - 2, :] = True
        assert not (distrusted & ~edge_band & ~last).any()
        assert (distrusted & edge_band).any()  # motion boundaries are found


def test_smoothed_certainty_is_zero_inside_disocclusions_and_one_far_from_them(sequence):
    for t in range(1, 4):
        raw = flow.certainty(sequence.backward[t], sequence.forward[t], smooth=False)
        mask = flow.certainty(sequence.backward[t], sequence.forward[t])
        assert mask.dtype == np.float32 and mask.min() >= 0.0 and mask.max() <= 1.0
        source = np.stack(np.meshgrid(np.arange(WIDTH), np.arange(HEIGHT)), axis=-1) + sequence.backward[t]
        in_frame = (source >= 0).all(axis=-1) & (source[..., 0] < WIDTH - 1) & (source[..., 1] < HEIGHT - 1)
        disoccluded = ~sequence.visible[t] & in_frame  # uncovered by the square: −1 before smoothing
        disoccluded_core = ~_near(~disoccluded, 2)
        assert disoccluded_core.any()
        assert (mask[disoccluded_core] == 0.0).all()
        trusted_core = ~_near(raw == 0.0, 2)
        np.testing.assert_allclose(mask[trusted_core], 1.0, atol=1e-6)
        # the smoothing spreads disocclusion outward: their immediate neighbours lose certainty
        assert mask[_near(raw < 0.5, 1) & (raw == 1.0)].mean() < 0.9


@pytest.mark.parametrize("error, trusted", [(0.73, True), (0.76, False)])
def test_disocclusion_threshold_is_consistency_checkers(error, trusted):
    """|w + ŵ|² ≥ 0.01 (|w|² + |ŵ|²) + 0.5 fails; w = (2, 0), ŵ = (−2 + e, 0): 0.01·(4 + (2 − e)²) + 0.5 ≈ 0.556."""
    w = np.zeros((9, 9, 2), np.float32)
    w[..., 0] = 2.0
    w_hat = np.zeros_like(w)
    w_hat[..., 0] = -2.0 + error
    raw = flow.certainty(w, w_hat, smooth=False)
    threshold = 0.01 * (4 + (2 - error) ** 2) + 0.5
    assert (error**2 < threshold) == trusted
    assert raw[4, 3] == (1.0 if trusted else 0.0)


@pytest.mark.parametrize("step, trusted", [(0.04, True), (0.05, False)])
def test_motion_boundary_threshold_is_consistency_checkers(step, trusted):
    """|∇u|² + |∇v|² > 0.01 |w|² + 0.002 is a boundary; a ramp u = step·x has |∇u|² = step² (central differences)."""
    u = (step * np.arange(9, dtype=np.float32))[None, :].repeat(9, axis=0) - 0.2
    w = np.stack([u, np.zeros_like(u)], axis=-1)
    w_hat = np.zeros_like(w)
    raw = flow.certainty(w, w_hat, smooth=False)  # ŵ = 0: the round trip |w|² stays far below 0.5
    x = 4
    threshold = 0.01 * float(u[4, x]) ** 2 + 0.002
    assert (step**2 <= threshold) == trusted
    assert raw[4, x] == (1.0 if trusted else 0.0)


def test_pixels_leaving_the_frame_are_distrusted():
    w = np.zeros((6, 6, 2), np.float32)
    w[..., 0] = 2.0
    raw = flow.certainty(w, -w, smooth=False)
    # the bilinear read's second neighbour must be inside: x + 2 + 1 < 6, and y + 1 < 6 (the last row)
    assert (raw[:5, :3] == 1.0).all() and (raw[:, 3:] == 0.0).all() and (raw[5] == 0.0).all()


def test_dis_recovers_the_true_flow_and_mask(slow):
    for t in range(1, 4):
        pair = flow.frame_pair_flow(slow.frames[t - 1], slow.frames[t], "dis")
        visible = slow.visible[t]
        error = np.linalg.norm(pair.backward - slow.backward[t], axis=-1)
        assert np.median(error[visible]) < 0.3
        assert pair.certainty[visible].mean() > 0.9
        assert pair.certainty[~visible].mean() < 0.4
        warped = flow.warp(slow.frames[t - 1], pair.backward)
        c = pair.certainty[..., None]
        assert float((c * (warped - slow.frames[t]) ** 2).sum() / c.sum()) < 2e-3


def test_farneback_recovers_a_pan():
    photo = _photo("tubingen.jpg")
    first, second = photo[300:300 + HEIGHT, 400:400 + WIDTH], photo[302:302 + HEIGHT, 403:403 + WIDTH]
    backward = flow.optical_flow(second, first, "farneback")
    interior = backward[10:-10, 10:-10]
    np.testing.assert_allclose(np.median(interior.reshape(-1, 2), axis=0), [3.0, 2.0], atol=0.3)


def test_long_term_weights_hold_each_pixel_by_the_closest_visible_frame():
    near = np.array([[1.0, 0.0, 0.5, 0.0]], np.float32)
    far = np.array([[1.0, 1.0, 1.0, 0.0]], np.float32)
    farther = np.array([[1.0, 1.0, 1.0, 1.0]], np.float32)
    held = flow.closest_first([near, far, farther])
    np.testing.assert_allclose(held[0], near)
    np.testing.assert_allclose(held[1], [[0.0, 1.0, 0.5, 0.0]])
    np.testing.assert_allclose(held[2], [[0.0, 0.0, 0.0, 1.0]])
    np.testing.assert_allclose(sum(held), [[1.0, 1.0, 1.0, 1.0]])


def test_frames_of_different_sizes_are_refused():
    with pytest.raises(ValueError, match="different sizes"):
        flow.optical_flow(np.zeros((8, 8, 3), np.float32), np.zeros((8, 9, 3), np.float32))
    with pytest.raises(ValueError, match="unknown flow method"):
        flow.optical_flow(np.zeros((8, 8, 3), np.float32), np.zeros((8, 8, 3), np.float32), "deepflow")


def test_disoccluded_pixels_start_from_the_content():
    warped, content = np.ones((2, 2, 3), np.float32), np.zeros((2, 2, 3), np.float32)
    mask = np.array([[1.0, 0.0], [0.5, 1.0]], np.float32)
    start = flow.fill_disoccluded(warped, content, mask)
    np.testing.assert_allclose(start[..., 0], mask)


def _read_flo(path: Path) -> np.ndarray:
    """A Middlebury .flo file: the float 202021.25, width and height as int32, then (dx, dy) per pixel."""
    data = path.read_bytes()
    assert np.frombuffer(data[:4], np.float32)[0] == np.float32(202021.25)
    width, height = np.frombuffer(data[4:12], np.int32)
    return np.frombuffer(data[12:], np.float32).reshape(height, width, 2)


def _read_pgm(path: Path) -> np.ndarray:
    magic, size, _depth, pixels = path.read_bytes().split(b"\n", 3)
    assert magic == b"P5"
    width, height = map(int, size.split())
    return np.frombuffer(pixels, np.uint8).reshape(height, width)


def test_certainty_equals_consistency_checkers_own_output():
    """Against the output of Ruder et al.'s compiled consistencyChecker on the same flows (tests/data/…/README.md)."""
    folder = Path(__file__).resolve().parent / "data" / "consistency_checker"
    reference = _read_pgm(folder / "reliable_3_2.pgm").astype(np.float64)
    ours = flow.certainty(_read_flo(folder / "backward_3_2.flo"), _read_flo(folder / "forward_2_3.flo"))
    assert (reference == 0).any() and (reference >= 254).any() and ((reference > 0) & (reference < 254)).any()
    # the C++ smooths in float32 and truncates to a byte: 254.99998 is written as 254
    difference = ours.astype(np.float64) * 255.0 - reference
    assert difference.min() > -1e-3 and difference.max() < 1.0 + 1e-3
