"""``neural-style status`` and ``neural-style stylize`` through the daemon (daemon/remote.py),
run as real commands: results written, errors as one line and an exit code, autostart."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from PIL import Image
from server_fixtures import free_port, shared_daemon, wait_until

IMAGES = Path(__file__).resolve().parents[1].parent / "shared" / "images"


@pytest.fixture(scope="module")
def images(tmp_path_factory) -> tuple[Path, Path]:
    """The shared photographs when present, else generated stand-ins."""
    content, style = IMAGES / "tubingen.jpg", IMAGES / "starry_night.jpg"
    if content.is_file() and style.is_file():
        return content, style
    from server_fixtures import png_bytes

    tmp = tmp_path_factory.mktemp("images")
    (tmp / "c.png").write_bytes(png_bytes(64, 48, seed=1))
    (tmp / "s.png").write_bytes(png_bytes(48, 48, seed=2))
    return tmp / "c.png", tmp / "s.png"


@pytest.fixture(scope="module")
def daemon(tmp_path_factory):
    return shared_daemon(tmp_path_factory)  # one process for this module and its neighbours


def cli(*args: str, env: dict[str, str] | None = None, timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "neural_style.daemon.cli", *args], capture_output=True, text=True,
                          timeout=timeout, env=dict(os.environ, **(env or {})))


FAST_OPTIONS = ("--weights", "random", "--size", "32", "--iterations", "3", "--progress-every", "1",
                "--content-layers", "relu2_1", "--style-layers", "relu1_1,relu2_1")


def test_status_and_stylize_through_a_running_daemon(daemon, images, tmp_path, capsys):
    import argparse

    from neural_style.daemon import remote

    assert remote.status(argparse.Namespace(endpoint=daemon.endpoint)) == 0  # in-process: cheap
    assert "weights: random" in capsys.readouterr().out

    out = tmp_path / "out.png"  # the real command, as a user runs it
    run = cli("stylize", str(images[0]), str(images[1]), "-o", str(out), "--endpoint", daemon.endpoint,
              "--no-autostart", *FAST_OPTIONS)
    assert run.returncode == 0, run.stderr
    assert "iteration 3/3" in run.stderr and f"wrote {out}" in run.stderr and "Traceback" not in run.stderr
    with Image.open(out) as image:
        assert max(image.size) == 32 and image.mode == "RGB"
        assert "random" in image.info["NeuralStyle-Weights"]
    assert "id=" in daemon.log() and " result: " in daemon.log()  # it really went through the daemon


def test_a_daemon_refusal_is_one_line_and_exit_5(daemon, images, tmp_path, capsys):
    """In-process ``remote.stylize_with_daemon`` (what the command runs): the daemon's too_large becomes exit 5."""
    import argparse

    from neural_style.daemon import remote
    from neural_style.daemon.engine import StyleParams

    args = argparse.Namespace(endpoint=daemon.endpoint, no_autostart=True, weights="random",
                              weights_format="torchvision", device="cpu")
    out = tmp_path / "x.png"
    assert remote.stylize_with_daemon(args, images[0], [images[1]], StyleParams(iterations=999_999), out) == 5
    err = capsys.readouterr().err
    assert "too_large" in err and err.count("\n") == 1 and not out.exists()


def test_no_daemon_and_no_autostart_is_exit_4(images, tmp_path):
    endpoint = f"tcp://127.0.0.1:{free_port()}"
    run = cli("stylize", str(images[0]), str(images[1]), "-o", str(tmp_path / "x.png"), "--endpoint", endpoint,
              "--no-autostart", "--weights", "random")
    assert run.returncode == 4 and "no daemon answered" in run.stderr and "Traceback" not in run.stderr



def test_status_without_a_daemon_is_exit_4(capsys):
    """In-process: ``remote.status`` is what ``neural-style status`` runs."""
    import argparse

    from neural_style.daemon import remote

    assert remote.status(argparse.Namespace(endpoint=f"tcp://127.0.0.1:{free_port()}")) == 4
    err = capsys.readouterr().err
    assert "no daemon answered" in err and err.count("\n") == 1


def test_stylize_autostarts_a_daemon_that_stays_warm(images, tmp_path):
    endpoint = f"ipc://{tmp_path}/auto.sock"
    env = {"NEURAL_STYLE_ENDPOINT": endpoint, "XDG_CACHE_HOME": str(tmp_path / "cache")}
    out = tmp_path / "auto.png"
    run = cli("stylize", str(images[0]), str(images[1]), "-o", str(out), "--device", "cpu", *FAST_OPTIONS, env=env)
    started = re.search(r"started a daemon at (\S+) \(pid (\d+)", run.stderr)
    pid = int(started.group(2)) if started else None
    try:
        assert run.returncode == 0, run.stderr
        assert started and started.group(1) == endpoint and out.is_file()
        # the daemon outlives the command: a second run uses it without starting another
        status = cli("status", env=env)
        assert status.returncode == 0 and "weights: random" in status.stdout
    finally:
        if pid is not None:
            os.kill(pid, signal.SIGTERM)
    log_path = tmp_path / "cache" / "neural-style" / "daemon.log"
    wait_until(lambda: "daemon stopped" in log_path.read_text(), 15, "the autostarted daemon to stop")
    log = log_path.read_text()
    assert "SIGTERM: cancelling jobs and shutting down" in log
