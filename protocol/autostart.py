"""Start a daemon in the background when none answers, and wait until it does.

Used by the CLI and the GIMP plug-in so a user never has to start the daemon by hand.
The daemon is started detached (its own session, output to a log file) so it outlives
the plug-in process that started it and keeps the model warm for the next call.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Mapping, Optional, Sequence, Union

from .client import Client
from .endpoint import ENDPOINT_ENV, resolve_endpoint
from .errors import DaemonUnavailable
from .messages import Pong

_children: list[subprocess.Popen] = []  # keep handles alive: no ResourceWarning, no early reaping


class DaemonStartFailed(DaemonUnavailable):
    """The daemon we started exited or did not answer in time; ``log_tail`` says why."""

    def __init__(self, message: str, log_path: Optional[Path], log_tail: str,
                 process: Optional[subprocess.Popen] = None) -> None:
        full = message + (f"\n--- last lines of {log_path} ---\n{log_tail}" if log_tail else "")
        super().__init__(full)
        self.log_path = log_path
        self.log_tail = log_tail
        self.process = process  # set when it is still running: the caller may stop it
        self.pid = process.pid if process is not None else None


@dataclass(frozen=True)
class DaemonHandle:
    """What ensure_daemon found: the daemon's pong, and whether (and as what) we started it."""

    endpoint: str
    pong: Pong
    started: bool
    pid: Optional[int] = None
    log_path: Optional[Path] = None
    process: Optional[subprocess.Popen] = field(default=None, repr=False, compare=False)


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


def _spawn(command: Sequence[str], log_path: Path, env: Mapping[str, str]) -> subprocess.Popen:
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with open(log_path, "ab") as log:
        log.write(f"\n=== {time.strftime('%Y-%m-%d %H:%M:%S')} starting: {' '.join(command)}\n".encode())
        log.flush()
        kwargs: dict = {"stdin": subprocess.DEVNULL, "stdout": log, "stderr": subprocess.STDOUT,
                        "env": dict(env), "close_fds": True}
        if sys.platform == "win32":
            kwargs["creationflags"] = (subprocess.DETACHED_PROCESS  # type: ignore[attr-defined]
                                       | subprocess.CREATE_NEW_PROCESS_GROUP)  # type: ignore[attr-defined]
        else:
            kwargs["start_new_session"] = True  # no SIGINT/SIGHUP from the starter's terminal
        process = subprocess.Popen(list(command), **kwargs)
    _children.append(process)
    return process


def ensure_daemon(endpoint: Optional[str], command: Sequence[str], timeout: float = 60.0, *,
                  log_path: Union[str, os.PathLike, None] = None, ping_timeout: float = 1.0,
                  env: Optional[Mapping[str, str]] = None) -> DaemonHandle:
    """Return a handle to a daemon answering at ``endpoint``, starting ``command`` if needed.

    The command runs with ``NEURAL_STYLE_ENDPOINT`` set to the endpoint (so a plain
    ``neural-style serve`` binds where we look). Raises DaemonStartFailed, with the log's
    tail, when it exits or does not answer within ``timeout`` seconds (it is then left
    running: it may still be loading weights; the error names its pid).
    """
    if not command:
        raise ValueError("ensure_daemon needs a command to start the daemon")
    target = resolve_endpoint(endpoint)
    pong = _ping(target, ping_timeout)
    if pong is not None:
        return DaemonHandle(target, pong, started=False)
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
