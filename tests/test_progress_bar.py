"""Progress output: a redrawn bar on a terminal, plain lines elsewhere."""
from __future__ import annotations

import io

from neural_style.daemon.progress_bar import ProgressBar


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
