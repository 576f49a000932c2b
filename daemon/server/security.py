"""Who may talk to the daemon: loopback by default, CURVE for anything wider.

Why: the daemon runs arbitrary amounts of compute for whoever can reach its
socket.  On loopback (or an ``ipc://`` path) that is the local user.  Any other
address exposes it to the network, so it must be encrypted and authenticated
with CURVE (client public keys allowed from a folder) unless the operator says
``--insecure`` explicitly.

Key folder layout (``--curve-dir DIR``, made by ``python -m
neural_style.daemon.server.security init DIR``)::

    DIR/server.key            the server's public key (give it to clients)
    DIR/server.key_secret     the server's key pair (keep private)
    DIR/clients/*.key         public keys of the clients allowed to connect
"""

from __future__ import annotations

import argparse
import ipaddress
import logging
import socket
import sys
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

import zmq
import zmq.auth
from zmq.auth.thread import ThreadAuthenticator
from zmq.utils import z85

from .curvezmq import CurveServerKeys

__all__ = [
    "SecurityError",
    "SecuritySettings",
    "CurveServer",
    "is_local_endpoint",
    "check_bind_allowed",
    "enable_curve",
    "load_curve_keys",
    "generate_keys",
]

log = logging.getLogger("neural_style.daemon.server.security")

SERVER_SECRET_FILE = "server.key_secret"
SERVER_PUBLIC_FILE = "server.key"
CLIENTS_DIR = "clients"


class SecurityError(RuntimeError):
    """The daemon refuses to start with these security settings (the message says why)."""


@dataclass(frozen=True)
class SecuritySettings:
    """Security options of ``serve``."""

    curve_dir: Path | None = None
    insecure: bool = False


def _endpoint_host(endpoint: str) -> tuple[str, str]:
    """Split ``tcp://host:port`` into (transport, host); other transports give host ''."""
    transport, sep, rest = endpoint.partition("://")
    if not sep:
        raise SecurityError(f"not a ZeroMQ endpoint: {endpoint!r} (expected e.g. tcp://127.0.0.1:5570)")
    transport = transport.lower()
    if transport not in ("tcp", "ipc", "inproc"):
        raise SecurityError(f"unsupported transport {transport!r} in {endpoint!r} (use tcp:// or ipc://)")
    if transport != "tcp":
        return transport, ""
    # urlsplit understands [v6]:port and host:port.
    parts = urlsplit(f"tcp://{rest}")
    host = parts.hostname or ""
    if ";" in rest:  # tcp://source;dest form: judge the bound address
        host = urlsplit("tcp://" + rest.split(";", 1)[1]).hostname or ""
    return transport, host


def is_local_endpoint(endpoint: str) -> bool:
    """True if binding ``endpoint`` exposes the daemon only to this machine.

    ``ipc://`` and ``inproc://`` are local.  ``tcp://`` is local when the host is
    ``localhost`` or an address in the loopback range (127.0.0.0/8, ::1); a
    wildcard (``*``, ``0.0.0.0``, ``::``), an interface name or any other address is not.
    """
    transport, host = _endpoint_host(endpoint)
    if transport in ("ipc", "inproc"):
        return True
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        pass
    if host in ("*", ""):
        return False
    try:  # a host name: local only if every address it resolves to is loopback
        infos = socket.getaddrinfo(host, None)
    except OSError:
        return False
    return bool(infos) and all(ipaddress.ip_address(i[4][0]).is_loopback for i in infos)


def check_bind_allowed(endpoint: str, settings: SecuritySettings) -> None:
    """Raise ``SecurityError`` unless ``endpoint`` may be bound with ``settings``."""
    if is_local_endpoint(endpoint) or settings.curve_dir is not None:
        return
    if settings.insecure:
        log.warning(
            "binding %s WITHOUT encryption or authentication (--insecure): anyone who can "
            "reach this address can use the daemon", endpoint)
        return
    raise SecurityError(
        f"refusing to bind {endpoint}: it is not a loopback address. Use CURVE keys "
        f"(--curve-dir DIR, made with `python -m neural_style.daemon.server.security init DIR`) "
        f"or pass --insecure to allow unauthenticated access from the network")


class CurveServer:
    """A running ZAP authenticator that admits only the client keys in ``DIR/clients``.

    Why a class: the authenticator is a thread that must be stopped before the
    context is terminated; ``close()`` does that.
    """

    def __init__(self, auth: ThreadAuthenticator, public_key: bytes, clients: int) -> None:
        self._auth = auth
        self.public_key = public_key
        self.clients = clients

    def close(self) -> None:
        self._auth.stop()


def _server_keys(curve_dir: Path) -> tuple[bytes, bytes, Path, int]:
    """The server's key pair (Z85), the allowed-clients folder and how many keys it holds; SecurityError
    for a folder that cannot serve CURVE (the message says how to make one)."""
    curve_dir = Path(curve_dir)
    secret_file = curve_dir / SERVER_SECRET_FILE
    clients_dir = curve_dir / CLIENTS_DIR
    if not secret_file.is_file():
        raise SecurityError(
            f"no server key pair at {secret_file} (create one with "
            f"`python -m neural_style.daemon.server.security init {curve_dir}`)")
    if not clients_dir.is_dir():
        raise SecurityError(f"no allowed-clients folder at {clients_dir} (put client *.key files there)")
    try:
        public, secret = zmq.auth.load_certificate(secret_file)
    except (OSError, ValueError) as exc:
        raise SecurityError(f"cannot read the server key pair {secret_file}: {exc}") from None
    if not secret:
        raise SecurityError(f"{secret_file} holds no secret key")
    clients = len(list(clients_dir.glob("*.key")))
    if clients == 0:
        log.warning("CURVE: %s holds no client keys yet; nobody can connect", clients_dir)
    log.info("CURVE on: server key %s, %d allowed client key(s) in %s",
             public.decode("ascii"), clients, clients_dir)
    return public, secret, clients_dir, clients


def enable_curve(ctx: zmq.Context, sock: zmq.Socket, curve_dir: Path) -> CurveServer:
    """Make ``sock`` (not yet bound) a CURVE server; start the authenticator on ``ctx``."""
    public, secret, clients_dir, clients = _server_keys(curve_dir)
    auth = ThreadAuthenticator(ctx, log=logging.getLogger("neural_style.daemon.server.zap"))
    auth.start()
    auth.configure_curve(domain="*", location=str(clients_dir))
    sock.curve_secretkey = secret
    sock.curve_publickey = public
    sock.curve_server = True
    return CurveServer(auth, public, clients)


def load_curve_keys(curve_dir: Path) -> CurveServerKeys:
    """The keys of the daemon's own CURVE server (``front.py``): the same folder, read once at start
    as the authenticator reads it, the keys decoded from Z85 to their 32 bytes."""
    public, secret, clients_dir, _ = _server_keys(curve_dir)
    try:
        allowed = frozenset(z85.decode(key) for key in zmq.auth.load_certificates(clients_dir))
    except (OSError, ValueError) as exc:
        raise SecurityError(f"cannot read the allowed client keys in {clients_dir}: {exc}") from None
    return CurveServerKeys(z85.decode(public), z85.decode(secret), allowed)


def generate_keys(curve_dir: Path, client_name: str = "client") -> tuple[Path, Path]:
    """Create a server key pair and one client key pair in ``curve_dir``.

    Returns (server public key file, client secret key file).  The client's public
    key is placed in ``clients/`` so that it is allowed at once.  Existing server keys
    are kept (running it twice is harmless).
    """
    curve_dir = Path(curve_dir)
    clients_dir = curve_dir / CLIENTS_DIR
    private_dir = curve_dir / "client_secrets"
    for d in (curve_dir, clients_dir, private_dir):
        d.mkdir(parents=True, exist_ok=True)
    if not (curve_dir / SERVER_SECRET_FILE).exists():
        zmq.auth.create_certificates(curve_dir, "server")
    if not (private_dir / f"{client_name}.key_secret").exists():
        pub, _secret = zmq.auth.create_certificates(private_dir, client_name)
        (clients_dir / f"{client_name}.key").write_bytes(Path(pub).read_bytes())
    return curve_dir / SERVER_PUBLIC_FILE, private_dir / f"{client_name}.key_secret"


def _main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m neural_style.daemon.server.security",
        description="Create CURVE keys for a daemon that listens beyond loopback.")
    sub = parser.add_subparsers(dest="command", required=True)
    init = sub.add_parser("init", help="create DIR/server.key(_secret) and an allowed client key pair")
    init.add_argument("dir", type=Path)
    init.add_argument("--client", default="client", help="name of the client key pair (default: client)")
    args = parser.parse_args(argv)
    server_pub, client_secret = generate_keys(args.dir, args.client)
    print(f"server public key: {server_pub}\nclient key pair:   {client_secret}\n"
          f"start the daemon with: neural-style serve --bind tcp://0.0.0.0:5570 --curve-dir {args.dir}")
    return 0


if __name__ == "__main__":
    sys.exit(_main())
