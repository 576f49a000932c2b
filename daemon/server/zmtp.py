"""ZMTP 3.1 framing, without I/O (RFC 23/ZMTP 3.0 and RFC 37/ZMTP 3.1): the greeting, frame
headers, commands and their metadata, as the daemon's own front door (``front.py``) speaks them.

Why a module of its own: the front counts a message's frames and bytes as they arrive, which
libzmq cannot be asked to do (PROTOCOL.md section 9), so the daemon parses the wire itself.
Everything here is a pure function of bytes; the security mechanisms' handshakes are beside it
(NULL in ``front.py``, CURVE in ``curvezmq.py``).
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = [
    "COMMAND", "GREETING_SIZE", "LONG", "MORE", "ZmtpError", "command", "frame_header", "greeting",
    "parse_command", "parse_greeting", "parse_metadata", "metadata", "ping_reply", "socket_type_allowed",
]

GREETING_SIZE = 64
MORE, LONG, COMMAND = 0x01, 0x02, 0x04  # a frame's flags (RFC 23, "Framing"); bits 3-7 are reserved
SHORT_MAX = 255
MECHANISMS = ("NULL", "CURVE")
#: The peers a ROUTER talks to (RFC 28, the socket type compatibility table).
ROUTER_PEERS = frozenset({"DEALER", "REQ", "ROUTER"})
MAX_PING_CONTEXT = 16


class ZmtpError(Exception):
    """The peer broke the protocol: the connection is closed (after an ERROR command when one is allowed)."""


@dataclass(frozen=True)
class Greeting:
    major: int
    minor: int
    mechanism: str
    as_server: bool


def greeting(mechanism: str, *, as_server: bool) -> bytes:
    """Our 64-byte greeting: signature, version 3.1, the mechanism, as-server, filler."""
    return (b"\xff" + bytes(8) + b"\x7f" + bytes([3, 1]) + mechanism.encode("ascii").ljust(20, b"\x00")
            + bytes([1 if as_server else 0]) + bytes(31))


def parse_greeting(data: bytes) -> Greeting:
    """The peer's greeting; ZmtpError for a signature, version or mechanism we do not speak."""
    if len(data) != GREETING_SIZE or data[0] != 0xFF or not data[9] & 0x01:
        raise ZmtpError("not a ZMTP greeting")
    major, minor = data[10], data[11]
    if major < 3:
        raise ZmtpError(f"ZMTP {major}.{minor} is not supported (3.0 or later)")
    mechanism = data[12:32].rstrip(b"\x00").decode("ascii", "replace")
    if mechanism not in MECHANISMS:
        raise ZmtpError(f"unknown security mechanism {mechanism!r}")
    return Greeting(major, minor, mechanism, bool(data[32]))


def frame_header(flags: int, size: int) -> bytes:
    """The flags byte and the size (one octet up to 255, else eight, network order)."""
    if size > SHORT_MAX:
        return bytes([flags | LONG]) + size.to_bytes(8, "big")
    return bytes([flags, size])


def command(name: bytes, data: bytes = b"") -> bytes:
    """A whole command frame: header, name length, name, data."""
    body = bytes([len(name)]) + name + data
    return frame_header(COMMAND, len(body)) + body


def parse_command(body: bytes) -> tuple[bytes, bytes]:
    """A command frame's (name, data)."""
    if not body or len(body) < 1 + body[0] or body[0] == 0:
        raise ZmtpError("malformed command")
    size = body[0]
    return bytes(body[1:1 + size]), bytes(body[1 + size:])


def metadata(properties: dict[str, bytes]) -> bytes:
    """Metadata as READY and INITIATE carry it: name length (1), name, value length (4), value."""
    out = bytearray()
    for name, value in properties.items():
        raw = name.encode("ascii")
        out += bytes([len(raw)]) + raw + len(value).to_bytes(4, "big") + value
    return bytes(out)


def parse_metadata(data: bytes) -> dict[str, bytes]:
    """Metadata's properties, names lower-cased (RFC 23: names are case-insensitive)."""
    props: dict[str, bytes] = {}
    i = 0
    while i < len(data):
        size = data[i]
        if size == 0 or i + 1 + size + 4 > len(data):
            raise ZmtpError("malformed metadata")
        name = data[i + 1:i + 1 + size].decode("ascii", "replace").lower()
        i += 1 + size
        value_size = int.from_bytes(data[i:i + 4], "big")
        i += 4
        if i + value_size > len(data):
            raise ZmtpError("malformed metadata")
        props[name] = bytes(data[i:i + value_size])
        i += value_size
    return props


def socket_type_allowed(props: dict[str, bytes]) -> None:
    """ZmtpError unless the peer's Socket-Type may talk to our ROUTER."""
    kind = props.get("socket-type", b"").decode("ascii", "replace")
    if kind not in ROUTER_PEERS:
        raise ZmtpError(f"a ROUTER does not talk to a {kind or 'nameless'} socket")


def ping_reply(data: bytes) -> tuple[float, bytes]:
    """A PING's TTL in seconds (0: none asked) and the PONG's data (the PING's context, RFC 37)."""
    if len(data) < 2 or len(data) > 2 + MAX_PING_CONTEXT:
        raise ZmtpError("malformed PING")
    return int.from_bytes(data[:2], "big") / 10, data[2:]
