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

import dataclasses
import logging
import shutil
import sys
import threading
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from .local_errors import ImageError
from .progress_bar import FrameProgress
from .sequence.chunks import DEFAULT_OVERLAP, Chunk, plan_chunks
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


@dataclass(frozen=True)
class EarlierFrame:
    """A frame ``offset`` (≥ 2) back from frame t, for the long-term terms (``--long-term``)."""

    content: Rgb8
    stylized: Rgb8
    offset: int


class FrameStylizer(Protocol):
    """Frame t from its content and frame t−1 (None: the first, or independent frames). ``stop``, when given
    and set (another chunk failed, Ctrl+C), makes it abandon the frame at its next event (``Stopped``).
    ``earlier``: the long-term frames, offsets increasing (passed only by a run with ``long_term``)."""

    def __call__(self, content: Rgb8, previous: PreviousFrame | None, on_progress: Callable[[Any], None], *,
                 stop: threading.Event | None = None, earlier: Sequence[EarlierFrame] = ()) -> Rgb8: ...


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


def run_sequence(source: SequenceSource, output: Path, stylize_frame: FrameStylizer | Sequence[FrameStylizer],
                 progress: FrameProgress, *, temporal: bool = True, rate: Fraction | None = None,
                 overlap: int = DEFAULT_OVERLAP, long_term: Sequence[int] = ()) -> int:
    """Stylize every frame of ``source`` into ``output``; returns how many frames this run stylized.

    ``temporal`` False: each frame independently (``--temporal-weight 0``). Several stylizers (a daemon that
    runs several jobs at once): the frames are cut into one chunk per stylizer (``plan_chunks``), run at the
    same time, each starting ``overlap`` frames early. A video OUTPUT is encoded from the frames once all are
    there, at ``rate`` (default the input video's, else 25 fps), the input's audio copied where the container
    allows. ``long_term``: offsets (≥ 2, increasing) of the earlier frames each frame is also held to, where
    its chunk has them (read back from the written frames on a resume, as frame t−1 is).
    """
    stylizers = [stylize_frame] if callable(stylize_frame) else list(stylize_frame)
    folder = frames_folder(output)
    names: dict[int, str] = {}
    if len(stylizers) == 1:
        kept, done = _run_chunk(source, folder, Chunk(0, sys.maxsize, 0), stylizers[0], _SharedProgress(progress),
                                temporal, names, None, long_term)
    else:
        from .concurrent_jobs import run_concurrently

        count = source.count or sum(1 for _ in source.frames())  # a container that does not say: counted
        chunks = plan_chunks(count, len(stylizers), overlap if temporal else 0)
        chunks[-1] = dataclasses.replace(chunks[-1], end=sys.maxsize)  # to the end, whatever a container said
        log.info("%d frames in %d chunks (%s), each starting %d frame(s) early", count, len(chunks),
                 ", ".join(f"{c.begin}-{min(c.end, count) - 1}" for c in chunks), chunks[-1].lead)
        shared = _SharedProgress(progress, len(chunks))
        counts = run_concurrently([_chunk_task(source, folder, chunk, stylizer, shared, temporal, names, long_term)
                                   for chunk, stylizer in zip(chunks, stylizers)])
        kept, done = sum(k for k, _ in counts), sum(d for _, d in counts)
    progress.close()
    if not names:
        raise SequenceError(f"{source.path} holds no frames")
    order = [names[i] for i in sorted(names)]
    if is_video(output):
        _encode(folder, order, output, rate or source.rate or DEFAULT_RATE,
                source.path if is_video(source.path) else None)
        shutil.rmtree(folder)
    log.info("wrote %s: %d frame(s) stylized, %d kept from an earlier run", output, done, kept)
    return done


def _chunk_task(source: SequenceSource, folder: Path, chunk: Chunk, stylizer: FrameStylizer,
                progress: _SharedProgress, temporal: bool, names: dict[int, str],
                long_term: Sequence[int]) -> Callable[[threading.Event], tuple[int, int]]:
    return lambda stop: _run_chunk(source, folder, chunk, stylizer, progress, temporal, names, stop, long_term)


def _earlier(history: deque[PreviousFrame], long_term: Sequence[int]) -> list[EarlierFrame]:
    """The long-term frames ``history`` (frame t−1 last) holds, offsets increasing."""
    return [EarlierFrame(history[-k].content, history[-k].stylized, k) for k in long_term if k <= len(history)]


def _run_chunk(source: SequenceSource, folder: Path, chunk: Chunk, stylize_frame: FrameStylizer,
               progress: _SharedProgress, temporal: bool, names: dict[int, str],
               stop: threading.Event | None, long_term: Sequence[int] = ()) -> tuple[int, int]:
    """One chunk's frames in order, each from the one before; (frames kept, frames stylized).

    A frame whose PNG is already there is kept and the next starts from it (resume), a lead frame's too
    (the chunk before wrote it in an earlier run); a lead frame not there is stylized and not written.
    """
    previous: PreviousFrame | None = None
    history: deque[PreviousFrame] = deque(maxlen=max(long_term, default=1))  # frame t−1 last
    size: tuple[int, int] | None = None
    kept = done = 0
    resumed = False
    for index, frame in enumerate(source.frames()):
        if index < chunk.begin - chunk.lead:
            continue
        if index >= chunk.end:
            break
        if stop is not None and stop.is_set():
            from .concurrent_jobs import Stopped

            raise Stopped("the run is stopping")
        lead = index < chunk.begin
        if not lead:
            names[index] = frame.name
        if size is None:
            size = frame.image.shape[:2]
        elif frame.image.shape[:2] != size:
            raise SequenceError(f"frame {frame.name} is {frame.image.shape[1]}x{frame.image.shape[0]} but the "
                                f"sequence's frames are {size[1]}x{size[0]}: a sequence's frames have one size")
        written = folder / f"{frame.name}.png"
        if written.is_file():  # resume: kept as it is, and the next frame starts from it
            previous = PreviousFrame(frame.image, read_image(written))
            history.append(previous)
            if not lead:
                kept += 1
                progress.kept()
            continue
        if kept and not done and not resumed:
            log.info("resuming: %d frame(s) already in %s kept", kept, folder)
            resumed = True
        progress.start(index, frame.name)
        if temporal and long_term:
            stylized = stylize_frame(frame.image, previous, progress.report, stop=stop,
                                     earlier=_earlier(history, long_term))
        else:
            stylized = stylize_frame(frame.image, previous if temporal else None, progress.report, stop=stop)
        if not lead:
            write_frame(folder, frame.name, stylized)
            progress.finish()
            done += 1
        previous = PreviousFrame(frame.image, stylized)
        history.append(previous)
    return kept, done


class _SharedProgress:
    """The run's one ``FrameProgress``, fed by every chunk's thread in turn (it draws the latest report).

    With chunks, "frame i of n" counts the frames finished or kept (the chunks' own indices jump about)
    and the time left divides the frames still to do by the chunks running at once."""

    def __init__(self, progress: FrameProgress, chunks: int = 1) -> None:
        self._progress = progress
        self._lock = threading.Lock()
        self._chunks = chunks
        self._finished = 0
        progress.parallel = chunks

    def start(self, index: int, name: str) -> None:
        with self._lock:
            self._progress.start(index if self._chunks == 1 else self._finished, name)

    def report(self, report: Any) -> None:
        with self._lock:
            self._progress.report(report)

    def finish(self) -> None:
        with self._lock:
            self._finished += 1
            self._progress.finish()

    def kept(self) -> None:
        """A frame already written (resume) counts as finished, not as one this run stylized."""
        with self._lock:
            self._finished += 1


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

    def __call__(self, content: Rgb8, previous: PreviousFrame | None, on_progress: Callable[[Any], None], *,
                 stop: threading.Event | None = None, earlier: Sequence[EarlierFrame] = ()) -> Rgb8:
        import torch

        from .engine import stylize
        from .image_files import tensor_to_array
        from .temporal_inputs import temporal_inputs

        def tensor(image: Rgb8) -> torch.Tensor:
            return torch.from_numpy(np.ascontiguousarray(image)).permute(2, 0, 1).float() / 255.0

        def report(progress: Any) -> None:
            if stop is not None and stop.is_set():
                from .concurrent_jobs import Stopped

                raise Stopped("the run is stopping")
            on_progress(progress)

        current = tensor(content)
        far = [(tensor(frame.content), tensor(frame.stylized)) for frame in earlier]
        start, targets = (temporal_inputs(current, tensor(previous.content), tensor(previous.stylized), self.params,
                                          self.flow, far) if previous is not None else (None, ()))
        result = stylize(self.model, current, self.styles, self.params, style_blend=self.blend,
                         on_progress=report, target_cache=self.cache, start_image=start, temporal=targets,
                         on_plan=self._plan)
        return np.asarray(tensor_to_array(result.image)[..., :3])


__all__ = ["SequenceError", "PreviousFrame", "EarlierFrame", "FrameStylizer", "SequenceSource", "open_source",
           "frames_folder", "run_sequence", "LocalFrames", "DEFAULT_RATE"]
