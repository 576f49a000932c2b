"""Frame I/O round trips on real files: frame folders (PNG, sorted by name) and tiny videos through PyAV."""
from __future__ import annotations

import logging
import math
from fractions import Fraction

import av
import numpy as np
import pytest

from neural_style.daemon.sequence import frames

HEIGHT, WIDTH = 48, 64


def _frames(count: int, height: int = HEIGHT, width: int = WIDTH) -> list[np.ndarray]:
    """Smooth, distinct frames (a moving gradient: what a lossy codec keeps well)."""
    y, x = np.mgrid[0:height, 0:width].astype(np.float32)
    out = []
    for t in range(count):
        r = 128 + 100 * np.sin((x + 4 * t) / 9.0)
        g = 128 + 100 * np.cos((y - 3 * t) / 7.0)
        b = np.full_like(x, 40.0 + 15 * t)
        out.append(np.stack([r, g, b], axis=-1).clip(0, 255).astype(np.uint8))
    return out


def _source_video(path, count: int, rate: Fraction, *, audio_seconds: float = 0.0) -> None:
    """An H.264 MP4 made with PyAV itself, with an AAC tone when ``audio_seconds`` > 0."""
    with av.open(str(path), "w") as out:
        video = out.add_stream("libx264", rate=rate)
        video.width, video.height, video.pix_fmt = WIDTH, HEIGHT, "yuv420p"
        audio = out.add_stream("aac", rate=44100) if audio_seconds else None
        for image in _frames(count):
            for packet in video.encode(av.VideoFrame.from_ndarray(image, format="rgb24")):
                out.mux(packet)
        if audio is not None:
            samples = int(44100 * audio_seconds)
            tone = (0.3 * np.sin(2 * math.pi * 440 * np.arange(samples) / 44100)).astype(np.float32)[None]
            frame = av.AudioFrame.from_ndarray(tone, format="fltp", layout="mono")
            frame.sample_rate, frame.pts = 44100, 0
            for packet in [*audio.encode(frame), *audio.encode(None)]:
                out.mux(packet)
        for packet in video.encode(None):
            out.mux(packet)


def _audio_packets(path) -> int:
    with av.open(str(path)) as container:
        if not container.streams.audio:
            return 0
        return sum(1 for p in container.demux(container.streams.audio[0]) if p.dts is not None)


def test_a_folder_round_trips_in_name_order(tmp_path):
    images = _frames(12)
    names = [f"shot{i}" for i in range(12)]  # shot10 after shot9, not after shot1
    for name, image in reversed(list(zip(names, images))):
        frames.write_frame(tmp_path, name, image)
    (tmp_path / "notes.txt").write_text("not a frame")
    (tmp_path / ".hidden.png").write_bytes(b"")
    read = list(frames.read_frames(tmp_path))
    assert [f.name for f in read] == names
    for frame, image in zip(read, images):
        assert frame.image.dtype == np.uint8 and np.array_equal(frame.image, image)  # PNG: lossless


def test_a_frame_is_written_whole(tmp_path):
    path = frames.write_frame(tmp_path, "frame_000001", _frames(1)[0])
    assert path == tmp_path / "frame_000001.png"
    assert [p.name for p in tmp_path.iterdir()] == ["frame_000001.png"]  # no partial file left


def test_folder_frames_read_as_rgb(tmp_path):
    from PIL import Image

    Image.fromarray(np.full((4, 5), 200, np.uint8), "L").save(tmp_path / "a.png")
    Image.fromarray(np.full((4, 5, 4), 90, np.uint8), "RGBA").save(tmp_path / "b.png")
    read = list(frames.read_folder(tmp_path))
    assert [f.image.shape for f in read] == [(4, 5, 3), (4, 5, 3)]


@pytest.mark.parametrize("extension", [".mp4", ".mkv", ".webm"])
def test_a_video_round_trips_with_its_frame_count_and_rate(tmp_path, extension):
    images = _frames(10)
    rate = Fraction(30000, 1001)  # NTSC's 29.97: the rate is kept exactly, not rounded
    path = tmp_path / f"out{extension}"
    with frames.VideoWriter(path, rate, WIDTH, HEIGHT) as writer:
        for image in images:
            writer.write(image)
    info = frames.video_info(path)
    assert info.rate == rate and (info.width, info.height) == (WIDTH, HEIGHT) and not info.has_audio
    read = list(frames.read_frames(path))
    assert [f.name for f in read] == [frames.frame_name(i) for i in range(10)] and read[0].name == "frame_000001"
    for frame, image in zip(read, images):
        assert frame.image.shape == image.shape
        assert np.abs(frame.image.astype(int) - image.astype(int)).mean() < 6  # lossy, but the same picture


def test_a_video_read_into_a_folder_and_written_back_keeps_the_rate_and_audio(tmp_path):
    source = tmp_path / "source.mp4"
    _source_video(source, 12, Fraction(24), audio_seconds=0.5)
    assert frames.video_info(source).has_audio
    folder = tmp_path / "frames"
    for frame in frames.read_frames(source):
        frames.write_frame(folder, frame.name, frame.image)
    assert len(frames.folder_frames(folder)) == 12
    info = frames.video_info(source)
    out = tmp_path / "out.mp4"
    with frames.VideoWriter(out, info.rate, info.width, info.height, audio_from=source) as writer:
        for frame in frames.read_folder(folder):
            writer.write(frame.image)
    written = frames.video_info(out)
    assert (written.rate, written.frames, written.has_audio) == (Fraction(24), 12, True)
    assert _audio_packets(out) == _audio_packets(source) > 10  # copied packet for packet


def test_audio_a_container_cannot_hold_is_left_out_with_a_warning(tmp_path, caplog):
    source = tmp_path / "source.mp4"
    _source_video(source, 4, Fraction(25), audio_seconds=0.2)
    out = tmp_path / "out.webm"  # WebM holds Opus and Vorbis, not AAC
    with caplog.at_level(logging.WARNING, logger=frames.__name__), \
            frames.VideoWriter(out, Fraction(25), WIDTH, HEIGHT, audio_from=source) as writer:
        for image in _frames(4):
            writer.write(image)
    assert "audio (aac) is left out" in caplog.text
    info = frames.video_info(out)
    assert not info.has_audio and len(list(frames.read_video(out))) == 4


def test_odd_sizes_are_padded_to_even_for_yuv420(tmp_path):
    images = _frames(3, 31, 45)
    with frames.VideoWriter(tmp_path / "odd.mp4", 10, 45, 31) as writer:
        for image in images:
            writer.write(image)
    read = list(frames.read_video(tmp_path / "odd.mp4"))
    assert read[0].image.shape == (32, 46, 3)
    assert np.abs(read[0].image[:31, :45].astype(int) - images[0].astype(int)).mean() < 8


def test_wrong_sizes_and_names_are_refused(tmp_path):
    with pytest.raises(ValueError, match="not a video file name"):
        frames.VideoWriter(tmp_path / "out.png", 24, WIDTH, HEIGHT)
    with frames.VideoWriter(tmp_path / "out.mp4", 24, WIDTH, HEIGHT) as writer:
        with pytest.raises(ValueError, match="frame of 65×48 in a 64×48 video"):
            writer.write(np.zeros((48, 65, 3), np.uint8))
        writer.write(_frames(1)[0])
    assert frames.is_video(tmp_path / "OUT.MKV") and not frames.is_video(tmp_path / "frames")
