"""Where the daemon listens: one default shared by the daemon, the CLI and the plug-in."""

from __future__ import annotations

import os
from typing import Mapping, Optional

DEFAULT_ENDPOINT = "tcp://127.0.0.1:5570"
ENDPOINT_ENV = "NEURAL_STYLE_ENDPOINT"
_LOOPBACK_HOSTS = ("127.", "localhost", "[::1]", "::1")


def default_endpoint(environ: Optional[Mapping[str, str]] = None) -> str:
    """``$NEURAL_STYLE_ENDPOINT`` when set and non-empty, else ``tcp://127.0.0.1:5570``."""
    env = os.environ if environ is None else environ
    value = env.get(ENDPOINT_ENV, "").strip()
    return value or DEFAULT_ENDPOINT


def resolve_endpoint(endpoint: Optional[str] = None) -> str:
    """An explicit endpoint wins; otherwise the default (environment first)."""
    return endpoint.strip() if endpoint and endpoint.strip() else default_endpoint()


def is_local(endpoint: str) -> bool:
    """True for ipc://, inproc:// and tcp:// on a loopback address (no CURVE needed there)."""
    scheme, _, rest = endpoint.partition("://")
    if scheme in ("ipc", "inproc"):
        return True
    if scheme != "tcp":
        return False
    host = rest.rsplit(":", 1)[0] if not rest.startswith("[") else rest[: rest.find("]") + 1]
    return host.startswith(_LOOPBACK_HOSTS)
