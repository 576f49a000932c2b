"""Frame t's start and target from frame t−1 (daemon/sequence/frame_start.py), on synthetic known motion."""
from __future__ import annotations

import numpy as np
import pytest

from neural_style.daemon.sequence.frame_start import at_size, frame_start
from neural_style.daemon.sequence.synthetic import pan_with_occluder


@pytest.fixture(scope="module")
def sequence():
    rng = np.random.default_rng(7)
    photo = np.repeat(np.repeat(rng.random((40, 50, 3), dtype=np.float32), 4, 0), 4, 1)  # smooth blocks
    import cv2

    photo = cv2.GaussianBlur(photo, (0, 0), 2.0)
    return pan_with_occluder(photo, rng.random((20, 20, 3), dtype=np.float32), 2, 96, 128, pan=(3, 1),
                             speed=(-4, 2), side=20)


def test_the_target_is_the_previous_result_moved_by_the_flow(sequence) -> None:
    """With the previous content itself as the 'result', the warped target is frame t where certain."""
    before, now = sequence.frames
    prepared = frame_start(now, before, before, now.shape[:2])
    sure = prepared.certainty > 0.9
    assert sure.mean() > 0.7
    error = np.abs(prepared.target - now)[sure].mean()
    assert error < 0.3 * np.abs(before - now)[sure].mean()  # the motion is compensated, not ignored
    visible = sequence.visible[1]
    assert visible is not None
    assert prepared.certainty[~visible].mean() < 0.5  # the disoccluded pixels are mostly not trusted
    blend = prepared.certainty[..., None]
    np.testing.assert_allclose(prepared.start, blend * prepared.target + (1 - blend) * now, atol=1e-5)


def test_everything_comes_at_the_output_size_and_the_stylized_frame_may_be_smaller(sequence) -> None:
    before, now = sequence.frames
    result = at_size(before, (48, 64))  # a previous result at the output's size, not the content's
    prepared = frame_start(now, before, result, (48, 64))
    assert prepared.start.shape == prepared.target.shape == (48, 64, 3) and prepared.certainty.shape == (48, 64)
    assert prepared.start.dtype == np.float32 and prepared.start.min() >= 0.0 and prepared.start.max() <= 1.0


def test_frames_of_different_sizes_are_refused(sequence) -> None:
    before, now = sequence.frames
    with pytest.raises(ValueError, match="different sizes"):
        frame_start(now, before[:90], before, (48, 64))
