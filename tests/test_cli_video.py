"""``neural-style video`` as a user runs it: a folder of tiny frames and a tiny video file, through the
daemon and ``--local``, resume after an interruption, and refusals (one line, exit 2)."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest
from server_fixtures import shared_daemon
from test_sequence_frames import _audio_packets, _source_video

from neural_style.daemon.sequence.frames import read_image, read_video, video_info, write_frame
from neural_style.daemon.sequence.synthetic import pan_with_occluder

FAST = ("--weights", "random", "--size", "48", "--iterations", "3", "--progress-every", "1",
        "--content-layers", "relu2_1", "--style-layers", "relu1_1,relu2_1")


def cli(*args: str, timeout: float = 180) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "neural_style.daemon.cli", *args], capture_output=True, text=True,
                          timeout=timeout, env=dict(os.environ, OMP_NUM_THREADS="2"))


@pytest.fixture(scope="module")
def inputs(tmp_path_factory) -> tuple[Path, Path, Path]:
    """A folder of 4 tiny frames (a pan with a moving square), a 4-frame 12 fps MP4 with audio, and a style."""
    root = tmp_path_factory.mktemp("video-inputs")
    rng = np.random.default_rng(3)
    photo = np.repeat(np.repeat(rng.random((24, 20, 3), dtype=np.float32), 4, 0), 4, 1)
    sequence = pan_with_occluder(photo, rng.random((16, 16, 3), dtype=np.float32), 4, 32, 48, side=10)
    frames = [(f * 255 + 0.5).astype(np.uint8) for f in sequence.frames]
    for i, frame in enumerate(frames):
        write_frame(root / "frames", f"shot{i + 1}", frame)  # shot1 … shot4: sorted by number, not text
    _source_video(root / "in.mp4", 4, Fraction(12), audio_seconds=0.5)  # 64×48 H.264 with an AAC tone
    write_frame(root, "style", (rng.random((24, 24, 3)) * 255).astype(np.uint8))
    return root / "frames", root / "in.mp4", root / "style.png"


def _pngs(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


def test_a_folder_through_the_daemon_gives_a_folder_of_frames(tmp_path_factory, inputs, tmp_path) -> None:
    daemon = shared_daemon(tmp_path_factory)
    frames, _video, style = inputs
    out = tmp_path / "out"
    run = cli("video", str(frames), str(style), "-o", str(out), "--endpoint", daemon.endpoint, "--no-autostart",
              *FAST)
    assert run.returncode == 0, run.stderr
    assert _pngs(out) == ["shot1.png", "shot2.png", "shot3.png", "shot4.png"]  # under the input names
    assert read_image(out / "shot1.png").shape == (32, 48, 3)
    assert "frame 4/4 shot4 iteration 3/3" in run.stderr
    assert "left" in run.stderr  # the time left over the frames


def test_a_video_file_locally_keeps_its_frame_count_and_rate(inputs, tmp_path) -> None:
    _frames, video, style = inputs
    out = tmp_path / "out.mp4"
    run = cli("video", str(video), str(style), "-o", str(out), "--local", "--flow", "farneback", *FAST)
    assert run.returncode == 0, run.stderr
    info = video_info(out)
    assert info.rate == Fraction(12) and (info.width, info.height) == (48, 36)  # 64×48 at --size 48
    assert len(list(read_video(out))) == 4
    assert info.has_audio and _audio_packets(out) == _audio_packets(video) > 0  # the audio copied
    assert not (tmp_path / ".out.mp4.frames").exists()  # the working frames are gone once encoded
    folder = tmp_path / "frames"
    run = cli("video", str(video), str(style), "-o", str(folder), "--local", "--temporal-weight", "0", *FAST)
    assert run.returncode == 0, run.stderr
    assert _pngs(folder) == [f"frame_{i:06d}.png" for i in range(1, 5)]


def test_an_interrupted_run_resumes_from_the_frames_written(inputs, tmp_path) -> None:
    """Ctrl+C leaves only whole frames and exit 130; the same command again keeps them and does the rest."""
    frames, _video, style = inputs
    out = tmp_path / "out"
    slow = [*FAST[:5], "400", *FAST[6:]]  # --iterations 400: a frame takes about 2 s, so Ctrl+C lands mid-run
    command = [sys.executable, "-m", "neural_style.daemon.cli", "video", str(frames), str(style), "-o", str(out),
               "--local", *slow]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                               env=dict(os.environ, OMP_NUM_THREADS="2"))
    deadline = time.monotonic() + 120
    while not (out / "shot2.png").exists():
        assert process.poll() is None and time.monotonic() < deadline, process.communicate()[1]
        time.sleep(0.05)
    process.send_signal(signal.SIGINT)
    _out, err = process.communicate(timeout=60)
    assert process.returncode == 130, err
    written = _pngs(out)
    assert written[:2] == ["shot1.png", "shot2.png"] and len(written) < 4  # whole frames only, no partial files
    for name in written:
        assert read_image(out / name).shape == (32, 48, 3)
    kept = {name: (out / name).stat().st_mtime_ns for name in written}

    run = cli("video", str(frames), str(style), "-o", str(out), "--local", *FAST)
    assert run.returncode == 0, run.stderr
    assert _pngs(out) == ["shot1.png", "shot2.png", "shot3.png", "shot4.png"]
    assert {name: (out / name).stat().st_mtime_ns for name in written} == kept
    assert f"resuming: {len(written)} frame(s)" in run.stderr


def test_resume_starts_the_next_frame_from_the_last_one_written(inputs, tmp_path) -> None:
    """The loop's own logic (a recording stylizer): frames on disk are kept and handed on as the previous."""
    from neural_style.daemon.progress_bar import FrameProgress
    from neural_style.daemon.sequence_run import open_source, run_sequence

    frames, _video, _style = inputs
    out = tmp_path / "out"
    marker = np.full((32, 48, 3), 7, np.uint8)
    write_frame(out, "shot1", marker)
    write_frame(out, "shot2", marker + 1)
    seen: list[tuple[int, int | None]] = []

    def stylize_frame(content, previous, on_progress, *, stop=None):
        seen.append((int(content[0, 0, 0]), None if previous is None else int(previous.stylized[0, 0, 0])))
        return np.full_like(content, 100 + len(seen))

    import io

    stream = io.StringIO()
    done = run_sequence(open_source(frames), out, stylize_frame, FrameProgress(4, 3, stream=stream))
    assert done == 2
    assert [previous for _content, previous in seen] == [8, 101]  # frame 3 from shot2 as written, 4 from 3
    assert seen[0][0] == int(read_image(frames / "shot3.png")[0, 0, 0])
    assert "frame 3/4 shot3" in stream.getvalue()


def test_chunks_one_per_worker_each_starting_early() -> None:
    from neural_style.daemon.sequence.chunks import Chunk, plan_chunks

    assert plan_chunks(10, 2, 2) == [Chunk(0, 5, 0), Chunk(5, 10, 2)]
    assert plan_chunks(7, 3, 4) == [Chunk(0, 2, 0), Chunk(2, 4, 2), Chunk(4, 7, 4)]  # a lead never before frame 0
    assert plan_chunks(2, 4, 1) == [Chunk(0, 1, 0), Chunk(1, 2, 1)]  # never more chunks than frames
    assert plan_chunks(5, 1, 3) == [Chunk(0, 5, 0)]


def test_chunks_run_at_once_lead_frames_are_not_written_and_resume_per_chunk(inputs, tmp_path) -> None:
    """The chunked loop's own logic (two recording stylizers on their threads, as two workers' clients):
    each chunk writes only its frames, the second stylizes its lead frame first without writing it, and a
    re-run keeps what is there, a lead frame on disk (written by the first chunk) taken as it is."""
    import io
    import threading

    from neural_style.daemon.progress_bar import FrameProgress
    from neural_style.daemon.sequence_run import open_source, run_sequence

    frames, _video, _style = inputs
    contents = [read_image(frames / f"shot{i}.png") for i in range(1, 5)]
    seen: dict[str, list[tuple[int, int | None]]] = {"a": [], "b": []}
    both_started = threading.Barrier(2, timeout=30)  # fails unless the two chunks run at the same time

    def stylizer(name: str, value: int):
        def stylize_frame(content, previous, on_progress, *, stop=None):
            if not seen[name]:
                both_started.wait()
            index = next(i for i, frame in enumerate(contents) if np.array_equal(frame, content))
            seen[name].append((index, None if previous is None else
                               int(previous.stylized[0, 0, 0])))
            return np.full_like(content, value + len(seen[name]))
        return stylize_frame

    out = tmp_path / "out"
    done = run_sequence(open_source(frames), out, [stylizer("a", 10), stylizer("b", 20)],
                        FrameProgress(4, 3, stream=io.StringIO()), overlap=1)
    assert done == 4
    assert seen["a"] == [(0, None), (1, 11)]
    assert seen["b"] == [(1, None), (2, 21), (3, 22)]  # frame 1 stylized as a lead, then 2 and 3 from it
    assert [int(read_image(out / f"shot{i}.png")[0, 0, 0]) for i in range(1, 5)] == [11, 12, 22, 23]

    (out / "shot3.png").unlink()
    (out / "shot4.png").unlink()
    seen["a"].clear()
    seen["b"].clear()
    both_started = threading.Barrier(1)
    done = run_sequence(open_source(frames), out, [stylizer("a", 30), stylizer("b", 40)],
                        FrameProgress(4, 3, stream=io.StringIO()), overlap=1)
    assert done == 2 and seen["a"] == []
    assert seen["b"] == [(2, 12), (3, 41)]  # the lead frame shot2 taken from disk, not stylized again
    assert [int(read_image(out / f"shot{i}.png")[0, 0, 0]) for i in range(1, 5)] == [11, 12, 41, 42]


def test_refusals_are_one_line_and_exit_2(inputs, tmp_path, capsys) -> None:
    """In-process (the command's own main): each refusal is found before any model loads."""
    from neural_style.daemon.cli import main

    frames, _video, style = inputs
    mixed = tmp_path / "mixed"
    write_frame(mixed, "a", np.zeros((32, 48, 3), np.uint8))
    write_frame(mixed, "b", np.zeros((30, 48, 3), np.uint8))
    (tmp_path / "empty").mkdir()
    (tmp_path / "file.txt").write_text("x")
    cases = [
        (["video", str(mixed), str(style), "-o", str(tmp_path / "o1"), "--local"], "a sequence's frames have one size"),
        (["video", str(tmp_path / "empty"), str(style), "-o", str(tmp_path / "o2"), "--local"], "no image files"),
        (["video", str(tmp_path / "nothing"), str(style), "-o", str(tmp_path / "o3")], "no such file"),
        (["video", str(frames), str(style), "-o", str(tmp_path / "file.txt")], "is a file"),
        (["video", str(frames), str(style), "-o", str(tmp_path / "o4"), "--temporal-weight", "-1"],
         "temporal_weight"),
        (["video", str(frames), str(style), "-o", str(tmp_path / "o5"), "--fps", "24"], "--fps"),
    ]
    for args, words in cases:
        assert main([*args, "--no-autostart", *FAST]) == 2, args
        err = capsys.readouterr().err
        assert words in err and "Traceback" not in err and len(err.strip().splitlines()) == 1, err
    assert not (tmp_path / "o1" / "b.png").exists()
