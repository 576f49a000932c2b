"""What GIMP's progress bar says during a job, in words a user reads: never a raw loss.

"Neural Style: queued behind 2 jobs" while the job waits, "Neural Style: starting…" once it
runs, then "Neural Style: iteration 40/200 · about 25 s left", with "scale 2 of 3 · " in front
when the daemon works coarse to fine.  The time left is the daemon's own estimate when it
sends one (it knows that a fine scale's iteration costs more than a coarse one's); else the
rate measured so far (the first report is the base, so the one-off work of computing the
style targets does not skew it).  Loss values stay in the daemon's log and the CLI.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Optional

if TYPE_CHECKING:  # the plug-in's menu entry imports this module before it knows that pyzmq is there
    from neural_style.protocol import ProgressReport

PREFIX = "Neural Style: "


def plural(count: int, word: str) -> str:
    return f"{count} {word}{'' if count == 1 else 's'}"


@dataclass
class ProgressText:
    """Turns a job's events into (text, fraction) for the progress bar; fraction None means "pulse"."""

    iterations: int
    _base: Optional[tuple[int, float]] = field(default=None, init=False)  # (iteration, elapsed) of the first report

    @staticmethod
    def contacting(endpoint: str) -> tuple[str, Optional[float]]:
        return f"{PREFIX}contacting the daemon at {endpoint}…", None

    @staticmethod
    def starting_daemon() -> tuple[str, Optional[float]]:
        return f"{PREFIX}starting the daemon (it loads VGG19 once, this takes a moment)…", None

    @staticmethod
    def sending() -> tuple[str, Optional[float]]:
        return f"{PREFIX}sending the images…", None

    @staticmethod
    def finishing() -> tuple[str, Optional[float]]:
        return f"{PREFIX}painting the result into the layer…", 1.0

    def waiting(self, state: str, position: int) -> tuple[str, Optional[float]]:
        """For ``accepted`` (state "queued" with position > 0, else "running") and ``heartbeat``."""
        if state == "queued" and position > 0:
            return f"{PREFIX}queued behind {plural(position, 'job')}", None
        return f"{PREFIX}starting…", None

    def progress(self, iteration: int, iterations: int, elapsed: float, scale: int = 1, scales: int = 1,
                 seconds_left: Optional[float] = None) -> tuple[str, float]:
        """For a ``progress`` report: the scale, the iteration and the time left (the daemon's, else measured)."""
        self.iterations = iterations or self.iterations
        text = PREFIX
        if scales > 1:
            text += f"scale {scale} of {scales} · "
        text += f"iteration {iteration}/{self.iterations}"
        from neural_style.protocol import duration  # a job runs: the protocol (and pyzmq) is there

        measured = self.seconds_left(iteration, elapsed)
        left = seconds_left if seconds_left is not None else measured
        if left is not None and iteration < self.iterations:
            text += f" · {duration(left, rough=True)} left"
        fraction = min(max(iteration / self.iterations, 0.0), 1.0) if self.iterations > 0 else 0.0
        return text, fraction

    def report(self, progress: ProgressReport) -> tuple[str, float]:
        """For the wire's ``progress`` message (or any report with its names)."""
        return self.progress(progress.iteration, progress.iterations, progress.elapsed, progress.scale,
                             progress.scales, progress.seconds_left)

    def seconds_left(self, iteration: int, elapsed: float) -> Optional[float]:
        if self._base is None or iteration < self._base[0]:
            self._base = (iteration, elapsed)
            return None
        done, spent = iteration - self._base[0], elapsed - self._base[1]
        if done <= 0 or spent <= 0:
            return None
        return (self.iterations - iteration) * spent / done
