"""connect_or_start: ping, else start the command detached, wait for ping, or explain why not."""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

import pytest
import zmq

from neural_style.protocol import (
    Client,
    DaemonStartFailed,
    DaemonUnavailable,
    NoDaemon,
    connect_or_start,
    start_daemon,
)

# A stand-in daemon: binds where NEURAL_STYLE_ENDPOINT says and answers ping with pong.
FAKE_DAEMON = """
import os, sys, zmq
from neural_style.protocol.messages import Pong, decode_request
print("fake daemon starting", flush=True)
sock = zmq.Context().socket(zmq.ROUTER)
sock.bind(os.environ["NEURAL_STYLE_ENDPOINT"])
while True:
    peer, *frames = sock.recv_multipart()
    request = decode_request(frames)
    sock.send_multipart([peer, *Pong(request.id, "fake", 1, "cpu", True, "random", 0).to_frames()])
"""


def free_endpoint() -> str:
    sock = zmq.Context.instance().socket(zmq.ROUTER)
    port = sock.bind_to_random_port("tcp://127.0.0.1")
    sock.close(0)
    return f"tcp://127.0.0.1:{port}"


def _stop(process) -> None:
    process.kill()
    process.wait(10)


def test_starts_a_daemon_once_and_then_finds_it(tmp_path: Path) -> None:
    endpoint, log = free_endpoint(), tmp_path / "logs" / "daemon.log"
    first, handle = connect_or_start(endpoint, [sys.executable, "-c", FAKE_DAEMON], start_timeout=20, log_path=log,
                                     first_ping=0.3)
    first.close()
    try:
        assert handle.started and handle.pid and handle.pong.daemon_version == "fake"
        assert handle.endpoint == endpoint and handle.log_path == log
        second, again = connect_or_start(endpoint, [sys.executable, "-c", "raise SystemExit(3)"], start_timeout=5,
                                         log_path=log)
        second.close()
        assert not again.started and again.pid is None  # found the running one, started nothing
        with Client(endpoint, timeout=2) as client:
            assert client.ping().device == "cpu"
        text = log.read_text()
        assert "starting:" in text and "fake daemon starting" in text
        assert os.getsid(handle.pid) == handle.pid  # detached: its own session
    finally:
        _stop(handle.process)


def test_a_daemon_that_dies_is_reported_with_its_log_tail(tmp_path: Path) -> None:
    command = [sys.executable, "-c", "import sys; print('no VGG19 weights found'); sys.exit(2)"]
    started = time.monotonic()
    with pytest.raises(DaemonStartFailed) as err:
        connect_or_start(free_endpoint(), command, start_timeout=20, log_path=tmp_path / "d.log", first_ping=0.2)
    assert time.monotonic() - started < 10
    assert "status 2" in str(err.value) and "no VGG19 weights found" in err.value.log_tail
    assert isinstance(err.value, DaemonUnavailable)  # callers catching the general error see it too


def test_a_daemon_that_never_answers_times_out(tmp_path: Path) -> None:
    command = [sys.executable, "-c", "import time; print('loading forever', flush=True); time.sleep(60)"]
    with pytest.raises(DaemonStartFailed) as err:
        connect_or_start(free_endpoint(), command, start_timeout=0.8, log_path=tmp_path / "d.log", first_ping=0.2)
    assert err.value.pid is not None and err.value.process.poll() is None  # left running, as documented
    _stop(err.value.process)
    assert "did not answer" in str(err.value) and "loading forever" in err.value.log_tail


def test_an_empty_command_is_a_value_error() -> None:
    with pytest.raises(ValueError):
        start_daemon(free_endpoint(), [], timeout=1)


def test_a_missing_command_is_named() -> None:
    with pytest.raises(DaemonStartFailed) as err:
        connect_or_start(free_endpoint(), ["/nonexistent/neural-style", "serve"], start_timeout=5, first_ping=0.2)
    assert str(err.value).startswith("could not start `/nonexistent/neural-style`: no such file"), str(err.value)


def test_connect_or_start_decides_within_about_a_second_without_autostart() -> None:
    endpoint = free_endpoint()
    started = time.monotonic()
    with pytest.raises(NoDaemon) as err:
        connect_or_start(endpoint, [sys.executable, "-c", FAKE_DAEMON], autostart=False)
    assert time.monotonic() - started < 2.5
    assert endpoint in str(err.value) and isinstance(err.value, DaemonUnavailable)
    with pytest.raises(NoDaemon):  # no command recorded: nothing to start either
        connect_or_start(endpoint, None, first_ping=0.2)


def test_connect_or_start_starts_once_then_reuses(tmp_path: Path) -> None:
    endpoint, starts = free_endpoint(), []
    command = [sys.executable, "-c", FAKE_DAEMON]
    client, handle = connect_or_start(endpoint, command, timeout=3, start_timeout=20, log_path=tmp_path / "d.log",
                                      on_start=starts.append)
    try:
        assert handle.started and starts == [command] and client.timeout == 3
        assert client.ping().daemon_version == "fake"
        client.close()
        again, handle2 = connect_or_start(endpoint, ["/nonexistent/never-run"], on_start=starts.append)
        assert not handle2.started and len(starts) == 1 and again.ping().device == "cpu"
        again.close()
    finally:
        _stop(handle.process)
