"""The front's CurveZMQ server (``daemon/server/curvezmq.py``) against a client written here from RFC 26.

Real libzmq clients run whole jobs through it in tests/test_server_front.py; this unit test covers
what a libzmq client never sends: a replayed nonce, a tampered box, a vouch for another server, a
client key not in the folder.
"""

from __future__ import annotations

import pytest
from nacl import bindings as sodium

from neural_style.daemon.server.curvezmq import CurveServerKeys, CurveSession
from neural_style.daemon.server.zmtp import ZmtpError, metadata, parse_command, parse_metadata


class Client:
    """The client side of RFC 26, step by step."""

    def __init__(self, server_public: bytes) -> None:
        self.server_public = server_public
        self.public, self.secret = sodium.crypto_box_keypair()
        self.transient_public, self.transient_secret = sodium.crypto_box_keypair()
        self.nonce = 0
        self.shared = b""

    def _short(self) -> bytes:
        self.nonce += 1
        return self.nonce.to_bytes(8, "big")

    def hello(self) -> bytes:
        nonce = self._short()
        box = sodium.crypto_box_easy(bytes(64), b"CurveZMQHELLO---" + nonce, self.server_public,
                                     self.transient_secret)
        return b"\x05HELLO" + b"\x01\x00" + bytes(72) + self.transient_public + nonce + box

    def initiate(self, welcome: bytes, *, vouch_for: bytes | None = None, socket_type: bytes = b"DEALER") -> bytes:
        name, data = parse_command(welcome)
        assert name == b"WELCOME"
        plain = sodium.crypto_box_open_easy(data[16:], b"WELCOME-" + data[:16], self.server_public,
                                            self.transient_secret)
        server_transient, cookie = plain[:32], plain[32:]
        self.shared = sodium.crypto_box_beforenm(server_transient, self.transient_secret)
        vouch_nonce = bytes(range(16))
        vouch = vouch_nonce + sodium.crypto_box_easy(self.transient_public + (vouch_for or self.server_public),
                                                     b"VOUCH---" + vouch_nonce, server_transient, self.secret)
        nonce = self._short()
        box = sodium.crypto_box_easy_afternm(self.public + vouch + metadata({"Socket-Type": socket_type}),
                                             b"CurveZMQINITIATE" + nonce, self.shared)
        return b"\x08INITIATE" + cookie + nonce + box

    def open_ready(self, ready: bytes) -> dict[str, bytes]:
        name, data = parse_command(ready)
        assert name == b"READY"
        return parse_metadata(sodium.crypto_box_open_easy_afternm(data[8:], b"CurveZMQREADY---" + data[:8],
                                                                  self.shared))

    def message(self, flags: int, payload: bytes, nonce: bytes | None = None) -> bytearray:
        nonce = nonce or self._short()
        box = sodium.crypto_box_easy_afternm(bytes([flags]) + payload, b"CurveZMQMESSAGEC" + nonce, self.shared)
        return bytearray(b"\x07MESSAGE" + nonce + box)

    def open_message(self, body: bytes) -> bytes:
        assert body[:8] == b"\x07MESSAGE"
        return sodium.crypto_box_open_easy_afternm(bytes(body[16:]), b"CurveZMQMESSAGES" + bytes(body[8:16]),
                                                   self.shared)


@pytest.fixture
def pair() -> tuple[CurveSession, Client]:
    public, secret = sodium.crypto_box_keypair()
    client = Client(public)
    return CurveSession(CurveServerKeys(public, secret, frozenset({client.public}))), client


def _handshake(session: CurveSession, client: Client) -> None:
    ready = session.initiate(client.initiate(session.hello(client.hello())), b"ROUTER")
    assert client.open_ready(ready) == {"socket-type": b"ROUTER"}


def test_a_client_from_the_folder_is_admitted_and_messages_go_both_ways(pair):
    session, client = pair
    _handshake(session, client)
    assert session.client_key == client.public
    flags, payload = session.open_message(client.message(1, b"header"))
    assert (flags, bytes(payload)) == (1, b"header")
    assert client.open_message(session.seal(0, b"reply")) == b"\x00reply"
    assert client.open_message(session.seal(2, b"\x04PONG")) == b"\x02\x04PONG"  # a command inside the box


def test_a_replayed_nonce_and_a_tampered_box_are_refused(pair):
    session, client = pair
    _handshake(session, client)
    first = client.message(0, b"once")
    session.open_message(bytearray(first))
    with pytest.raises(ZmtpError, match="nonce"):
        session.open_message(bytearray(first))
    tampered = client.message(0, b"data")
    tampered[-1] ^= 1
    with pytest.raises(ZmtpError, match="does not open"):
        session.open_message(tampered)


def test_a_key_not_in_the_folder_a_vouch_for_another_server_and_a_pub_socket_are_refused(pair):
    session, client = pair
    stranger = Client(client.server_public)
    with pytest.raises(ZmtpError, match="not allowed"):
        fresh = CurveSession(session.keys)
        fresh.initiate(stranger.initiate(fresh.hello(stranger.hello())), b"ROUTER")
    other_server, _ = sodium.crypto_box_keypair()
    with pytest.raises(ZmtpError, match="vouch"):
        session.initiate(client.initiate(session.hello(client.hello()), vouch_for=other_server), b"ROUTER")
    again = Client(client.server_public)
    fresh = CurveSession(CurveServerKeys(session.keys.public, session.keys.secret, frozenset({again.public})))
    with pytest.raises(ZmtpError, match="PUB"):
        fresh.initiate(again.initiate(fresh.hello(again.hello()), socket_type=b"PUB"), b"ROUTER")


def test_a_hello_for_another_server_is_refused(pair):
    session, _ = pair
    other, _ = sodium.crypto_box_keypair()
    with pytest.raises(ZmtpError, match="HELLO"):
        session.hello(Client(other).hello())
