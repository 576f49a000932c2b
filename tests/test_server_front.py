"""The daemon's own ZMTP front on tcp (``serve --front``, issue 16): real daemons, real libzmq clients (NULL
and CURVE with the key folder), and a hand-written ZMTP peer for what libzmq never does.

Each daemon here has a 1 MiB message limit, two styles, four connections at most and a 1 s handshake
timeout.  The memory a hostile peer costs is asserted only as "far below what it sent" (the front holds
one bounded message per peer; libzmq held all of it, PROTOCOL.md section 9); the figures are in
bench/abuse_bench.py.
"""

from __future__ import annotations

import threading
import time
from pathlib import Path

import msgpack
import pytest
import zmq
from server_fixtures import ENDLESS, FAST, RawClient, png_bytes, start_curve_daemon, start_daemon
from zmtp_peer import ZmtpPeer

from neural_style.daemon.server.main import ServerConfig
from neural_style.protocol import Client, ImageData, Progress, Result
from neural_style.protocol.client import CurveKeys

MiB = 1 << 20
LIMIT_ARGS = ("--max-message-mb", "1", "--max-styles", "2", "--max-connections", "4", "--handshake-timeout", "1")


@pytest.fixture(scope="module")
def daemon(tmp_path_factory):
    d = start_daemon(tmp_path_factory.mktemp("front"), *LIMIT_ARGS)  # tcp://127.0.0.1: the front by default
    yield d
    assert d.stop() == 0


@pytest.fixture(scope="module")
def curve_daemon(tmp_path_factory):
    d = start_curve_daemon(tmp_path_factory.mktemp("front-curve"), *LIMIT_ARGS)
    with Client(d.endpoint, timeout=60, curve=CurveKeys(*d.curve)) as client:
        _wait_loaded(client)  # before any memory is measured: loading the model grows the daemon by 100s of MB
    yield d
    assert d.stop() == 0


def _rss(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise AssertionError("no VmRSS")


class PeakRss:
    """The daemon's resident memory above where it started, sampled every 10 ms while the block runs."""

    def __init__(self, pid: int) -> None:
        self.pid, self.base, self.peak = pid, _rss(pid), 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)

    def _sample(self) -> None:
        while not self._stop.wait(0.01):
            self.peak = max(self.peak, _rss(self.pid) - self.base)

    def __enter__(self) -> PeakRss:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


def _job_through(client: Client) -> tuple[int, Result]:
    """A previewed job with the project's client: how many previews came, and the result."""
    previews, result = 0, None
    for message in client.stylize(ImageData.png(png_bytes(40, 32, 1)), [ImageData.png(png_bytes(32, 32, 2))],
                                  {**FAST, "iterations": 6, "progress_every": 2, "preview": True}):
        if isinstance(message, Progress) and message.image is not None:
            previews += 1
        if isinstance(message, Result):
            result = message
    assert result is not None
    return previews, result


def _wait_loaded(client: Client) -> None:
    deadline = time.monotonic() + 60
    while not client.ping().weights_loaded:
        assert time.monotonic() < deadline, "the model never loaded"
        time.sleep(0.1)


# ------------------------------------------------------------------ real clients, full jobs
def test_a_real_client_runs_a_full_job_through_the_front(daemon):
    with Client(daemon.endpoint, timeout=60) as client:
        _wait_loaded(client)
        previews, result = _job_through(client)
    assert previews >= 2 and (result.image.width, result.image.height) == (32, 26)  # size 32
    assert "the daemon's own ZMTP front" in daemon.log()


def test_a_curve_client_with_a_key_from_the_folder_runs_a_full_job_and_a_stranger_gets_nothing(curve_daemon):
    server_public, public, secret = curve_daemon.curve
    with Client(curve_daemon.endpoint, timeout=60, curve=CurveKeys(server_public, public, secret)) as client:
        previews, result = _job_through(client)
    assert previews >= 2 and (result.image.width, result.image.height) == (32, 26)  # size 32
    stranger_public, stranger_secret = zmq.curve_keypair()
    with RawClient(curve_daemon.endpoint, curve=(server_public, stranger_public, stranger_secret)) as stranger:
        stranger.send({"type": "ping", "id": "s"})
        assert stranger.recv_for("s", timeout=2.0, missing_ok=True) is None
    with RawClient(curve_daemon.endpoint) as plain:  # NULL against a CURVE front
        plain.send({"type": "ping", "id": "plain"})
        assert plain.recv_for("plain", timeout=2.0, missing_ok=True) is None
    assert "not allowed" in curve_daemon.log()


def test_a_curve_peer_sending_a_huge_multipart_message_is_bounded_and_told_too_large(curve_daemon):
    """Under CURVE the MORE flag is inside the box: only the front, which opens it, can count. A libzmq
    client's 48 MiB in 48 frames, over both bounds (1 MiB, 6 frames): the daemon holds a bounded part."""
    with RawClient(curve_daemon.endpoint, curve=curve_daemon.curve) as bad, PeakRss(curve_daemon.process.pid) as rss:
        bad.send_frames([msgpack.packb({"v": 1, "type": "ping", "id": "huge"}), *[bytes(MiB)] * 48])
        reply = bad.recv_for("huge", timeout=60)
    assert reply is not None and reply[0]["code"] == "too_large"
    assert rss.peak < 16 * MiB, f"the daemon grew by {rss.peak / MiB:.1f} MiB for a 48 MiB message"
    with RawClient(curve_daemon.endpoint, curve=curve_daemon.curve) as client:
        assert client.request({"type": "ping", "id": "after"})["type"] == "pong"


# ------------------------------------------------------------------ the hostile multipart peer
def test_a_multipart_message_over_the_bound_is_dropped_as_it_arrives_and_answered_at_its_end(daemon):
    """96 MiB in 192 frames of 512 KiB (each under the per-frame ceiling), over both bounds (1 MiB, 6
    frames): libzmq held all of it; the front keeps the header, drops the rest as it comes, answers ``too_large`` with
    the id at the end, and the connection is served after."""
    peer = ZmtpPeer(daemon.endpoint)
    try:
        with PeakRss(daemon.process.pid) as rss:
            peer.frame(msgpack.packb({"v": 1, "type": "ping", "id": "open"}), more=True)
            for _ in range(192):
                peer.frame(bytes(MiB // 2), more=True)
            peer.frame(b"end", more=False)
            reply = msgpack.unpackb(peer.read_message()[0])
        assert (reply["type"], reply["id"], reply["code"]) == ("error", "open", "too_large")
        assert rss.peak < 16 * MiB, f"the daemon grew by {rss.peak / MiB:.1f} MiB for a 96 MiB message"
        peer.frame(msgpack.packb({"v": 1, "type": "ping", "id": "after"}), more=False)
        assert msgpack.unpackb(peer.read_message()[0])["type"] == "pong"
    finally:
        peer.close()


def test_a_frame_over_the_ceiling_cuts_the_peer_and_others_are_served(daemon):
    peer = ZmtpPeer(daemon.endpoint)
    try:
        peer.sock.sendall(b"\x02" + (2 * MiB + 1).to_bytes(8, "big") + bytes(1024))  # announced, never sent
        assert peer.closed(5), "the front kept a peer announcing a frame over its ceiling"
    finally:
        peer.close()
    with RawClient(daemon.endpoint) as client:
        assert client.request({"type": "ping", "id": "ok"})["type"] == "pong"


# ------------------------------------------------------------------ heartbeats, handshakes, connections
def _closed_when_silent(peer: ZmtpPeer, what: str) -> None:
    """The front closes ``peer`` within 5 s of silence, and not before the 1 s it was given."""
    try:
        started = time.monotonic()
        assert peer.closed(5), f"{what} was kept"
        assert time.monotonic() - started >= 0.9, f"{what} was closed too soon"
    finally:
        peer.close()


def test_a_ping_gets_its_pong_and_a_peer_silent_past_its_ttl_is_closed(daemon):
    peer = ZmtpPeer(daemon.endpoint)
    peer.command(b"\x04PING" + (10).to_bytes(2, "big") + b"ctx-1")  # TTL 1.0 s
    flags, body = peer.read_frame()
    assert flags & 4 and body == b"\x04PONG" + b"ctx-1"
    _closed_when_silent(peer, "a peer silent past its TTL")


def test_a_peer_that_never_finishes_its_handshake_is_closed_after_the_timeout(daemon):
    _closed_when_silent(ZmtpPeer(daemon.endpoint, handshake=False), "a connection silent past --handshake-timeout")


@pytest.mark.parametrize("wire", [
    b"GET / HTTP/1.1\r\n" + bytes(48),  # not a ZMTP greeting
    b"\xff" + bytes(8) + b"\x7f\x02\x00" + b"NULL".ljust(20, b"\x00") + bytes(32),  # ZMTP 2
    b"\xff" + bytes(8) + b"\x7f\x03\x01" + b"PLAIN".ljust(20, b"\x00") + bytes(32),  # a mechanism it lacks
    b"\xff" + bytes(8) + b"\x7f\x03\x01" + b"NULL".ljust(20, b"\x00") + bytes(32) + b"\x04\x06\x05HELLO",  # not READY
    b"\xff" + bytes(8) + b"\x7f\x03\x01" + b"NULL".ljust(20, b"\x00") + bytes(32)
    + b"\x04\x19\x05READY\x0bSocket-Type\x00\x00\x00\x03PUB",  # a socket type a ROUTER does not talk to
], ids=["http", "zmtp2", "plain", "hello", "pub"])
def test_a_peer_breaking_the_handshake_is_closed_and_others_are_served(daemon, wire):
    peer = ZmtpPeer(daemon.endpoint, handshake=False)
    try:
        peer.sock.sendall(wire)
        assert peer.closed(5), "a peer breaking the handshake was kept"
    finally:
        peer.close()
    with RawClient(daemon.endpoint) as client:
        assert client.request({"type": "ping", "id": "ok"})["type"] == "pong"


def test_reserved_flags_and_unknown_commands_after_the_handshake_close_the_connection(daemon):
    for wire in (b"\x08\x01x", b"\x04\x05\x04JUNK"):
        peer = ZmtpPeer(daemon.endpoint)
        try:
            peer.sock.sendall(wire)
            assert peer.closed(5), f"{wire!r} was let through"
        finally:
            peer.close()


def test_connections_past_the_maximum_are_closed_at_once_and_the_others_kept(daemon):
    peers = [ZmtpPeer(daemon.endpoint) for _ in range(4)]
    try:
        extra = ZmtpPeer(daemon.endpoint, handshake=False)
        assert extra.closed(3), "a fifth connection was accepted with --max-connections 4"
        extra.close()
        peers[0].frame(msgpack.packb({"v": 1, "type": "ping", "id": "kept"}), more=False)
        assert msgpack.unpackb(peers[0].read_message()[0])["type"] == "pong"
    finally:
        for peer in peers:
            peer.close()
    time.sleep(0.3)  # the front notices the closed connections
    with RawClient(daemon.endpoint) as client:
        assert client.request({"type": "ping", "id": "room"})["type"] == "pong"


# ------------------------------------------------------------------ idle connections (--idle-timeout)
IDLE_TIMEOUT = 2  # seconds: this daemon's --idle-timeout, with a single place (--max-connections 1)


@pytest.fixture(scope="module")
def one_place_daemon(tmp_path_factory):
    d = start_daemon(tmp_path_factory.mktemp("front-idle"), "--max-connections", "1",
                     "--idle-timeout", str(IDLE_TIMEOUT))
    yield d
    assert d.stop() == 0


def _take_the_place(endpoint: str) -> ZmtpPeer:
    """A peer that handshakes into the one place; checked by a second peer's being refused."""
    time.sleep(0.3)  # the fixture's or the last test's client leaves its place first
    holder = ZmtpPeer(endpoint)
    extra = ZmtpPeer(endpoint, handshake=False)
    try:
        assert extra.closed(5), "a second connection was accepted with --max-connections 1"
    finally:
        extra.close()
    return holder


def test_a_peer_idle_past_the_timeout_is_closed_and_its_place_goes_to_the_next(one_place_daemon):
    idle = _take_the_place(one_place_daemon.endpoint)
    try:
        started = time.monotonic()
        assert idle.closed(IDLE_TIMEOUT + 20), "a peer that sends nothing kept its place"
        assert time.monotonic() - started >= IDLE_TIMEOUT - 0.5, "closed before its idle timeout"
    finally:
        idle.close()
    time.sleep(0.3)  # the front notices its closed connection
    with RawClient(one_place_daemon.endpoint) as client:
        assert client.request({"type": "ping", "id": "in"})["type"] == "pong"


def test_a_peer_that_only_pings_is_not_idle(one_place_daemon):
    peer = _take_the_place(one_place_daemon.endpoint)
    try:
        for n in range(4 * IDLE_TIMEOUT):  # twice the timeout, a ZMTP PING (no TTL) every 0.5 s
            peer.command(b"\x04PING" + bytes(2) + b"ctx-%d" % n)
            flags, body = peer.read_frame()
            assert flags & 4 and body == b"\x04PONG" + b"ctx-%d" % n, body
            time.sleep(0.5)
        peer.frame(msgpack.packb({"v": 1, "type": "ping", "id": "still"}), more=False)
        assert msgpack.unpackb(peer.read_message()[0])["id"] == "still"
    finally:
        peer.close()


def test_a_peer_whose_job_runs_is_not_idle_though_it_sends_nothing(one_place_daemon):
    """No ZMTP heartbeats and no request for twice the timeout: the job's own messages (progress, the
    daemon's heartbeats) are its traffic, and its cancel still reaches the daemon on the same connection."""
    time.sleep(0.3)
    with RawClient(one_place_daemon.endpoint, heartbeat=(0, 0, 0)) as client:
        client.stylize("long", ENDLESS)
        assert client.recv_for("long", timeout=60)[0]["type"] == "accepted"
        time.sleep(2 * IDLE_TIMEOUT)
        ack = client.request({"type": "cancel", "id": "stop", "target": "long"}, timeout=30)
        assert ack["type"] == "cancel_ack", ack
        stream = client.stream("long", timeout=60, quiet=0)
        assert stream[-1][0]["type"] == "error" and stream[-1][0]["code"] == "cancelled", stream[-1][0]


# ------------------------------------------------------------------ where the front applies
def test_the_daemons_front_refuses_an_ipc_endpoint():
    with pytest.raises(ValueError, match="tcp"):
        ServerConfig(bind="ipc:///tmp/x.sock", front="zmtp")


@pytest.mark.parametrize("bind, front, own", [
    ("tcp://127.0.0.1:5570", "auto", True), ("ipc:///tmp/x.sock", "auto", False),
    ("tcp://127.0.0.1:5570", "libzmq", False), ("tcp://127.0.0.1:5570", "zmtp", True),
])
def test_the_front_serves_tcp_by_default_and_ipc_keeps_libzmq(bind, front, own):
    assert ServerConfig(bind=bind, front=front).own_front is own
