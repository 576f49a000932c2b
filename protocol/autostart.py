"""Connect to the daemon, starting it in the background when none answers.

Used by the CLI and the GIMP plug-in so a user never has to start the daemon by hand:
:func:`connect_or_start` is the one place that decides "no daemon" (a short first ping),
starts the recorded command, waits for it and returns a ready :class:`Client`.
The daemon is started detached (its own session, output to a log file) so it outlives
the plug-in process that started it and keeps the model warm for the next call.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional, Union

from .client import DEFAULT_TIMEOUT, Client
from .connection import AUTOSTART_TIMEOUT, ENDPOINT_ENV, FIRST_PING_TIMEOUT, resolve_endpoint
from .errors import DaemonUnavailable
from .messages import Pong

_children: list[subprocess.Popen[bytes]] = []  # keep handles alive: no ResourceWarning, no early reaping


class DaemonStartFailed(DaemonUnavailable):
    """The daemon we started exited or did not answer in time; ``log_tail`` says why."""

    def __init__(self, message: str, log_path: Optional[Path], log_tail: str,
                 process: Optional[subprocess.Popen[bytes]] = None) -> None:
        full = message + (f"\n--- last lines of {log_path} ---\n{log_tail}" if log_tail else "")
        super().__init__(full)
        self.log_path = log_path
        self.log_tail = log_tail
        self.process = process  # set when it is still running: the caller may stop it
        self.pid = process.pid if process is not None else None


@dataclass(frozen=True)
class DaemonHandle:
    """What connect_or_start found: the daemon's pong, and whether (and as what) we started it."""

    endpoint: str
    pong: Pong
    started: bool
    pid: Optional[int] = None
    log_path: Optional[Path] = None
    process: Optional[subprocess.Popen[bytes]] = field(default=None, repr=False, compare=False)


def default_log_path() -> Path:
    """A per-user log file in the cache folder (the daemon's stdout and stderr)."""
    if sys.platform == "win32":
        base = Path(os.environ.get("LOCALAPPDATA") or tempfile.gettempdir())
    else:
        base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return base / "neural-style" / "daemon.log"


def log_tail(path: Optional[Path], lines: int = 20) -> str:
    if path is None:
        return ""
    try:
        with open(path, "rb") as f:
            f.seek(0, os.SEEK_END)
            f.seek(max(0, f.tell() - 16384))
            text = f.read().decode("utf-8", "replace")
    except OSError:
        return ""
    return "\n".join(text.splitlines()[-lines:])


def _ping(endpoint: str, timeout: float) -> Optional[Pong]:
    try:
        with Client(endpoint, timeout=timeout) as client:
            return client.ping()
    except DaemonUnavailable:
        return None


def _spawn(command: Sequence[str], log_path: Path, env: Mapping[str, str]) -> subprocess.Popen[bytes]:
    """Start ``command`` detached, its output appended to ``log_path``; a command that cannot run is
    a DaemonStartFailed naming it ("could not start `X`: no such file")."""
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with open(log_path, "ab") as log:
        log.write(f"\n=== {time.strftime('%Y-%m-%d %H:%M:%S')} starting: {' '.join(command)}\n".encode())
        log.flush()
        kwargs: dict[str, Any] = {"stdin": subprocess.DEVNULL, "stdout": log, "stderr": subprocess.STDOUT,
                        "env": dict(env), "close_fds": True}
        if sys.platform == "win32":
            kwargs["creationflags"] = subprocess.DETACHED_PROCESS | subprocess.CREATE_NEW_PROCESS_GROUP
        else:
            kwargs["start_new_session"] = True  # no SIGINT/SIGHUP from the starter's terminal
        try:
            process = subprocess.Popen(list(command), **kwargs)
        except OSError as exc:
            why = {FileNotFoundError: "no such file", PermissionError: "permission denied (not executable?)"}
            reason = why.get(type(exc), exc.strerror or str(exc))
            log.write(f"could not start {command[0]}: {reason}\n".encode())
            raise DaemonStartFailed(f"could not start `{command[0]}`: {reason}", None, "") from None
    _children.append(process)
    return process


def start_daemon(endpoint: Optional[str], command: Sequence[str], timeout: float = AUTOSTART_TIMEOUT, *,
                 log_path: Union[str, os.PathLike[str], None] = None, ping_timeout: float = FIRST_PING_TIMEOUT,
                 env: Optional[Mapping[str, str]] = None) -> DaemonHandle:
    """Start ``command`` detached and wait until a daemon answers at ``endpoint`` (no first ping).

    The command runs with ``NEURAL_STYLE_ENDPOINT`` set to the endpoint (so a plain
    ``neural-style serve`` binds where we look). Raises DaemonStartFailed, with the log's
    tail, when it cannot run, exits, or does not answer within ``timeout`` seconds (it is
    then left running: it may still be loading weights; the error names its pid).
    """
    if not command:
        raise ValueError("starting a daemon needs a command")
    target = resolve_endpoint(endpoint)
    path = Path(log_path) if log_path is not None else default_log_path()
    child_env = dict(os.environ if env is None else env)
    child_env[ENDPOINT_ENV] = target
    process = _spawn(command, path, child_env)
    deadline = time.monotonic() + timeout
    while True:
        pong = _ping(target, min(ping_timeout, max(0.05, deadline - time.monotonic())))
        if pong is not None:
            return DaemonHandle(target, pong, started=True, pid=process.pid, log_path=path, process=process)
        code = process.poll()
        if code is not None:
            pong = _ping(target, ping_timeout)  # lost a start race to another client's daemon?
            if pong is not None:
                return DaemonHandle(target, pong, started=False)
            raise DaemonStartFailed(f"the daemon exited with status {code} before answering at {target}",
                                    path, log_tail(path))
        if time.monotonic() >= deadline:
            raise DaemonStartFailed(f"the daemon (pid {process.pid}) did not answer at {target} within "
                                    f"{timeout:g} s; it is still running", path, log_tail(path), process)
        time.sleep(0.1)


class NoDaemon(DaemonUnavailable):
    """Nothing answered the first ping, and starting a daemon was not allowed (or there is no command)."""


def connect_or_start(endpoint: Optional[str] = None, command: Optional[Sequence[str]] = None, *,
                     autostart: bool = True, timeout: float = DEFAULT_TIMEOUT,
                     first_ping: float = FIRST_PING_TIMEOUT, start_timeout: float = AUTOSTART_TIMEOUT,
                     log_path: Union[str, os.PathLike[str], None] = None,
                     on_start: Optional[Callable[[Sequence[str]], None]] = None,
                     env: Optional[Mapping[str, str]] = None) -> tuple[Client, DaemonHandle]:
    """A ready client and the daemon's handle: the running daemon, or ``command`` started for it.

    One short ``ping`` (``first_ping`` seconds) decides whether a daemon listens. When none
    does and ``autostart`` is true and a command is given, ``on_start(command)`` is called
    (say "starting the daemon…") and the command is started and awaited (``start_timeout``);
    ``handle.started`` then tells the caller to mention it. The client's own requests use
    ``timeout``. Raises NoDaemon when nothing answers and nothing may be started,
    DaemonStartFailed when starting failed, ValueError for an endpoint ZeroMQ cannot use.
    """
    target = resolve_endpoint(endpoint)
    client = Client(target, timeout=timeout)
    try:
        pong = client.ping(timeout=first_ping)
        return client, DaemonHandle(target, pong, started=False)
    except DaemonUnavailable:
        client.close()  # its unanswered ping stays queued in the socket: start afresh
    if not (autostart and command):
        raise NoDaemon(f"no daemon answered at {target} within {first_ping:g} s")
    if on_start is not None:
        on_start(command)
    handle = start_daemon(target, command, start_timeout, log_path=log_path, ping_timeout=first_ping, env=env)
    return Client(target, timeout=timeout), handle
