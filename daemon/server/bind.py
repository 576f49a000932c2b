"""The daemon's ROUTER socket: its options, and a bind that two daemons cannot both win.

Why a module: binding is where the daemon's limits meet libzmq's.  ``MAXMSGSIZE`` is
libzmq's cap on one *frame* (a bigger frame closes the connection, with no reply
possible); the per-message bounds are the request reader's (``reader.py``).  And an
``ipc://`` bind is not exclusive: libzmq unlinks an existing socket file and binds
anyway, so a second daemon would silently take the path over and leave the first one
running unreachable.  TCP refuses a second bind by itself (``EADDRINUSE``); for ipc a
lock file beside the socket path makes "check, then bind" one atomic step.
"""

from __future__ import annotations

import errno
import fcntl
import os
from dataclasses import dataclass
from pathlib import Path

import zmq

from neural_style.protocol.heartbeat import configure_zmtp_heartbeat
from neural_style.protocol.messages import Ping
from neural_style.protocol.wire import MAX_HEADER_BYTES

from .security import CurveServer, enable_curve

__all__ = ["EndpointBusy", "IpcLock", "RouterSettings", "bind_router", "max_frame_bytes"]


class EndpointBusy(RuntimeError):
    """Another daemon holds (or is binding) this endpoint."""


@dataclass(frozen=True)
class RouterSettings:
    """The ROUTER's libzmq options that come from the daemon's configuration."""

    max_message_bytes: int
    send_hwm: int = 16  # messages queued in libzmq per connection before EAGAIN (then the outbox)
    receive_hwm: int = 64  # complete messages libzmq queues per connection before it stops reading


def max_frame_bytes(max_message_bytes: int) -> int:
    """libzmq's MAXMSGSIZE: a frame may exceed the message limit by a header's size and still get
    a clear ``too_large`` from the reader; anything bigger cannot be a request at all."""
    return max_message_bytes + MAX_HEADER_BYTES


def _socket_path(endpoint: str) -> Path | None:
    """The file of an ``ipc://`` endpoint (None for TCP, and for Linux's abstract namespace, where the
    kernel itself refuses a second bind)."""
    if not endpoint.startswith("ipc://"):
        return None
    path = endpoint[len("ipc://"):]
    return Path(path) if path and not path.startswith("@") else None


class IpcLock:
    """An exclusive ``flock`` on ``PATH.lock`` for an ``ipc://PATH`` endpoint, held while serving.

    Acquired before the bind, released after the socket is closed: then the socket file (which
    libzmq leaves behind) and the lock file are removed while still locked, so nobody else can
    own what is removed.  After locking, the lock file must still be the one at the path (a
    daemon that was exiting may have removed it meanwhile); otherwise try again on the new file.
    """

    def __init__(self, endpoint: str) -> None:
        self.socket_path = _socket_path(endpoint)
        self.path = Path(f"{self.socket_path}.lock") if self.socket_path is not None else None
        self.owns_socket = False  # set once our bind succeeded: the socket file is ours to remove
        self._fd: int | None = None

    def acquire(self) -> None:
        if self.path is None:
            return
        for _ in range(10):
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError as exc:
                os.close(fd)
                if exc.errno in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                    raise EndpointBusy(f"another daemon holds {self.path}") from None
                raise
            try:
                same = os.stat(self.path).st_ino == os.fstat(fd).st_ino
            except FileNotFoundError:
                same = False
            if same:
                os.ftruncate(fd, 0)
                os.write(fd, f"{os.getpid()}\n".encode())
                self._fd = fd
                return
            os.close(fd)
        raise EndpointBusy(f"{self.path} keeps changing; another daemon is starting or stopping there")

    def release(self) -> None:
        if self._fd is None:
            return
        assert self.path is not None and self.socket_path is not None
        for path, ours in ((self.socket_path, self.owns_socket), (self.path, True)):
            if ours:
                try:
                    os.unlink(path)  # while still locked: nobody else can own what we remove
                except FileNotFoundError:
                    pass
        os.close(self._fd)
        self._fd = None


def _ipc_answers(endpoint: str, timeout_ms: int = 500) -> bool:
    """True if a daemon (one started without the lock, e.g. an older version) answers here."""
    path = _socket_path(endpoint)
    if path is None or not path.exists():
        return False
    ctx = zmq.Context()
    try:
        probe = ctx.socket(zmq.DEALER)
        probe.setsockopt(zmq.LINGER, 0)
        probe.connect(endpoint)
        probe.send_multipart(Ping("bind-probe").to_frames())
        answered = bool(probe.poll(timeout_ms))
        probe.close(0)
        return answered
    finally:
        ctx.term()


def bind_router(ctx: zmq.Context, endpoint: str, settings: RouterSettings,
                curve_dir: Path | None) -> tuple[zmq.Socket, CurveServer | None, IpcLock]:
    """A bound ROUTER with the protocol's options; raises ``EndpointBusy``, ``SecurityError`` or
    ``zmq.ZMQError``.  The caller releases the lock after closing the socket."""
    lock = IpcLock(endpoint)
    lock.acquire()
    try:
        if _ipc_answers(endpoint):
            raise EndpointBusy("a daemon already answers there")
        sock = ctx.socket(zmq.ROUTER)
    except BaseException:
        lock.release()
        raise
    sock.setsockopt(zmq.ROUTER_MANDATORY, 1)  # a send to a closed connection fails: that is how we notice
    sock.setsockopt(zmq.LINGER, 2000)
    sock.setsockopt(zmq.SNDHWM, settings.send_hwm)
    sock.setsockopt(zmq.RCVHWM, settings.receive_hwm)
    sock.setsockopt(zmq.MAXMSGSIZE, max_frame_bytes(settings.max_message_bytes))
    configure_zmtp_heartbeat(sock, daemon=True)
    curve = None
    try:
        if curve_dir is not None:
            curve = enable_curve(ctx, sock, curve_dir)
        sock.bind(endpoint)
        lock.owns_socket = True
    except BaseException:
        sock.close(linger=0)
        if curve is not None:
            curve.close()
        lock.release()
        raise
    return sock, curve, lock
