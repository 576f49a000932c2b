"""The CurveZMQ server side (RFC 26), without I/O: HELLO → WELCOME, INITIATE → READY, then MESSAGE boxes.

Why the daemon does it itself: under CURVE a frame's MORE flag is inside the box, so only the
endpoint that decrypts can count a message's frames as they arrive (PROTOCOL.md section 9);
``front.py`` is that endpoint.  The cryptography is libsodium's (PyNaCl's bindings); this module
is the protocol around it, step by step as RFC 26 and libzmq's ``curve_server.cpp`` do it:

* HELLO: version 1.0, 72 bytes of padding, the client's transient key C', a short nonce and a
  box of 64 zero bytes from C' to our long-term key S (proving the client knows S);
* WELCOME: a long nonce and a box from S to C' holding our transient key S' and a cookie (C' and s'
  in a secret box only we can open; we keep the state per connection, and check the cookie all
  the same);
* INITIATE: the cookie, then a box from C' to S' holding the client's long-term key C, a vouch (a
  box from C to S' holding C' and S: the long-term key owns the transient one) and metadata; C must
  be one of the allowed keys;
* READY, and every MESSAGE after: boxes between the transient keys whose short nonces only grow.
"""

from __future__ import annotations

import hmac
import os
from dataclasses import dataclass, field

from nacl import bindings as sodium
from nacl._sodium import ffi, lib  # type: ignore[import-not-found]  # in-place boxes for MESSAGE (no copy per frame)
from nacl.exceptions import CryptoError

from .zmtp import ZmtpError, metadata, parse_command, parse_metadata, socket_type_allowed

__all__ = ["CurveServerKeys", "CurveSession"]

KEY = 32
MAC = 16
HELLO_SIZE = 200 - 6  # the command's data, its name excluded: 2 + 72 + 32 + 8 + 80
INITIATE_MIN = 257 - 9  # 96 + 8 + (32 + 96 + 16): a box holding C and the vouch, no metadata
MESSAGE_OVERHEAD = 1 + 7 + 8 + MAC + 1  # name length, "MESSAGE", short nonce, MAC, the flags byte


@dataclass(frozen=True)
class CurveServerKeys:
    """The server's long-term key pair and the client keys it admits (``security.load_curve_keys``)."""

    public: bytes
    secret: bytes
    allowed: frozenset[bytes]


@dataclass
class CurveSession:
    """One connection's CURVE state; ``hello``, ``initiate``, then ``open_message`` / ``seal``."""

    keys: CurveServerKeys
    client_transient: bytes = b""
    client_key: bytes = b""  # C, once INITIATE proved it
    _transient_secret: bytes = b""
    _cookie_key: bytes = field(default_factory=lambda: os.urandom(KEY))
    _shared: bytes = b""  # the precomputed key between s' and C'
    _peer_nonce: int = 0  # the last short nonce the client used
    _nonce: int = 0  # ours

    def hello(self, body: bytes) -> bytes:
        """The WELCOME command's data for a HELLO command's (name included in ``body``)."""
        name, data = parse_command(body)
        if name != b"HELLO" or len(data) != HELLO_SIZE:
            raise ZmtpError("expected a HELLO of 200 bytes")
        if data[:2] != b"\x01\x00":
            raise ZmtpError(f"CurveZMQ {data[0]}.{data[1]} is not supported (1.0)")
        self.client_transient = bytes(data[74:106])
        nonce = bytes(data[106:114])
        self._check_nonce(nonce)
        try:
            zeros = sodium.crypto_box_open_easy(bytes(data[114:194]), b"CurveZMQHELLO---" + nonce,
                                                self.client_transient, self.keys.secret)
        except CryptoError:
            raise ZmtpError("HELLO's signature box does not open") from None
        if not hmac.compare_digest(zeros, bytes(64)):
            raise ZmtpError("HELLO's signature box is not 64 zero bytes")
        transient_public, self._transient_secret = sodium.crypto_box_keypair()
        cookie_nonce = os.urandom(16)
        cookie = cookie_nonce + sodium.crypto_secretbox_easy(
            self.client_transient + self._transient_secret, b"COOKIE--" + cookie_nonce, self._cookie_key)
        welcome_nonce = os.urandom(16)
        box = sodium.crypto_box_easy(transient_public + cookie, b"WELCOME-" + welcome_nonce,
                                     self.client_transient, self.keys.secret)
        return b"\x07WELCOME" + welcome_nonce + box

    def initiate(self, body: bytes, socket_type: bytes) -> bytes:
        """The READY command's data for an INITIATE command's; ZmtpError for a client not admitted."""
        name, data = parse_command(body)
        if name != b"INITIATE" or len(data) < INITIATE_MIN:
            raise ZmtpError("expected an INITIATE")
        cookie, nonce, box = bytes(data[:96]), bytes(data[96:104]), bytes(data[104:])
        try:
            plain = sodium.crypto_secretbox_open_easy(cookie[16:], b"COOKIE--" + cookie[:16], self._cookie_key)
        except CryptoError:
            raise ZmtpError("INITIATE's cookie does not open") from None
        if not hmac.compare_digest(plain, self.client_transient + self._transient_secret):
            raise ZmtpError("INITIATE's cookie is not this connection's")
        self._check_nonce(nonce)
        self._shared = sodium.crypto_box_beforenm(self.client_transient, self._transient_secret)
        try:
            inner = sodium.crypto_box_open_easy_afternm(box, b"CurveZMQINITIATE" + nonce, self._shared)
        except CryptoError:
            raise ZmtpError("INITIATE's box does not open") from None
        client_key, vouch_nonce, vouch = inner[:KEY], inner[KEY:KEY + 16], inner[KEY + 16:KEY + 96]
        try:
            vouched = sodium.crypto_box_open_easy(vouch, b"VOUCH---" + vouch_nonce, client_key,
                                                  self._transient_secret)
        except CryptoError:
            raise ZmtpError("INITIATE's vouch does not open") from None
        if not hmac.compare_digest(vouched, self.client_transient + self.keys.public):
            raise ZmtpError("INITIATE's vouch is not for this connection")
        props = parse_metadata(inner[KEY + 96:])
        socket_type_allowed(props)
        if client_key not in self.keys.allowed:
            raise ZmtpError("the client key is not allowed")
        self.client_key = client_key
        return b"\x05READY" + self._box(metadata({"Socket-Type": socket_type}), b"CurveZMQREADY---")

    def open_message(self, body: bytearray) -> tuple[int, memoryview]:
        """A MESSAGE command's (flags, payload), opened in place (the payload is a view into ``body``,
        no copy: a frame costs its own size once); flags bit 0 MORE, bit 1 COMMAND (libzmq's PINGs)."""
        if len(body) < MESSAGE_OVERHEAD or body[:8] != b"\x07MESSAGE":
            raise ZmtpError("expected a MESSAGE")
        nonce = bytes(body[8:16])
        self._check_nonce(nonce)
        size = len(body) - 16 - MAC
        box = ffi.from_buffer(body)
        # libsodium's _easy functions allow the message and the box to overlap (in-place processing)
        if lib.crypto_box_open_easy_afternm(box + 16, box + 16, size + MAC, b"CurveZMQMESSAGEC" + nonce,
                                            self._shared) != 0:
            raise ZmtpError("a MESSAGE's box does not open")
        view = memoryview(body)
        return body[16], view[17:16 + size]

    def seal(self, flags: int, payload: bytes | memoryview) -> bytearray:
        """A MESSAGE command's body (name included) carrying one frame to the client: the payload is
        copied once, into the box, and encrypted there."""
        self._nonce += 1
        nonce = self._nonce.to_bytes(8, "big")
        size = 1 + len(payload)
        out = bytearray(16 + MAC + size)
        out[:16] = b"\x07MESSAGE" + nonce
        out[16 + MAC] = flags
        out[17 + MAC:] = payload
        box = ffi.from_buffer(out)
        if lib.crypto_box_easy_afternm(box + 16, box + 16 + MAC, size, b"CurveZMQMESSAGES" + nonce,
                                       self._shared) != 0:  # pragma: no cover - it fails only for bad keys
            raise ZmtpError("cannot seal a MESSAGE")
        return out

    def _box(self, plain: bytes, prefix: bytes) -> bytes:
        self._nonce += 1
        nonce = self._nonce.to_bytes(8, "big")
        return nonce + sodium.crypto_box_easy_afternm(plain, prefix + nonce, self._shared)

    def _check_nonce(self, nonce: bytes) -> None:
        """Short nonces only grow (RFC 26: a repeated nonce is a replay)."""
        value = int.from_bytes(nonce, "big")
        if value <= self._peer_nonce:
            raise ZmtpError("a short nonce did not grow")
        self._peer_nonce = value
