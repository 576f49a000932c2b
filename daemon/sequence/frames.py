"""Frames in and out: a folder of images sorted by name, and video files through PyAV (FFmpeg).

A frame is an (H, W, 3) uint8 RGB array with a name: a folder's file name without its extension,
a video's ``frame_000001``… (1-based, so a folder written from a video sorts back in order). Frames
stream (one decoded at a time), so a 1080p sequence costs one frame's memory here.

Video out keeps the input's frame rate (an exact fraction) and copies the input's audio stream
unchanged where the output container can hold its codec (MP4 takes AAC and MP3, Matroska nearly
anything); otherwise the audio is left out with a warning. A frame file is written whole (a
temporary name renamed into place), so an interrupted run leaves only whole frames.
"""
from __future__ import annotations

import logging
import os
import re
from collections.abc import Iterator
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from types import TracebackType
from typing import Any

import av
import numpy as np
import numpy.typing as npt
from PIL import Image

log = logging.getLogger(__name__)

Rgb8 = npt.NDArray[np.uint8]

#: Extensions read as frames in a folder (other files are ignored).
IMAGE_EXTENSIONS: tuple[str, ...] = (".png", ".jpg", ".jpeg", ".webp", ".bmp", ".tif", ".tiff")
#: Extensions taken as video files, for input and output.
VIDEO_EXTENSIONS: tuple[str, ...] = (".mp4", ".m4v", ".mov", ".mkv", ".webm", ".avi")
#: The video codec written for each container (the first that this FFmpeg build has is used).
_VIDEO_CODECS: dict[str, tuple[str, ...]] = {
    ".webm": ("libvpx-vp9", "libvpx"),
    ".avi": ("mpeg4",),
}
_DEFAULT_CODECS: tuple[str, ...] = ("libx264", "h264", "mpeg4")


@dataclass(frozen=True)
class Frame:
    name: str
    image: Rgb8


@dataclass(frozen=True)
class VideoInfo:
    """What a video file holds: its frame rate (exact), frame count (from the container; may be 0 when the
    container does not say), size and whether it has an audio stream."""

    rate: Fraction
    frames: int
    width: int
    height: int
    has_audio: bool


def is_video(path: str | os.PathLike[str]) -> bool:
    """A video file by its extension (an output's kind is chosen the same way)."""
    return Path(path).suffix.lower() in VIDEO_EXTENSIONS


def frame_name(index: int) -> str:
    """The name of a video's frame ``index`` (0-based): ``frame_000001`` for the first."""
    return f"frame_{index + 1:06d}"


def _natural_key(name: str) -> tuple[tuple[int, int | str], ...]:
    """``frame2`` before ``frame10``: digit runs compare as numbers, the rest as text."""
    return tuple((0, int(part)) if part.isdigit() else (1, part) for part in re.split(r"(\d+)", name) if part)


def folder_frames(folder: str | os.PathLike[str]) -> list[Path]:
    """The image files of ``folder``, sorted by name (digit runs as numbers); hidden files left out."""
    root = Path(folder)
    files = [p for p in root.iterdir()
             if p.is_file() and p.suffix.lower() in IMAGE_EXTENSIONS and not p.name.startswith(".")]
    return sorted(files, key=lambda p: _natural_key(p.name))


def read_image(path: str | os.PathLike[str]) -> Rgb8:
    with Image.open(path) as image:
        return np.asarray(image.convert("RGB"), dtype=np.uint8).copy()


def read_folder(folder: str | os.PathLike[str]) -> Iterator[Frame]:
    """The folder's frames in order, each named by its file's stem."""
    for path in folder_frames(folder):
        yield Frame(path.stem, read_image(path))


def write_frame(folder: str | os.PathLike[str], name: str, image: Rgb8) -> Path:
    """``image`` as ``folder/name.png``, written whole: a temporary file renamed into place."""
    root = Path(folder)
    root.mkdir(parents=True, exist_ok=True)
    path = root / f"{name}.png"
    partial = root / f".{name}.png.partial"
    Image.fromarray(np.ascontiguousarray(image), "RGB").save(partial, format="PNG")
    os.replace(partial, path)
    return path


def video_info(path: str | os.PathLike[str]) -> VideoInfo:
    with av.open(os.fspath(path)) as container:
        stream = container.streams.video[0]
        rate = stream.average_rate or stream.guessed_rate or Fraction(25)
        return VideoInfo(rate=Fraction(rate), frames=int(stream.frames or 0), width=stream.codec_context.width,
                         height=stream.codec_context.height, has_audio=bool(container.streams.audio))


def read_video(path: str | os.PathLike[str]) -> Iterator[Frame]:
    """The video's frames in presentation order as RGB, named ``frame_000001``…"""
    with av.open(os.fspath(path)) as container:
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        for index, frame in enumerate(container.decode(stream)):
            yield Frame(frame_name(index), frame.to_ndarray(format="rgb24"))


def read_frames(source: str | os.PathLike[str]) -> Iterator[Frame]:
    """A folder's or a video file's frames."""
    return read_video(source) if is_video(source) else read_folder(source)


class VideoWriter:
    """Frames into a video file at a given rate, the audio of ``audio_from`` copied in at the end.

    A context manager: frames are encoded as they come (``write``); ``close`` flushes the encoder, copies
    the audio where the container can hold it, and finishes the file.
    """

    def __init__(self, path: str | os.PathLike[str], rate: Fraction | int, width: int, height: int, *,
                 audio_from: str | os.PathLike[str] | None = None, quality: int = 18) -> None:
        self.path = Path(path)
        if not is_video(self.path):
            raise ValueError(f"{self.path.name}: not a video file name ({', '.join(VIDEO_EXTENSIONS)})")
        self.container = av.open(os.fspath(self.path), mode="w")
        codec = _codec_for(self.path.suffix.lower())
        stream = self.container.add_stream(codec, rate=Fraction(rate))
        assert isinstance(stream, av.VideoStream)
        self.stream = stream
        # yuv420p wants even sides: the encoder is given the frame padded by one edge row or column if needed
        self.width, self.height = width, height
        self.stream.width, self.stream.height = width + width % 2, height + height % 2
        self.stream.pix_fmt = "yuv420p"
        if codec in ("libx264", "h264"):
            self.stream.options = {"crf": str(quality), "preset": "medium"}
        elif codec.startswith("libvpx"):
            self.stream.options = {"crf": str(quality + 12), "b": "0"}
        else:
            self.stream.bit_rate = 8_000_000
        self.written = 0
        # every stream is declared before the first packet (the container's header); the audio's packets come at close
        self.audio_source, self.audio_in, self.audio_out = self._audio_stream(audio_from)

    def write(self, image: Rgb8) -> None:
        if image.shape[:2] != (self.height, self.width):
            raise ValueError(f"frame of {image.shape[1]}×{image.shape[0]} in a {self.width}×{self.height} video")
        padded = np.pad(image, ((0, self.height % 2), (0, self.width % 2), (0, 0)), mode="edge")
        frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(padded), format="rgb24")
        for packet in self.stream.encode(frame):
            self.container.mux(packet)
        self.written += 1

    def close(self) -> None:
        for packet in self.stream.encode(None):
            self.container.mux(packet)
        if self.audio_source is not None:
            for packet in self.audio_source.demux(self.audio_in):
                if packet.dts is None:  # the demuxer's flush packet
                    continue
                packet.stream = self.audio_out
                self.container.mux(packet)
            self.audio_source.close()
        self.container.close()

    def _audio_stream(self, source: str | os.PathLike[str] | None) -> tuple[Any, Any, Any]:
        """(the opened source, its first audio stream, this file's copy of it), or Nones: none there, or a
        codec this container cannot hold (then a warning). The packets are copied, not re-encoded."""
        if source is None:
            return None, None, None
        original = av.open(os.fspath(source))
        if not original.streams.audio:
            original.close()
            return None, None, None
        audio = original.streams.audio[0]
        try:
            out = self.container.add_stream_from_template(audio)
        except (ValueError, av.FFmpegError) as error:
            log.warning("%s: the audio (%s) is left out: %s", self.path.name, audio.codec_context.name, error)
            original.close()
            return None, None, None
        return original, audio, out

    def __enter__(self) -> VideoWriter:
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None,
                 trace: TracebackType | None) -> None:
        self.close()


def _codec_for(extension: str) -> str:
    """The first codec of the container's list that this FFmpeg can encode."""
    for name in _VIDEO_CODECS.get(extension, _DEFAULT_CODECS):
        try:
            av.codec.Codec(name, "w")
        except (ValueError, av.FFmpegError):
            continue
        return name
    raise ValueError(f"no video encoder for {extension} in this FFmpeg build")


__all__ = [
    "IMAGE_EXTENSIONS",
    "VIDEO_EXTENSIONS",
    "Frame",
    "VideoInfo",
    "is_video",
    "frame_name",
    "folder_frames",
    "read_image",
    "read_folder",
    "write_frame",
    "video_info",
    "read_video",
    "read_frames",
    "VideoWriter",
]
