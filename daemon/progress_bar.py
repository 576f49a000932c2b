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



class FrameProgress:
    """A sequence's progress: frame i of n, the current frame's iteration, and the time left for the whole run.

    The time left is the mean time of the frames stylized in this run times the frames still to do, less
    what the current frame has already taken (before the first frame ends: the current frame's own
    estimate, the engine's ``seconds_left``). Frames kept from an earlier run (resume) do not count.
    """

    def __init__(self, frames: int, iterations: int, stream: TextIO | None = None, width: int = 20) -> None:
        self.frames = max(0, frames)  # 0: not known (a video whose container does not say)
        self.iterations = max(1, iterations)
        self.stream = stream if stream is not None else sys.stderr
        self.width = width
        self.interactive = bool(getattr(self.stream, "isatty", lambda: False)())
        self.index = 0
        self.name = ""
        self.done_times: list[float] = []
        self.frame_started = time.perf_counter()
        self.parallel = 1  # frames stylized at once (a video's chunks on a cluster): the rest takes 1/parallel
        self._drawn = False

    def start(self, index: int, name: str) -> None:
        """Frame ``index`` (0-based) named ``name`` begins."""
        self.index, self.name = index, name
        self.frame_started = time.perf_counter()
        self._draw(0, None)

    def report(self, progress: ProgressReport) -> None:
        """The current frame's progress (the engine's or the wire's report)."""
        self._draw(progress.iteration, progress.seconds_left, progress.iterations)

    def finish(self) -> None:
        """The current frame was written."""
        self.done_times.append(time.perf_counter() - self.frame_started)

    def seconds_left(self, frame_seconds_left: float | None = None) -> float | None:
        in_frame = time.perf_counter() - self.frame_started
        if not self.frames:
            return None
        remaining = max(0, self.frames - self.index - 1) / max(1, self.parallel)  # after the current one
        if self.done_times:
            mean = sum(self.done_times) / len(self.done_times)
            return max(0.0, mean - in_frame) + remaining * mean
        if frame_seconds_left is None:
            return None
        return frame_seconds_left + remaining * (in_frame + frame_seconds_left)

    def _draw(self, iteration: int, frame_seconds_left: float | None, iterations: int | None = None) -> None:
        total = f"/{self.frames}" if self.frames else ""
        left = self.seconds_left(frame_seconds_left)
        left_text = f" {duration(left)} left" if left is not None else ""
        tail = (f"frame {self.index + 1}{total} {self.name} iteration {iteration}/{iterations or self.iterations}"
                f"{left_text}")
        if self.interactive:
            filled = int(self.width * min(self.index, self.frames) / self.frames) if self.frames else 0
            self.stream.write(f"\r[{'#' * filled}{'.' * (self.width - filled)}] {tail}\033[K")
            self._drawn = True
        else:
            self.stream.write(tail + "\n")
        self.stream.flush()

    def close(self) -> None:
        if self._drawn:
            self.stream.write("\n")
            self.stream.flush()
            self._drawn = False
