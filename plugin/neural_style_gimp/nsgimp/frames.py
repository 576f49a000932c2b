"""An animation's frames for Filters → Animation → Neural Style (frames)…: which layer is which frame, what
its name says, what each frame's request carries of the one before, and the progress bar's words.

No GIMP here (tests/test_plugin_frames.py).  GIMP's convention (its Playback filter and its GIF and
WebP export): every top-level layer is a frame, the *bottom* layer first; a name such as
``Frame 3 (100ms) (combine)`` carries the frame's delay and how it is drawn: ``(replace)`` alone,
``(combine)`` (or no tag) over the frame shown before it.  The frame a viewer sees is what is
stylized, so a ``(combine)`` frame is sent as its composite; each result is that whole frame, so its
name gets ``(replace)`` (the delay and the rest of the name kept).
"""
from __future__ import annotations

import re
import time
from collections.abc import Collection, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Optional

from .progress import PREFIX, ProgressText
from .settings import megapixels

if TYPE_CHECKING:  # the menu entry imports this module before it knows that pyzmq is there
    from neural_style.protocol import ImageData, Previous

PROCEDURE_NAME = "plug-in-neural-style-frames"
WORKER_NAME = "plug-in-neural-style-frames-job"  # the frames under GIMP's progress (see neural_style_gimp.py)
MENU_PATH = "<Image>/Filters/Animation"
MENU_LABEL = "Neural Style (frames)…"
RESULT_SUFFIX = "-neural-style"  # the new image's file name: the animation's, with this

COMBINE, REPLACE = "combine", "replace"
_DELAY = re.compile(r"\(\s*(\d+)\s*ms\s*\)", re.IGNORECASE)
_DISPOSAL = re.compile(r"\(\s*(combine|replace)\s*\)", re.IGNORECASE)


@dataclass(frozen=True)
class FrameTags:
    """What a layer's name says: the delay in milliseconds and the disposal, None where it says nothing."""

    delay_ms: Optional[int]
    disposal: Optional[str]


def parse_frame_name(name: str) -> FrameTags:
    """The tags GIMP's GIF/WebP export and Playback read in a layer's name: ``(100ms)``, ``(combine)``/``(replace)``."""
    delay = _DELAY.search(name)
    disposal = _DISPOSAL.search(name)
    return FrameTags(int(delay.group(1)) if delay else None, disposal.group(1).lower() if disposal else None)


def frame_order(layer_count: int) -> list[int]:
    """Positions in GIMP's layer list (top first, ``image.get_layers()``) in frame order: the bottom layer first."""
    return list(range(layer_count - 1, -1, -1))


def draws_alone(names_in_frame_order: list[str], frame: int) -> bool:
    """Whether frame ``frame`` (0-based, frame order) is its own layer alone: the first frame, or a ``(replace)``
    one; any other is drawn over the frame shown before it (``(combine)``, GIMP's reading of an untagged frame)."""
    return frame == 0 or parse_frame_name(names_in_frame_order[frame]).disposal == REPLACE


def result_name(name: str) -> str:
    """A stylized frame's layer name: the source frame's, its disposal tag ``(replace)`` (a result is the whole
    frame), so that GIF/WebP export keep its delay and show it alone."""
    if _DISPOSAL.search(name):
        return _DISPOSAL.sub(f"({REPLACE})", name, count=1)
    return f"{name} ({REPLACE})"


def result_file_name(animation_file_name: str) -> str:
    """The new image's file name (what Save and Export As offer) from the animation's, ``walk.gif`` →
    ``walk-neural-style.xcf``, beside it."""
    stem = animation_file_name.rsplit(".", 1)[0] if "." in animation_file_name.lstrip(".") else animation_file_name
    return f"{stem}{RESULT_SUFFIX}.xcf"


def size_note(frames: int, width: int, height: int) -> str:
    """The frames dialog's line about what will be computed: every frame at the animation's canvas size, each
    frame a run of its own (what the estimate beside it counts)."""
    plural = "s" if frames != 1 else ""
    return (f"The animation is {frames} frame{plural} of {width} × {height} px "
            f"({frames} × {megapixels(width * height)} = {megapixels(frames * width * height)}).")


def missing_frame(frame_ids: Sequence[int], present_ids: Collection[int], first: int = 0) -> Optional[int]:
    """The first frame from ``first`` on (0-based, frame order) whose layer (its ID, as the run began) is no longer
    one of the animation's layers (``present_ids``: deleted, or moved into a group), or None.

    Why: the animation is not locked during a run (locking would add undo steps to an image the run only
    reads), so a frame the user deletes must end the run with one clear message, not a failing GIMP call."""
    present = set(present_ids)
    return next((index for index in range(first, len(frame_ids)) if frame_ids[index] not in present), None)


def frame_gone_text(index: int, frames: int, name: str) -> str:
    """The message of a run stopped because frame ``index`` (0-based) left the animation."""
    return (f"{PREFIX}frame {index + 1} of {frames} ({name!r}) was deleted from the animation during the run, "
            "so the run stopped and its unfinished new image was closed. Run it again on the animation as it is now.")


RESULT_LAYER_GONE = (f"{PREFIX}a layer of the new image was deleted during the run, so the run stopped and the "
                     "unfinished image was closed. Leave the new image's layers alone until the run ends.")


@dataclass
class FrameChain:
    """The previous-frame bookkeeping: each frame after the first is sent with the one before it (its content as
    sent and its stylized result) in the request's ``previous``, so the daemon keeps nothing between frames."""

    flow: str = "dis"
    _content: Optional[ImageData] = field(default=None, init=False)
    _stylized: Optional[ImageData] = field(default=None, init=False)

    def previous(self) -> Optional[Previous]:
        """What the next frame's request carries: None for the first frame."""
        if self._content is None or self._stylized is None:
            return None
        from neural_style.protocol import Previous

        return Previous(self._content, self._stylized, self.flow)

    def advance(self, content: ImageData, stylized: ImageData) -> None:
        """Frame done: ``content`` as it was sent and its ``stylized`` result become the next frame's previous."""
        self._content, self._stylized = content, stylized


@dataclass
class SequenceClock:
    """How long the frames of this run took: the progress bar's time left for the whole sequence."""

    frames: int
    done: list[float] = field(default_factory=list)  # seconds each finished frame took
    started: float = field(default_factory=time.monotonic)  # the current frame's start

    def start_frame(self) -> None:
        self.started = time.monotonic()

    def finish_frame(self) -> None:
        self.done.append(time.monotonic() - self.started)

    def seconds_left(self, frame_left: Optional[float], now: Optional[float] = None) -> Optional[float]:
        """The current frame's ``frame_left`` plus the frames after it: the mean finished frame each, or before one
        finished, the current frame's own length (its time so far plus ``frame_left``)."""
        if frame_left is None:
            return None
        after = max(0, self.frames - len(self.done) - 1)
        if self.done:
            each = sum(self.done) / len(self.done)
        else:
            each = ((now if now is not None else time.monotonic()) - self.started) + frame_left
        return frame_left + after * each


@dataclass
class FrameProgressText(ProgressText):
    """``ProgressText`` for frame i of n: "Neural Style: frame 2 of 6 · iteration 20/50 · about 1 min left", the time
    left being the sequence's, and the bar's fraction the sequence's too."""

    clock: SequenceClock = field(default_factory=lambda: SequenceClock(1))

    @property
    def frame(self) -> int:  # 1-based, the one being stylized
        return len(self.clock.done) + 1

    def waiting(self, state: str, position: int) -> tuple[str, Optional[float]]:
        text, _ = super().waiting(state, position)
        return self._prefixed(text), self._fraction(0.0)

    def progress(self, iteration: int, iterations: int, elapsed: float, scale: int = 1, scales: int = 1,
                 seconds_left: Optional[float] = None) -> tuple[str, float]:
        # the frame's time left: the daemon's, else as ProgressText measures it (calling it again is harmless)
        frame_left = seconds_left if seconds_left is not None else self.seconds_left(iteration, elapsed)
        text, fraction = super().progress(iteration, iterations, elapsed, scale, scales,
                                          self.clock.seconds_left(frame_left) if frame_left is not None else None)
        return self._prefixed(text), self._fraction(fraction)

    def _prefixed(self, text: str) -> str:
        return f"{PREFIX}frame {self.frame} of {self.clock.frames} · {text[len(PREFIX):]}"

    def _fraction(self, within: float) -> float:
        return min(1.0, (self.frame - 1 + within) / max(1, self.clock.frames))
