"""Terminal progress for long runs: a redrawn bar on a terminal, plain lines in logs and pipes."""
from __future__ import annotations

import sys
import time
from typing import TextIO


class ProgressBar:
    """Shows iteration, loss and rate. ``update`` may be called at any interval; plain mode prints each call."""

    def __init__(self, total: int, stream: TextIO | None = None, label: str = "", width: int = 30) -> None:
        self.total = max(1, total)
        self.stream = stream if stream is not None else sys.stderr
        self.label = f"{label} " if label else ""
        self.width = width
        self.started = time.perf_counter()
        self.interactive = bool(getattr(self.stream, "isatty", lambda: False)())
        self._drawn = False

    def update(self, iteration: int, loss: float | None = None, note: str = "") -> None:
        elapsed = max(time.perf_counter() - self.started, 1e-9)
        rate = iteration / elapsed
        loss_text = f" loss {loss:.4g}" if loss is not None else ""
        tail = f"{iteration}/{self.total}{loss_text} {rate:.2f} it/s" + (f" {note}" if note else "")
        if self.interactive:
            filled = int(self.width * min(iteration, self.total) / self.total)
            bar = "#" * filled + "." * (self.width - filled)
            self.stream.write(f"\r{self.label}[{bar}] {tail}\033[K")
            self._drawn = True
        else:
            self.stream.write(f"{self.label}iteration {tail}\n")
        self.stream.flush()

    def close(self) -> None:
        if self._drawn:
            self.stream.write("\n")
            self.stream.flush()
            self._drawn = False
