"""Terminal progress for long runs: a redrawn bar on a terminal, plain lines in logs and pipes."""
from __future__ import annotations

import sys
import time
from typing import TextIO

from neural_style.protocol.reports import ProgressReport, duration


class ProgressBar:
    """Shows iteration, loss, rate and, for coarse-to-fine runs, the scale and the time left.

    ``update`` may be called at any interval; plain mode prints each call.
    """

    def __init__(self, total: int, stream: TextIO | None = None, label: str = "", width: int = 30) -> None:
        self.total = max(1, total)
        self.stream = stream if stream is not None else sys.stderr
        self.label = f"{label} " if label else ""
        self.width = width
        self.started = time.perf_counter()
        self.interactive = bool(getattr(self.stream, "isatty", lambda: False)())
        self._drawn = False

    def update(self, iteration: int, loss: float | None = None, note: str = "", *, scale: int | None = None,
               scales: int | None = None, seconds_left: float | None = None) -> None:
        elapsed = max(time.perf_counter() - self.started, 1e-9)
        rate = iteration / elapsed
        loss_text = f" loss {loss:.4g}" if loss is not None else ""
        scale_text = f" scale {scale}/{scales}" if scale is not None and scales and scales > 1 else ""
        left_text = f" {duration(seconds_left)} left" if seconds_left is not None else ""
        tail = (f"{iteration}/{self.total}{scale_text}{loss_text} {rate:.2f} it/s{left_text}"
                + (f" {note}" if note else ""))
        if self.interactive:
            filled = int(self.width * min(iteration, self.total) / self.total)
            bar = "#" * filled + "." * (self.width - filled)
            self.stream.write(f"\r{self.label}[{bar}] {tail}\033[K")
            self._drawn = True
        else:
            self.stream.write(f"{self.label}iteration {tail}\n")
        self.stream.flush()

    def report(self, progress: ProgressReport) -> None:
        """One progress report (the engine's or the wire's: the same names)."""
        self.update(progress.iteration, progress.loss.total, scale=progress.scale, scales=progress.scales,
                    seconds_left=progress.seconds_left)

    def close(self) -> None:
        if self._drawn:
            self.stream.write("\n")
            self.stream.flush()
            self._drawn = False

