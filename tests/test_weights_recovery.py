"""A daemon that started without VGG19 weights finds them once the user puts the file in place
(issue 18, defect 2): real daemon processes, real sockets, a real weights file, no restart.

The same daemon serves the GIMP plug-in and the CLI's autostart, so both are covered: the
plug-in's side runs in real GIMP in tests/test_gimp_gui.py."""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from server_fixtures import RawClient, png_bytes, start_daemon, terminal_of, wait_for_ping, wait_until

TORCHVISION_FILE = "vgg19-dcbb9e9d.pth"  # where torch.hub keeps it: $TORCH_HOME/hub/checkpoints/
FAST = ("--size", "32", "--iterations", "2", "--progress-every", "1",
        "--content-layers", "relu2_1", "--style-layers", "relu1_1,relu2_1")


@pytest.fixture
def images(tmp_path) -> tuple[Path, Path]:
    (tmp_path / "c.png").write_bytes(png_bytes(40, 32, seed=1))
    (tmp_path / "s.png").write_bytes(png_bytes(32, 32, seed=2))
    return tmp_path / "c.png", tmp_path / "s.png"


def _stylize(client: RawClient, job_id: str) -> dict:
    """One small job; its one terminal reply."""
    client.stylize(job_id, {"iterations": 2, "size": 32, "content_layers": ["relu2_1"],
                            "style_layers": ["relu1_1", "relu2_1"]})
    return terminal_of(client.stream(job_id, timeout=120, quiet=0))


def test_a_daemon_without_weights_loads_them_at_the_next_job(tmp_path, torchvision_weights_file):
    torch_home = tmp_path / "torch-home"
    torch_home.mkdir()
    daemon = start_daemon(tmp_path, weights=None, env={"TORCH_HOME": str(torch_home)}, wait=False)
    try:
        wait_until(lambda: "no VGG19 weights" in daemon.log(), 60, "the daemon to find no weights")
        assert wait_for_ping(daemon, weights_loaded=False)["weights_loaded"] is False
        with RawClient(daemon.endpoint) as client:
            first = _stylize(client, "before")
            assert (first["type"], first["code"]) == ("error", "no_weights"), first
            assert str(torch_home / "hub" / "checkpoints" / TORCHVISION_FILE) in first["message"], first
            # the user does what the message said, and runs again: the same daemon, not restarted
            target = torch_home / "hub" / "checkpoints" / TORCHVISION_FILE
            target.parent.mkdir(parents=True)
            shutil.copy(torchvision_weights_file, target)
            second = _stylize(client, "after")
            assert second["type"] == "result", second
            pong = client.request({"type": "ping", "id": "p"})
            assert pong["weights_loaded"] is True and str(target) in pong["weights"], pong
        assert daemon.alive()
    finally:
        assert daemon.stop() == 0, daemon.log()
    assert daemon.log().count("no VGG19 weights") == 2, "the daemon did not look again at the first job"


def test_the_clis_autostarted_daemon_finds_the_weights_put_in_place(tmp_path, torchvision_weights_file, images):
    """``neural-style stylize`` starts a daemon that has no weights (exit 3 and where to put them); the user
    puts the file there; the next command uses the same daemon, which now has them."""
    torch_home = tmp_path / "torch-home"
    torch_home.mkdir()
    env = dict(os.environ, NEURAL_STYLE_ENDPOINT=f"ipc://{tmp_path}/auto.sock", TORCH_HOME=str(torch_home),
               XDG_CACHE_HOME=str(tmp_path / "cache"), OMP_NUM_THREADS="2")

    def cli(out: Path) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-m", "neural_style.daemon.cli", "stylize", str(images[0]),
                               str(images[1]), "-o", str(out), "--device", "cpu", *FAST],
                              capture_output=True, text=True, timeout=180, env=env)

    first = cli(tmp_path / "first.png")
    started = re.search(r"started a daemon at \S+ \(pid (\d+)", first.stderr)
    pid = int(started.group(1)) if started else None
    try:
        assert started, first.stderr
        assert first.returncode == 3, first.stderr  # EXIT_NO_WEIGHTS
        target = torch_home / "hub" / "checkpoints" / TORCHVISION_FILE
        assert str(target) in first.stderr, first.stderr
        target.parent.mkdir(parents=True)
        shutil.copy(torchvision_weights_file, target)
        second = cli(tmp_path / "second.png")
        assert second.returncode == 0, second.stderr
        assert "started a daemon" not in second.stderr, "a second daemon was started"
        assert (tmp_path / "second.png").is_file()
    finally:
        if pid is not None:
            os.kill(pid, signal.SIGTERM)
