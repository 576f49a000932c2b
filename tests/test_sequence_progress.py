"""The video command's progress over frames: frame i of n, the frame's iteration, the time left for the run."""
from __future__ import annotations

import io
from types import SimpleNamespace

from neural_style.daemon.progress_bar import FrameProgress


def _report(iteration: int, seconds_left: float | None) -> SimpleNamespace:
    return SimpleNamespace(iteration=iteration, iterations=10, seconds_left=seconds_left)


def test_time_left_is_the_frames_to_do_at_the_measured_rate(monkeypatch) -> None:
    now = [100.0]
    monkeypatch.setattr("neural_style.daemon.progress_bar.time.perf_counter", lambda: now[0])
    stream = io.StringIO()
    bar = FrameProgress(5, 10, stream=stream)
    bar.start(0, "a")
    now[0] += 2.0
    assert bar.seconds_left(8.0) == 8.0 + 4 * 10.0  # first frame: its own estimate, the others at that pace
    now[0] += 8.0
    bar.finish()  # 10 s a frame
    bar.start(1, "b")
    now[0] += 4.0
    assert bar.seconds_left() == 6.0 + 3 * 10.0  # the rest of this frame and three more
    bar.report(_report(4, None))
    assert stream.getvalue().splitlines()[-1] == "frame 2/5 b iteration 4/10 36 s left"


def test_an_unknown_frame_count_shows_no_total_and_no_estimate() -> None:
    stream = io.StringIO()
    bar = FrameProgress(0, 10, stream=stream)
    bar.start(2, "frame_000003")
    bar.report(_report(10, 1.0))
    assert stream.getvalue().splitlines()[-1] == "frame 3 frame_000003 iteration 10/10"
