"""protocol/connection.py: the client configuration's one home, usable without zmq."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from neural_style.protocol import (
    CLIENT_CONFIG_NAME,
    DEFAULT_ENDPOINT,
    ClientConfig,
    read_client_config,
    resolve_endpoint,
    write_client_config,
)

CONNECTION = Path(__file__).resolve().parents[1] / "protocol" / "connection.py"


def test_round_trip_and_the_environment_wins(tmp_path: Path) -> None:
    written = write_client_config(tmp_path, ClientConfig("tcp://127.0.0.1:6000", ["/x/neural-style", "serve"]))
    assert written.name == CLIENT_CONFIG_NAME and not list(tmp_path.glob("*.tmp"))
    loaded = read_client_config(tmp_path, environ={})
    assert (loaded.endpoint, loaded.daemon_command, loaded.autostart, loaded.problem) == (
        "tcp://127.0.0.1:6000", ["/x/neural-style", "serve"], True, None)
    assert read_client_config(tmp_path, environ={"NEURAL_STYLE_ENDPOINT": "ipc:///tmp/ns"}).endpoint == "ipc:///tmp/ns"
    assert json.loads(written.read_text())["format"] == 1


def test_missing_or_broken_file_gives_defaults_and_a_reason(tmp_path: Path) -> None:
    missing = read_client_config(tmp_path, environ={})
    assert missing.endpoint == DEFAULT_ENDPOINT and "install.py" in (missing.problem or "")
    for bad in ({"endpoint": 5}, {"autostart": "yes"}, [1, 2]):
        (tmp_path / CLIENT_CONFIG_NAME).write_text(json.dumps(bad))
        broken = read_client_config(tmp_path, environ={})
        assert broken.endpoint == DEFAULT_ENDPOINT and "could not be read" in (broken.problem or ""), bad


def test_resolve_endpoint() -> None:
    assert resolve_endpoint(" tcp://127.0.0.1:1 ", {}) == "tcp://127.0.0.1:1"
    assert resolve_endpoint("", {"NEURAL_STYLE_ENDPOINT": "ipc:///s"}) == "ipc:///s"
    assert resolve_endpoint(None, {"NEURAL_STYLE_ENDPOINT": " "}) == DEFAULT_ENDPOINT


def test_loads_by_path_without_zmq_or_the_package(tmp_path: Path) -> None:
    """What install.py does under a system Python that may lack pyzmq."""
    script = (
        "import importlib.util, sys\n"
        "sys.modules['zmq'] = sys.modules['msgpack'] = None  # importing them fails\n"
        "spec = importlib.util.spec_from_file_location('nsconn', sys.argv[1])\n"
        "m = importlib.util.module_from_spec(spec); sys.modules['nsconn'] = m; spec.loader.exec_module(m)\n"
        "m.write_client_config(sys.argv[2], m.ClientConfig(m.DEFAULT_ENDPOINT, ['a']))\n"
        "assert 'neural_style.protocol' not in sys.modules\n"
        "print(m.read_client_config(sys.argv[2], {}).daemon_command)\n"
    )
    out = subprocess.run([sys.executable, "-I", "-c", script, str(CONNECTION), str(tmp_path)],
                         capture_output=True, text=True, timeout=30)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "['a']"


def test_serve_command_spells_the_daemons_options_once() -> None:
    from neural_style.protocol.connection import serve_command

    assert serve_command(["ns", "serve"]) == ["ns", "serve"]
    assert serve_command(["ns", "serve"], bind="ipc:///t/s", weights="random", weights_format="caffe",
                         device="cpu") == ["ns", "serve", "--bind", "ipc:///t/s", "--weights", "random",
                                           "--weights-format", "caffe", "--device", "cpu"]
    assert serve_command(["ns", "serve"], weights=None, device="") == ["ns", "serve"]  # unset: left to the daemon
