"""Progress output: a redrawn bar on a terminal, plain lines elsewhere."""
from __future__ import annotations

import io

from neural_style.daemon.progress_bar import ProgressBar
from neural_style.protocol.reports import duration


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_terminal_gets_one_redrawn_line():
    screen = Terminal()
    bar = ProgressBar(10, stream=screen)
    bar.update(5, 12.5)
    bar.update(10, 3.0)
    bar.close()
    text = screen.getvalue()
    assert text.count("\r") == 2 and text.endswith("\n") and text.count("\n") == 1
    assert "[###############...............] 5/10 loss 12.5" in text
    assert "10/10 loss 3" in text and "it/s" in text


def test_pipes_get_plain_lines():
    log = io.StringIO()
    bar = ProgressBar(4, stream=log, label="cells")
    bar.update(1)
    bar.update(4, 2.0)
    bar.close()
    lines = log.getvalue().splitlines()
    assert lines[0].startswith("cells iteration 1/4 ") and "loss" not in lines[0]
    assert lines[1].startswith("cells iteration 4/4 loss 2 ")
    assert "\r" not in log.getvalue()


def test_coarse_to_fine_runs_show_the_scale_and_the_time_left():
    log = io.StringIO()
    bar = ProgressBar(10, stream=log)
    bar.update(3, 5.0, scale=1, scales=3, seconds_left=185.4)
    bar.update(10, 1.0, scale=3, scales=3, seconds_left=0.0)
    bar.update(4, 2.0, scale=1, scales=1, seconds_left=None)  # one scale: nothing to say about scales
    lines = log.getvalue().splitlines()
    assert lines[0].startswith("iteration 3/10 scale 1/3 loss 5 ") and lines[0].endswith("it/s 3 min 05 s left")
    assert "scale 3/3" in lines[1] and lines[1].endswith("0 s left")
    assert "scale" not in lines[2] and "left" not in lines[2]


def test_durations_read_as_a_person_would_say_them():
    assert [duration(s) for s in (0.4, 42, 60, 185.4, 3600, 7620)] == [
        "0 s", "42 s", "1 min 00 s", "3 min 05 s", "1 h 00 min", "2 h 07 min"]
