"""Helpers for the daemon's integration tests: a real ``neural-style serve`` process, tiny images,
and a raw pyzmq + msgpack client written from docs/PROTOCOL.md alone.

Why a real process: the tests must see what a client sees (sockets, signals, exit codes,
log lines), not what an in-process object does.  Daemons are started once per test module
(module-scoped fixtures in the test files), with random weights and tiny images, so the
whole daemon suite stays well inside CI's budget on 2 CPU cores.
"""

from __future__ import annotations

import atexit
import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import msgpack
import numpy as np
import zmq
import zmq.auth

from neural_style.protocol.connection import serve_command

ROOT = Path(__file__).resolve().parents[1]

# Cheap engine settings: two shallow style layers keep one iteration at a few milliseconds.
FAST = {"size": 32, "content_layers": ["relu2_1"], "style_layers": ["relu1_1", "relu2_1"]}
# A job that would run for minutes: used for cancel, kill and shutdown tests (it never finishes).
ENDLESS = {"size": 32, "iterations": 4000, "progress_every": 1}
# How much of a daemon's log a failed start quotes (the end: where it stopped).
LOG_TAIL_LINES = 40


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def rgb_bytes(width: int, height: int, channels: int = 3, seed: int = 0) -> bytes:
    """A smooth-ish random image as raw interleaved 8-bit bytes."""
    rng = np.random.default_rng(seed)
    small = rng.integers(0, 256, (max(1, height // 4), max(1, width // 4), channels), dtype=np.uint8)
    big = np.repeat(np.repeat(small, 4, axis=0), 4, axis=1)
    out = np.zeros((height, width, channels), dtype=np.uint8)
    out[: big.shape[0], : big.shape[1]] = big[:height, :width]
    return out.tobytes()


def png_bytes(width: int, height: int, seed: int = 0) -> bytes:
    import io

    from PIL import Image

    arr = np.frombuffer(rgb_bytes(width, height, 3, seed), dtype=np.uint8).reshape(height, width, 3)
    buf = io.BytesIO()
    Image.fromarray(arr, "RGB").save(buf, format="PNG")
    return buf.getvalue()


def raw_image(frame: int, width: int, height: int, channels: int = 3) -> dict[str, Any]:
    return {"frame": frame, "encoding": "raw", "width": width, "height": height, "channels": channels}


@dataclass
class Daemon:
    """A daemon process started by a test; ``stop()`` sends SIGTERM and waits for its exit."""

    process: subprocess.Popen
    endpoint: str
    log_path: Path
    args: list[str] = field(default_factory=list)
    curve: tuple[bytes, bytes, bytes] | None = None  # start_curve_daemon: a client's credentials

    def log(self) -> str:
        return self.log_path.read_text(encoding="utf-8", errors="replace")

    def alive(self) -> bool:
        return self.process.poll() is None

    def log_tail(self, lines: int = LOG_TAIL_LINES) -> str:
        return "\n".join(self.log().splitlines()[-lines:])

    def stop(self, timeout: float = 15.0) -> int:
        if not self.end(timeout):
            raise AssertionError(f"daemon did not exit within {timeout}s of SIGTERM\n{self.log()}")
        return self.process.returncode

    def end(self, grace: float = 5.0) -> bool:
        """SIGTERM, then SIGKILL after ``grace`` s; True when SIGTERM sufficed. Once this returns, the
        process is gone (reaped)."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(grace)
            return True
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(5)
            return False


def daemon_command(endpoint: str, *extra: str, weights: str | None = "random", entry: str = "cli") -> list[str]:
    """``neural-style serve`` (``entry="cli"``) or ``python -m neural_style.daemon.server`` (``"server"``)."""
    program = ["neural_style.daemon.cli", "serve"] if entry == "cli" else ["neural_style.daemon.server"]
    return [*serve_command([sys.executable, "-m", *program], bind=endpoint, weights=weights, device="cpu"), *extra]


def start_daemon(tmp: Path, *extra: str, endpoint: str | None = None, weights: str | None = "random",
                 env: dict[str, str] | None = None, wait: bool = True, timeout: float = 60.0,
                 entry: str = "cli") -> Daemon:
    """Start ``neural-style serve`` and (``wait``) return once it answers ``ping``."""
    endpoint = endpoint or f"tcp://127.0.0.1:{free_port()}"
    log_path = tmp / f"daemon-{uuid.uuid4().hex[:8]}.log"
    command = daemon_command(endpoint, *extra, weights=weights, entry=entry)
    full_env = dict(os.environ, **(env or {}))
    full_env.setdefault("OMP_NUM_THREADS", "2")
    with open(log_path, "wb") as log:
        process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                   env=full_env, cwd=str(tmp))
    daemon = Daemon(process, endpoint, log_path, command)
    if wait:
        try:
            wait_for_ping(daemon, timeout)
        except BaseException as exc:  # never leave a daemon that failed to come up running behind the test
            daemon.end()
            if not isinstance(exc, AssertionError):
                raise
            reason = str(exc).splitlines()[0].rstrip(":")
            raise AssertionError(f"{reason}; the daemon was stopped (exit {daemon.process.returncode}). "
                                 f"Its log ({log_path}), last {LOG_TAIL_LINES} lines:\n{daemon.log_tail()}") from None
    return daemon


def start_curve_daemon(tmp: Path, *extra: str) -> Daemon:
    """A daemon bound beyond loopback (``tcp://0.0.0.0``) with a fresh key folder (one allowed client,
    ``gimp``), not waited for; ``endpoint`` is its loopback address, ``curve`` the client's credentials
    for ``RawClient`` (server public, client public, client secret)."""
    from neural_style.daemon.server.security import generate_keys

    keys = tmp / "keys"
    generate_keys(keys, "gimp")
    port = free_port()
    daemon = start_daemon(tmp, "--curve-dir", str(keys), *extra, endpoint=f"tcp://0.0.0.0:{port}", wait=False)
    daemon.endpoint = f"tcp://127.0.0.1:{port}"
    server_public, _ = zmq.auth.load_certificate(keys / "server.key")
    public, secret = zmq.auth.load_certificate(keys / "client_secrets" / "gimp.key_secret")
    daemon.curve = (server_public, public, secret)
    return daemon


def own_daemon(tmp_path_factory: Any, name: str, *extra: str) -> Iterator[Daemon]:
    """A test module's own daemon (its own limits) on an ipc path, for a module-scoped fixture to
    ``yield from``: it must exit cleanly (0) when the module is done."""
    tmp = tmp_path_factory.mktemp(name)
    daemon = start_daemon(tmp, *extra, endpoint=f"ipc://{tmp}/{name}.sock")
    yield daemon
    assert daemon.stop() == 0, daemon.log()


_SHARED: dict[str, Daemon] = {}


def shared_daemon(tmp_path_factory: Any) -> Daemon:
    """One plain daemon (random weights, tcp loopback) for every test module that needs nothing
    special, started on first use and stopped (SIGTERM) when the test run ends: each daemon start
    costs seconds of CI time on 2 cores."""
    daemon = _SHARED.get("plain")
    if daemon is None or not daemon.alive():
        daemon = _SHARED["plain"] = start_daemon(tmp_path_factory.mktemp("shared-daemon"))
        atexit.register(daemon.stop)
    return daemon


def wait_for_ping(daemon: Daemon, timeout: float = 60.0, weights_loaded: bool | None = True) -> dict[str, Any]:
    """Ping until the daemon answers (and, by default, has its model loaded)."""
    deadline = time.monotonic() + timeout
    with RawClient(daemon.endpoint) as client:
        while time.monotonic() < deadline:
            if not daemon.alive():
                raise AssertionError(f"daemon exited with {daemon.process.returncode}:\n{daemon.log()}")
            client.send({"type": "ping", "id": "wait"})
            reply = client.recv_for("wait", timeout=1.0, missing_ok=True)
            if reply is not None and (weights_loaded is None or reply[0]["weights_loaded"] == weights_loaded):
                return reply[0]
            time.sleep(0.05)
    raise AssertionError(f"daemon did not answer within {timeout}s:\n{daemon.log()}")


class RawClient:
    """A DEALER speaking protocol v1 with nothing but pyzmq and msgpack (PROTOCOL.md sections 1–3, and
    the socket options of section 7: an unbounded receive queue, a ZMTP PING every 100 ms with a 2 s TTL).

    Replies to ids nobody asked for yet are kept, so several requests can be in flight.
    """

    def __init__(self, endpoint: str, *, rcvhwm: int = 0, curve: tuple[bytes, bytes, bytes] | None = None,
                 heartbeat: tuple[int, int, int] = (100, 0, 2000)):
        self.ctx = zmq.Context()
        self.sock = self.ctx.socket(zmq.DEALER)
        self.sock.setsockopt(zmq.LINGER, 0)
        for opt, ms in zip((zmq.HEARTBEAT_IVL, zmq.HEARTBEAT_TIMEOUT, zmq.HEARTBEAT_TTL), heartbeat):
            self.sock.setsockopt(opt, ms)
        self.sock.setsockopt(zmq.RCVHWM, rcvhwm)
        if curve is not None:
            server_public, public, secret = curve
            self.sock.curve_serverkey = server_public
            self.sock.curve_publickey = public
            self.sock.curve_secretkey = secret
        self.sock.connect(endpoint)
        self.pending: list[tuple[dict[str, Any], list[bytes]]] = []

    def __enter__(self) -> RawClient:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def close(self) -> None:
        self.sock.close(0)
        self.ctx.term()

    def send(self, header: dict[str, Any], *payloads: bytes, version: Any = 1) -> None:
        full = {"v": version, **header} if version is not None else dict(header)
        self.send_frames([msgpack.packb(full, use_bin_type=True), *payloads])

    def send_frames(self, frames: Iterable[bytes]) -> None:
        self.sock.send_multipart(list(frames))

    def _recv(self, timeout: float) -> tuple[dict[str, Any], list[bytes]] | None:
        if not self.sock.poll(int(timeout * 1000)):
            return None
        frames = self.sock.recv_multipart()
        header = msgpack.unpackb(frames[0], raw=False)
        assert isinstance(header, dict) and header.get("v") == 1, header
        return header, frames[1:]

    def recv_for(self, request_id: str, timeout: float = 10.0, missing_ok: bool = False,
                 skip: tuple[str, ...] = ("heartbeat",)) -> tuple[dict[str, Any], list[bytes]] | None:
        """The next reply with ``id == request_id`` whose type is not in ``skip``."""
        deadline = time.monotonic() + timeout
        while True:
            for i, (header, payloads) in enumerate(self.pending):
                if header["id"] == request_id and header["type"] not in skip:
                    del self.pending[i]
                    return header, payloads
            remaining = deadline - time.monotonic()
            message = self._recv(max(0.0, remaining)) if remaining > 0 else None
            if message is None:
                if missing_ok:
                    return None
                raise AssertionError(f"no reply for {request_id!r} within {timeout}s (pending: "
                                     f"{[(h['type'], h['id']) for h, _ in self.pending]})")
            if message[0]["id"] == request_id and message[0]["type"] in skip:
                continue
            self.pending.append(message)

    def request(self, header: dict[str, Any], *payloads: bytes, timeout: float = 10.0,
                version: Any = 1) -> dict[str, Any]:
        self.send(header, *payloads, version=version)
        reply = self.recv_for(header["id"], timeout)
        assert reply is not None
        return reply[0]

    def stream(self, request_id: str, timeout: float = 60.0,
               quiet: float = 1.0) -> list[tuple[dict[str, Any], list[bytes]]]:
        """Every reply of one stylize up to and including its terminal message (heartbeats included),
        then ``quiet`` s more (two heartbeat intervals by default) to prove that nothing follows it."""
        out = []
        while True:
            reply = self.recv_for(request_id, timeout, skip=())
            assert reply is not None
            out.append(reply)
            if reply[0]["type"] in ("result", "error"):
                break
        late = self.recv_for(request_id, timeout=quiet, missing_ok=True, skip=()) if quiet > 0 else None
        assert late is None, f"a message after the terminal one: {late[0]}"
        return out

    def stylize(self, request_id: str, params: dict[str, Any], *, width: int = 40, height: int = 32,
                channels: int = 3, seed: int = 0) -> None:
        content = rgb_bytes(width, height, channels, seed)
        style = rgb_bytes(24, 24, 3, seed + 1)
        self.send({"type": "stylize", "id": request_id,
                   "content": raw_image(1, width, height, channels),
                   "styles": [raw_image(2, 24, 24, 3)],
                   "params": params}, content, style)


def terminal_of(stream: list[tuple[dict[str, Any], list[bytes]]]) -> dict[str, Any]:
    """The single terminal header of a stream, checking there is exactly one and it is last."""
    terminals = [h for h, _ in stream if h["type"] in ("result", "error")]
    assert len(terminals) == 1, [h["type"] for h, _ in stream]
    assert stream[-1][0] is terminals[0]
    return terminals[0]


def wait_until(predicate, timeout: float, what: str, interval: float = 0.05) -> None:
    """Poll ``predicate`` until true; fails with ``what`` after ``timeout`` s (a bound, not a timing)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")
