"""The daemon's lifecycle and security: SIGTERM with running and queued jobs, two daemons started
at once on one ipc path, SIGHUP, CURVE on and off, refusing a non-loopback bind without keys,
--insecure, the log file and the ``python -m neural_style.daemon.server`` entry point.
"""

from __future__ import annotations

import signal
import subprocess
import time
from pathlib import Path

import pytest
import zmq
import zmq.auth
from server_fixtures import (
    ENDLESS,
    FAST,
    RawClient,
    daemon_command,
    free_port,
    start_curve_daemon,
    start_daemon,
    terminal_of,
    wait_for_ping,
    wait_until,
)


def test_sigterm_cancels_running_and_queued_jobs_and_exits_cleanly(tmp_path):
    """Through the ``python -m neural_style.daemon.server`` entry point (the other tests use
    ``neural-style serve``)."""
    log_file = tmp_path / "daemon-file.log"
    daemon = start_daemon(tmp_path, "--log-file", str(log_file), entry="server")
    try:
        with RawClient(daemon.endpoint) as a, RawClient(daemon.endpoint) as b:
            a.stylize("running", ENDLESS)
            assert a.recv_for("running")[0]["type"] == "accepted"
            assert a.recv_for("running")[0]["type"] == "progress"
            b.stylize("queued", {**FAST, "iterations": 5})
            assert b.recv_for("queued")[0]["position"] == 1
            a.stylize("queued-too", {**FAST, "iterations": 5})
            assert a.recv_for("queued-too")[0]["position"] == 2

            daemon.process.terminate()  # SIGTERM
            streams = {"running": a.stream("running", timeout=15, quiet=0),
                       "queued": b.stream("queued", timeout=15, quiet=0),
                       "queued-too": a.stream("queued-too", timeout=15, quiet=0)}
        for name, stream in streams.items():
            end = terminal_of(stream)
            assert (end["type"], end["code"]) == ("error", "cancelled"), (name, end)
            assert "shutting down" in end["message"]
        assert daemon.process.wait(15) == 0  # a bound, not a timing: it exits on its own
    finally:
        if daemon.alive():
            daemon.process.kill()
    log = daemon.log()
    assert "SIGTERM: cancelling jobs and shutting down" in log and "daemon stopped after 3 job(s)" in log
    # --log-file gets the same lines, one per job with its timings
    file_log = log_file.read_text()
    assert file_log.count(" cancelled: ") == 3 and "waited" in file_log and "daemon stopped" in file_log


def test_two_daemons_started_together_on_one_ipc_path_leave_one_serving_and_sighup_stops_it(tmp_path):
    """Started at the same instant, only one may bind the path (a lock file beside it): the other
    exits 1 and says why, instead of unlinking the first one's socket and leaving it unreachable.
    Then SIGHUP (a closing terminal) is handled like SIGTERM: jobs end ``cancelled``, exit 0."""
    socket_path = tmp_path / "race.sock"
    endpoint = f"ipc://{socket_path}"
    first, second = (start_daemon(tmp_path, endpoint=endpoint, wait=False) for _ in range(2))
    try:
        wait_until(lambda: not (first.alive() and second.alive()), 60, "one of the two daemons to give up")
        loser, winner = (first, second) if not first.alive() else (second, first)
        assert loser.process.wait(5) == 1
        assert "another daemon is running there" in loser.log() and "Traceback" not in loser.log()
        wait_for_ping(winner)
        with RawClient(endpoint) as client:
            client.stylize("running", ENDLESS)
            assert client.recv_for("running")[0]["type"] == "accepted"
            assert client.recv_for("running")[0]["type"] == "progress"
            winner.process.send_signal(signal.SIGHUP)
            end = terminal_of(client.stream("running", timeout=15, quiet=0))
        assert (end["type"], end["code"]) == ("error", "cancelled") and "shutting down" in end["message"]
        assert winner.process.wait(15) == 0
    finally:
        for daemon in (first, second):
            if daemon.alive():
                daemon.process.kill()
    assert "SIGHUP: cancelling jobs and shutting down" in winner.log()
    assert not socket_path.exists() and not Path(f"{socket_path}.lock").exists()  # nothing left behind


def _run_serve(tmp_path, *args: str, timeout: float = 30) -> subprocess.CompletedProcess:
    return subprocess.run(daemon_command(*args), capture_output=True, text=True, timeout=timeout, cwd=tmp_path)


def test_non_loopback_bind_is_refused_without_keys(tmp_path):
    result = _run_serve(tmp_path, f"tcp://0.0.0.0:{free_port()}")
    assert result.returncode == 2
    assert "refusing to bind" in result.stderr and "--curve-dir" in result.stderr and "--insecure" in result.stderr
    assert "Traceback" not in result.stderr


def test_insecure_allows_a_non_loopback_bind(caplog):
    """In-process (the bind check is the subject, not the process): --insecure binds 0.0.0.0 and serves."""
    import logging
    import threading

    from neural_style.daemon.server.main import ServerConfig, run_server
    from neural_style.daemon.server.security import SecuritySettings
    from neural_style.daemon.server.worker import ModelSettings

    caplog.set_level(logging.INFO)
    port = free_port()
    config = ServerConfig(bind=f"tcp://0.0.0.0:{port}", model=ModelSettings("random", device="cpu"),
                          security=SecuritySettings(insecure=True))
    stop = threading.Event()
    codes: list[int] = []
    thread = threading.Thread(target=lambda: codes.append(run_server(config, stop)))
    thread.start()
    try:
        with RawClient(f"tcp://127.0.0.1:{port}") as client:  # 0.0.0.0 includes loopback
            assert client.request({"type": "ping", "id": "p"}, timeout=30)["type"] == "pong"
    finally:
        stop.set()
        thread.join(30)
    assert codes == [0]
    assert "WITHOUT encryption" in caplog.text


@pytest.fixture(scope="module")
def curve_daemon(tmp_path_factory):
    daemon = start_curve_daemon(tmp_path_factory.mktemp("curve"))  # a non-loopback bind, allowed with CURVE keys
    yield daemon
    assert daemon.stop() == 0


def test_curve_allowed_client_can_stylize(curve_daemon):
    with RawClient(curve_daemon.endpoint, curve=curve_daemon.curve) as client:
        deadline = time.monotonic() + 60
        while True:  # wait for the model
            pong = client.request({"type": "ping", "id": f"p{time.monotonic()}"})
            if pong["weights_loaded"] or time.monotonic() > deadline:
                break
            time.sleep(0.1)
        assert pong["weights_loaded"]
        client.stylize("secure", {**FAST, "iterations": 2})
        assert terminal_of(client.stream("secure", quiet=0))["type"] == "result"
    assert "CURVE on" in curve_daemon.log()


def test_curve_refuses_unknown_keys_and_plain_clients(curve_daemon):
    server_public = curve_daemon.curve[0]
    stranger_public, stranger_secret = zmq.curve_keypair()
    with RawClient(curve_daemon.endpoint, curve=(server_public, stranger_public, stranger_secret)) as stranger:
        stranger.send({"type": "ping", "id": "s"})
        assert stranger.recv_for("s", timeout=2.0, missing_ok=True) is None
    with RawClient(curve_daemon.endpoint) as plain:
        plain.send({"type": "ping", "id": "plain"})
        assert plain.recv_for("plain", timeout=2.0, missing_ok=True) is None
    # the daemon is unharmed: the allowed key still gets answers
    with RawClient(curve_daemon.endpoint, curve=curve_daemon.curve) as client:
        assert client.request({"type": "ping", "id": "ok"})["type"] == "pong"


def test_curve_dir_without_keys_is_a_clear_error(tmp_path, caplog):
    """In-process (no need to pay for another interpreter): serve() refuses and says what is missing."""
    from neural_style.daemon.server.__main__ import build_parser
    from neural_style.daemon.server.main import serve

    empty = tmp_path / "nokeys"
    empty.mkdir()
    args = build_parser().parse_args(["--bind", f"tcp://127.0.0.1:{free_port()}", "--curve-dir", str(empty),
                                      "--weights", "random", "--device", "cpu"])
    assert serve(args) == 2
    assert "server.key_secret" in caplog.text
