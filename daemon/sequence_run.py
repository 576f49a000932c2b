"""``neural-style video``'s loop: frames in, each stylized from the previous one, whole PNG frames out, resumable.

Why a module of its own: the loop is the same whether a frame is stylized through the daemon
(``remote.DaemonFrames``) or in this process (``LocalFrames``); both are a ``FrameStylizer``, a callable
from (content frame, previous frame or None, progress callback) to the stylized frame.

Resume: the frames go to a folder (OUTPUT itself, or for a video OUTPUT a hidden ``.NAME.frames`` folder
beside it, encoded into the video at the end and then removed). A frame whose PNG is already there is
kept, and the next frame starts from it: the state of a run is its files. Each PNG is written whole
(``sequence.frames.write_frame``), so Ctrl+C leaves only whole frames.
"""
from __future__ import annotations

import logging
import shutil
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from .local_errors import ImageError
from .progress_bar import FrameProgress
from .sequence.frames import (
    Frame,
    Rgb8,
    VideoWriter,
    folder_frames,
    is_video,
    read_folder,
    read_image,
    read_video,
    video_info,
    write_frame,
)

log = logging.getLogger("neural_style.video")

#: Frame rate of a video written from a folder of frames, unless ``--fps`` says otherwise.
DEFAULT_RATE = Fraction(25)


class SequenceError(ImageError):
    """A sequence that cannot be stylized as given (no frames, frames of different sizes…): exit 2."""


@dataclass(frozen=True)
class PreviousFrame:
    """Frame t−1: its content and its stylized result (as written), what frame t is stylized from."""

    content: Rgb8
    stylized: Rgb8


class FrameStylizer(Protocol):
    def __call__(self, content: Rgb8, previous: PreviousFrame | None,
                 on_progress: Callable[[Any], None]) -> Rgb8: ...


@dataclass(frozen=True)
class SequenceSource:
    """What a run reads: its frames (streamed), their count (0 when a container does not say) and rate."""

    path: Path
    count: int
    rate: Fraction | None  # a video's; None for a folder

    def frames(self) -> Iterator[Frame]:
        return read_video(self.path) if is_video(self.path) else read_folder(self.path)


def open_source(path: Path) -> SequenceSource:
    """A folder of frames (sorted by name) or a video file; SequenceError when it holds no frames."""
    if not path.exists():
        raise SequenceError(f"no such file or folder: {path}")
    if path.is_dir():
        files = folder_frames(path)
        if not files:
            raise SequenceError(f"{path} holds no image files (frames are .png, .jpg, .webp… sorted by name)")
        _check_one_size(files)
        return SequenceSource(path, len(files), None)
    if not is_video(path):
        raise SequenceError(f"{path} is neither a folder of frames nor a video file (.mp4, .mkv, .webm, .mov…)")
    try:
        info = video_info(path)
    except Exception as exc:  # PyAV's errors for a file FFmpeg cannot read
        raise SequenceError(f"{path} is not a readable video: {exc}") from None
    return SequenceSource(path, info.frames, info.rate)


def _check_one_size(files: Sequence[Path]) -> None:
    """Every frame file of one size, from the headers alone (before any work; a video's frames are by
    construction), else SequenceError naming the first that differs."""
    from PIL import Image

    sizes: list[tuple[int, int]] = []
    for file in files:
        try:
            with Image.open(file) as image:
                sizes.append(image.size)
        except Exception as exc:  # Pillow raises many types for a broken file
            raise SequenceError(f"{file} is not an image PIL can read ({exc})") from None
        if sizes[-1] != sizes[0]:
            raise SequenceError(f"frame {file.name} is {sizes[-1][0]}x{sizes[-1][1]} but {files[0].name} is "
                                f"{sizes[0][0]}x{sizes[0][1]}: a sequence's frames have one size")


def frames_folder(output: Path) -> Path:
    """Where the stylized frames go: OUTPUT itself, or for a video the hidden folder beside it."""
    return output.parent / f".{output.name}.frames" if is_video(output) else output


def run_sequence(source: SequenceSource, output: Path, stylize_frame: FrameStylizer, progress: FrameProgress, *,
                 temporal: bool = True, rate: Fraction | None = None) -> int:
    """Stylize every frame of ``source`` into ``output``; returns how many frames this run stylized.

    ``temporal`` False: each frame independently (``--temporal-weight 0``). A video OUTPUT is encoded
    from the frames once all are there, at ``rate`` (default the input video's, else 25 fps), the input's
    audio copied where the container allows.
    """
    folder = frames_folder(output)
    previous: PreviousFrame | None = None
    size: tuple[int, int] | None = None
    kept = done = 0
    names: list[str] = []
    for index, frame in enumerate(source.frames()):
        names.append(frame.name)
        if size is None:
            size = frame.image.shape[:2]
        elif frame.image.shape[:2] != size:
            raise SequenceError(f"frame {frame.name} is {frame.image.shape[1]}x{frame.image.shape[0]} but the "
                                f"sequence's frames are {size[1]}x{size[0]}: a sequence's frames have one size")
        written = folder / f"{frame.name}.png"
        if written.is_file():  # resume: kept as it is, and the next frame starts from it
            previous = PreviousFrame(frame.image, read_image(written))
            kept += 1
            continue
        if kept and not done:
            log.info("resuming: %d frame(s) already in %s kept", kept, folder)
        progress.start(index, frame.name)
        stylized = stylize_frame(frame.image, previous if temporal else None, progress.report)
        write_frame(folder, frame.name, stylized)
        progress.finish()
        previous = PreviousFrame(frame.image, stylized)
        done += 1
    progress.close()
    if not names:
        raise SequenceError(f"{source.path} holds no frames")
    if is_video(output):
        _encode(folder, names, output, rate or source.rate or DEFAULT_RATE,
                source.path if is_video(source.path) else None)
        shutil.rmtree(folder)
    log.info("wrote %s: %d frame(s) stylized, %d kept from an earlier run", output, done, kept)
    return done


def _encode(folder: Path, names: Sequence[str], output: Path, rate: Fraction, audio_from: Path | None) -> None:
    """The frames of ``folder`` in order into the video ``output`` (written under a temporary name first)."""
    first = read_image(folder / f"{names[0]}.png")
    partial = output.with_name(f".{output.stem}.partial{output.suffix}")
    with VideoWriter(partial, rate, first.shape[1], first.shape[0], audio_from=audio_from) as writer:
        for name in names:
            writer.write(read_image(folder / f"{name}.png"))
    partial.replace(output)


class LocalFrames:
    """Frames stylized in this process (``--local``): one model, one style-target cache for the whole run."""

    def __init__(self, model: Any, styles: Sequence[Any], params: Any, style_blend: Sequence[float] | None,
                 flow: str) -> None:
        self.model, self.styles, self.params, self.blend, self.flow = model, list(styles), params, style_blend, flow
        self.cache: dict[Any, Any] = {}  # the style's Gram targets, computed once for the sequence
        self.planned = False

    def _plan(self, plan: Any) -> None:
        """Every frame has the same plan: logged for the first one only."""
        for line in plan.describe():
            log.log(logging.DEBUG if self.planned else logging.INFO, "plan: %s", line)
        self.planned = True

    def __call__(self, content: Rgb8, previous: PreviousFrame | None, on_progress: Callable[[Any], None]) -> Rgb8:
        import torch

        from .engine import stylize
        from .image_files import tensor_to_array
        from .temporal_inputs import temporal_inputs

        def tensor(image: Rgb8) -> torch.Tensor:
            return torch.from_numpy(np.ascontiguousarray(image)).permute(2, 0, 1).float() / 255.0

        current = tensor(content)
        start, targets = (temporal_inputs(current, tensor(previous.content), tensor(previous.stylized), self.params,
                                          self.flow) if previous is not None else (None, ()))
        result = stylize(self.model, current, self.styles, self.params, style_blend=self.blend,
                         on_progress=on_progress, target_cache=self.cache, start_image=start, temporal=targets,
                         on_plan=self._plan)
        return np.asarray(tensor_to_array(result.image)[..., :3])


__all__ = ["SequenceError", "PreviousFrame", "FrameStylizer", "SequenceSource", "open_source", "frames_folder",
           "run_sequence", "LocalFrames", "DEFAULT_RATE"]
