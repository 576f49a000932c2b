"""How a client finds the daemon: the endpoint, its environment variable, the waits, the plug-in's file.

One home for the client configuration (as jupyter_client's ``connect.py`` is for kernels):
the daemon, the CLI, the GIMP plug-in and ``install.py`` all read these names from here.

This module imports nothing but the standard library, on purpose: ``install.py`` runs
under whatever Python the user has (which may lack pyzmq) and loads this one file by its
path, without executing the package's ``__init__`` (which imports the zmq client).

The plug-in's configuration file, ``neural_style_gimp.json`` in the plug-in's folder::

    {
      "format": 1,
      "endpoint": "tcp://127.0.0.1:5570",
      "daemon_command": ["/path/to/.venv/bin/neural-style", "serve", "--bind", "tcp://127.0.0.1:5570"],
      "autostart": true
    }

``install.py`` writes it with :func:`write_client_config`, the plug-in reads it with
:func:`read_client_config`; ``NEURAL_STYLE_ENDPOINT`` in the reader's environment
overrides the recorded endpoint (the daemon honours the same variable).
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional, Union

DEFAULT_ENDPOINT = "tcp://127.0.0.1:5570"
ENDPOINT_ENV = "NEURAL_STYLE_ENDPOINT"

# A daemon that runs answers ``ping`` in milliseconds (its socket loop never waits on the
# device), so one second of silence already means nothing listens: decide, then start one.
FIRST_PING_TIMEOUT = 1.0
# A fresh daemon imports torch and loads VGG19 (548 MB) before it answers: give it time.
AUTOSTART_TIMEOUT = 120.0

CLIENT_CONFIG_NAME = "neural_style_gimp.json"
CLIENT_CONFIG_FORMAT = 1

# The user service ``install.py --service`` installs (sandboxed GIMP cannot start the daemon).
SYSTEMD_UNIT = "neural-style.service"
LAUNCHD_LABEL = "org.neural-style.daemon"
SERVICE_KINDS = ("systemd", "launchd")

PathLike = Union[str, "os.PathLike[str]"]


def default_endpoint(environ: Optional[Mapping[str, str]] = None) -> str:
    """``$NEURAL_STYLE_ENDPOINT`` when set and non-empty, else ``tcp://127.0.0.1:5570``."""
    env = os.environ if environ is None else environ
    value = env.get(ENDPOINT_ENV, "").strip()
    return value or DEFAULT_ENDPOINT


def resolve_endpoint(endpoint: Optional[str] = None, environ: Optional[Mapping[str, str]] = None) -> str:
    """An explicit endpoint wins; otherwise the default (environment first)."""
    return endpoint.strip() if endpoint and endpoint.strip() else default_endpoint(environ)


@dataclass
class ClientConfig:
    """What ``install.py`` recorded for the plug-in: where the daemon listens and how to start it."""

    endpoint: str = DEFAULT_ENDPOINT
    daemon_command: list[str] = field(default_factory=list)
    autostart: bool = True
    service: Optional[str] = None  # "systemd" or "launchd" when install.py --service installed one
    path: Optional[str] = None  # the file it was read from (None: defaults)
    problem: Optional[str] = None  # why the file could not be used, when it could not

    def to_json(self) -> dict[str, Any]:
        data: dict[str, Any] = {"format": CLIENT_CONFIG_FORMAT, "endpoint": self.endpoint,
                                "daemon_command": list(self.daemon_command), "autostart": bool(self.autostart)}
        if self.service:
            data["service"] = self.service
        return data

    def dumps(self) -> str:
        """The file's exact text (install.py compares it to skip rewriting an unchanged file)."""
        return json.dumps(self.to_json(), indent=2) + "\n"


def client_config_path(folder: PathLike) -> Path:
    return Path(folder) / CLIENT_CONFIG_NAME


def read_client_config(folder: PathLike, environ: Optional[Mapping[str, str]] = None) -> ClientConfig:
    """The configuration in ``folder``; a missing or broken file gives the defaults plus ``problem``."""
    path = client_config_path(folder)
    config = ClientConfig()
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        if not isinstance(data, dict):
            raise ValueError("not a JSON object")
        endpoint = data.get("endpoint", DEFAULT_ENDPOINT)
        command = data.get("daemon_command", [])
        autostart = data.get("autostart", True)
        service = data.get("service")
        if not isinstance(endpoint, str) or not isinstance(command, list) \
                or not all(isinstance(c, str) for c in command) or not isinstance(autostart, bool) \
                or service not in (None, *SERVICE_KINDS):
            raise ValueError("endpoint must be a string, daemon_command a list of strings, autostart true or "
                             f"false, service one of {', '.join(SERVICE_KINDS)}")
        config = ClientConfig(endpoint=endpoint, daemon_command=command, autostart=autostart, service=service,
                              path=str(path))
    except FileNotFoundError:
        config.problem = f"{path} is missing (run install.py again)"
    except (OSError, ValueError) as exc:
        config.problem = f"{path} could not be read ({exc}); run install.py again"
    env = os.environ if environ is None else environ
    if env.get(ENDPOINT_ENV, "").strip():
        config.endpoint = env[ENDPOINT_ENV].strip()
    return config


def write_client_config(folder: PathLike, config: ClientConfig) -> Path:
    """Write ``config`` into ``folder`` atomically (a reader never sees half a file)."""
    path = client_config_path(folder)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(config.dumps(), encoding="utf-8")
    os.replace(tmp, path)
    return path


def serve_command(program: Sequence[str], *, bind: Optional[str] = None, weights: Optional[str] = None,
                  weights_format: Optional[str] = None, device: Optional[str] = None) -> list[str]:
    """A daemon's command line: ``program`` (``[".../neural-style", "serve"]``, ``[python, "-m",
    "neural_style.daemon.cli", "serve"]``) with the options given; the one place that spells them for
    whoever records or starts a daemon (the CLI's autostart, install.py's record, the tests' daemons)."""
    options = (("--bind", bind), ("--weights", weights), ("--weights-format", weights_format), ("--device", device))
    return [*program, *(word for flag, value in options if value for word in (flag, str(value)))]


def service_start_command(kind: str) -> str:
    """The host command that starts the installed user service now (and at every login)."""
    if kind == "launchd":
        return f"launchctl kickstart gui/$(id -u)/{LAUNCHD_LABEL}"
    return f"systemctl --user enable --now {SYSTEMD_UNIT}"
