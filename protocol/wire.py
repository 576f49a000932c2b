"""Framing of protocol v1: a msgpack header in frame 0, raw payload frames after it.

Both ends use this module, so the framing is written once. It knows nothing about
message types beyond the three fields every header carries (``v``, ``type``, ``id``);
``messages.py`` gives the types their fields.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Union

import msgpack

from .errors import ErrorCode, ProtocolError, quote

PROTOCOL_VERSION = 1
MAX_HEADER_BYTES = 1 << 20  # a header is metadata only; images travel in payload frames
MAX_ID_LENGTH = 256

Buffer = Union[bytes, bytearray, memoryview]


@dataclass
class Envelope:
    """A decoded multipart message: the header map and the payload frames after it.

    ``payloads[0]`` is frame 1 on the wire (frame indices in headers count the header).
    """

    header: dict[str, Any]
    payloads: list[Buffer] = field(default_factory=list)

    @property
    def type(self) -> str:
        return self.header["type"]

    @property
    def id(self) -> str:
        return self.header["id"]

    def frame(self, index: int) -> Buffer:
        """The payload at wire frame ``index`` (1 = first frame after the header)."""
        if not 1 <= index <= len(self.payloads):
            raise ProtocolError(
                ErrorCode.BAD_REQUEST,
                f"frame index {index} out of range (message has {len(self.payloads)} payload frames)",
                self.header.get("id") if isinstance(self.header.get("id"), str) else None,
            )
        return self.payloads[index - 1]


def pack_header(header: Mapping[str, Any]) -> bytes:
    """msgpack a header map (str as str type, bytes as bin type)."""
    return msgpack.packb(dict(header), use_bin_type=True)


def encode(header: Mapping[str, Any], payloads: Sequence[Buffer] = ()) -> list[Buffer]:
    """Build the frames of one message; ``"v"`` is filled in when missing.

    The header must name a ``type`` and a string ``id``; payloads are passed through
    uncopied so large images can go to ``send_multipart(..., copy=False)``.
    """
    full = {"v": PROTOCOL_VERSION, **header}
    if not isinstance(full.get("type"), str) or not isinstance(full.get("id"), str):
        raise ValueError("a header needs a string 'type' and a string 'id'")
    return [pack_header(full), *payloads]


def _as_buffer(frame: Any) -> Buffer:
    if isinstance(frame, (bytes, bytearray, memoryview)):
        return frame
    buf = getattr(frame, "buffer", None)  # zmq.Frame received with copy=False
    if buf is not None:
        return buf
    return memoryview(frame)


def peek_id(header_frame: Any) -> str | None:
    """Best-effort id of a message whose header may be invalid (to address an error reply)."""
    try:
        header = msgpack.unpackb(bytes(_as_buffer(header_frame)[:MAX_HEADER_BYTES]), raw=False)
    except Exception:
        return None
    if isinstance(header, dict) and isinstance(header.get("id"), str):
        ident = header["id"]
        return ident if len(ident) <= MAX_ID_LENGTH else None
    return None


def decode(frames: Sequence[Any], *, max_header_bytes: int = MAX_HEADER_BYTES,
           allow_empty_id: bool = False) -> Envelope:
    """Parse and check the framing of one message (routing frames already stripped).

    Raises ProtocolError: ``bad_request`` for anything malformed, ``too_large`` for an
    oversized header, ``unsupported_version`` when ``v`` is not 1. ``allow_empty_id`` is
    for replies: the daemon answers an unreadable request with ``"id": ""``.
    """
    if not frames:
        raise ProtocolError(ErrorCode.BAD_REQUEST, "empty message: frame 0 must be a msgpack header")
    raw = _as_buffer(frames[0])
    if len(raw) > max_header_bytes:
        raise ProtocolError(ErrorCode.TOO_LARGE,
                            f"header is {len(raw)} bytes, the limit is {max_header_bytes}", peek_id(raw))
    if len(raw) == 0:
        raise ProtocolError(ErrorCode.BAD_REQUEST, "frame 0 is empty (a DEALER sends no delimiter frame)")
    try:
        header = msgpack.unpackb(raw, raw=False, strict_map_key=True)
    except Exception as exc:  # msgpack raises several types: ExtraData, ValueError, UnicodeDecodeError...
        raise ProtocolError(ErrorCode.BAD_REQUEST, f"frame 0 is not valid msgpack: {exc}") from None
    if not isinstance(header, dict):
        raise ProtocolError(ErrorCode.BAD_REQUEST, f"frame 0 must be a msgpack map, got {type(header).__name__}")
    if not all(isinstance(k, str) for k in header):
        raise ProtocolError(ErrorCode.BAD_REQUEST, "header keys must be strings")
    ident = header.get("id")
    if not isinstance(ident, str):
        raise ProtocolError(ErrorCode.BAD_REQUEST, "header 'id' must be a string")
    if len(ident) > MAX_ID_LENGTH:
        raise ProtocolError(ErrorCode.BAD_REQUEST, f"header 'id' is longer than {MAX_ID_LENGTH} characters")
    if not ident and not allow_empty_id:
        raise ProtocolError(ErrorCode.BAD_REQUEST, "header 'id' must not be empty")
    version = header.get("v")
    if "v" not in header:
        raise ProtocolError(ErrorCode.BAD_REQUEST, "header has no 'v' (protocol version)", ident)
    if isinstance(version, bool) or version != PROTOCOL_VERSION:
        raise ProtocolError(ErrorCode.UNSUPPORTED_VERSION,
                            f"protocol version {quote(version)} is not supported; this end speaks {PROTOCOL_VERSION}",
                            ident)
    if not isinstance(header.get("type"), str) or not header["type"]:
        raise ProtocolError(ErrorCode.BAD_REQUEST, "header 'type' must be a non-empty string", ident)
    return Envelope(header, [_as_buffer(f) for f in frames[1:]])
