"""``neural-style stylize`` over several contents: a folder of photos or repeated ``--content`` into ``-o DIR``,
independent photos with one warm model and one style computation (the daemon's cache, or the local one)."""
from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from server_fixtures import shared_daemon

from neural_style.daemon.sequence.frames import read_image, write_frame

FAST = ("--weights", "random", "--size", "32", "--iterations", "2", "--progress-every", "1",
        "--content-layers", "relu2_1", "--style-layers", "relu1_1,relu2_1")


def cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "neural_style.daemon.cli", *args], capture_output=True, text=True,
                          timeout=180, env=dict(os.environ, OMP_NUM_THREADS="2"))


@pytest.fixture(scope="module")
def photos(tmp_path_factory) -> tuple[Path, Path]:
    root = tmp_path_factory.mktemp("batch")
    rng = np.random.default_rng(4)
    for name, size in (("beach", (24, 40)), ("city", (40, 32)), ("forest", (32, 32))):
        write_frame(root / "photos", name, (rng.random((*size, 3)) * 255).astype(np.uint8))
    write_frame(root, "style", (rng.random((24, 24, 3)) * 255).astype(np.uint8))
    return root / "photos", root / "style.png"


def test_a_folder_of_photos_through_the_daemon_computes_the_style_once(tmp_path_factory, photos, tmp_path) -> None:
    daemon = shared_daemon(tmp_path_factory)
    folder, style = photos
    out = tmp_path / "out"
    run = cli("stylize", str(folder), str(style), "-o", str(out), "--endpoint", daemon.endpoint, "--no-autostart",
              "--seed", "11", *FAST)  # a seed of its own: no other test's cache entry for this style
    assert run.returncode == 0, run.stderr
    assert sorted(p.name for p in out.iterdir()) == ["beach.png", "city.png", "forest.png"]
    assert read_image(out / "beach.png").shape == (19, 32, 3)  # each photo its own shape (24x40 fitted to 32)
    assert read_image(out / "city.png").shape == (32, 26, 3)
    hits = [int(n) for n in re.findall(r"style cache (\d+) hit", run.stderr)]
    assert len(hits) == 3 and hits[1] >= 1 and hits[2] >= 1  # later photos reuse the first one's style targets


def test_several_contents_locally_and_refusals(photos, tmp_path, capsys) -> None:
    from neural_style.daemon.cli import main

    folder, style = photos
    out = tmp_path / "out"
    run = cli("stylize", str(folder / "beach.png"), str(style), "--content", str(folder / "city.png"),
              "-o", str(out), "--local", *FAST)
    assert run.returncode == 0, run.stderr
    assert sorted(p.name for p in out.iterdir()) == ["beach.png", "city.png"]
    (tmp_path / "file.png").write_bytes(b"x")
    for args, words in [
        ([str(folder), str(style), "-o", str(tmp_path / "file.png")], "is a file"),
        ([str(folder / "beach.png"), str(style), "--content", str(folder / "beach.png"), "-o", str(tmp_path / "d")],
         "several contents are named beach"),
        ([str(folder / "beach.png"), str(style), "--content", str(tmp_path / "none.png"), "-o", str(tmp_path / "e")],
         "no such file"),
    ]:
        assert main(["stylize", *args, "--no-autostart", *FAST]) == 2, args
        assert words in capsys.readouterr().err
    assert not (tmp_path / "e").exists()  # refused before anything was made


def test_concurrent_tasks_stop_together_on_the_first_failure() -> None:
    """``concurrent_jobs.run_concurrently``, what spreads photos and chunks over a cluster's workers: results
    in order; one task's error stops the others (they see ``stop``) and is raised once all have ended."""
    import threading
    import time

    from neural_style.daemon.concurrent_jobs import Stopped, run_concurrently

    assert run_concurrently([lambda stop, i=i: i * 2 for i in range(3)]) == [0, 2, 4]
    ended: list[str] = []

    def waits(stop: threading.Event) -> None:
        assert stop.wait(30), "never told to stop"
        ended.append("waiter")
        raise Stopped("stopped")

    def fails(stop: threading.Event) -> None:
        time.sleep(0.2)
        raise ValueError("frame 3 is broken")

    with pytest.raises(ValueError, match="frame 3 is broken"):
        run_concurrently([waits, fails, waits])
    assert ended == ["waiter", "waiter"]  # both had ended before the error reached the caller
