"""One client does its worst; everyone else stays served (issue 10).

Each test runs a bad client against one real daemon (ipc, random weights, a 1 MiB message
limit, two styles at most, room for 24 queued jobs) while a well-behaved bystander pings it
every 50 ms and runs a job of its own: every ping is answered within a second (the many-frames
case: within a bound only a stalled loop misses; its latency is bench/abuse_bench.py's) and the
bystander's job ends in its result.  Bad clients are raw pyzmq sockets (or other processes), a
peer speaking ZMTP by hand (to stop in the middle of a message, which libzmq never does), and the
paused reader, which is the project's own ``Client``.  Memory growth is measured by
``bench/abuse_bench.py``, not asserted here.
"""

from __future__ import annotations

import re
import subprocess
import sys
import threading
import time
from typing import Any

import msgpack
import pytest
from server_fixtures import FAST, RawClient, own_daemon, raw_image, rgb_bytes, terminal_of, wait_until
from zmtp_peer import ZmtpPeer

from neural_style.protocol import Client, ImageData, Progress, Result
from neural_style.protocol.errors import ERROR_CODES

MiB = 1 << 20
MAX_STYLES = 2
MAX_EARLIER = 4  # the default
MAX_FRAMES = 4 + 2 * MAX_EARLIER + 3 * MAX_STYLES  # PROTOCOL.md section 9, "One message"
LIMIT_ARGS = ("--max-message-mb", "1", "--max-styles", str(MAX_STYLES), "--max-queue", "24")
PING_BOUND = 1.0  # seconds: a well-behaved client's ping is answered within this, whatever the bad one does
STALL_BOUND = 20.0  # seconds: only a loop that stopped serving misses this, however loaded the machine


@pytest.fixture(scope="module")
def daemon(tmp_path_factory):
    yield from own_daemon(tmp_path_factory, "abuse", *LIMIT_ARGS)


class _TimedClient(RawClient):
    """A RawClient that notes when each message arrived: (time.monotonic(), type, id)."""

    def __init__(self, endpoint: str) -> None:
        super().__init__(endpoint)
        self.arrivals: list[tuple[float, str, str]] = []

    def _recv(self, timeout: float) -> tuple[dict[str, Any], list[bytes]] | None:
        message = super()._recv(timeout)
        if message is not None:
            self.arrivals.append((time.monotonic(), message[0]["type"], message[0]["id"]))
        return message


class Bystander:
    """A well-behaved client beside the bad one: a job of its own, and a ping every 50 ms.
    ``cancel``: its job (long, then) is cancelled once the bad client is done, instead of awaited."""

    def __init__(self, endpoint: str, iterations: int = 150, progress_every: int = 10, cancel: bool = False) -> None:
        self.endpoint = endpoint
        self.iterations = iterations
        self.progress_every = progress_every
        self.cancel = cancel
        self.latencies: list[float] = []
        self.pings: list[tuple[float, float]] = []  # (sent, answered), time.monotonic()
        self.arrivals: list[tuple[float, str, str]] = []
        self.stream: list[tuple[dict[str, Any], list[bytes]]] = []
        self.errors: list[BaseException] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> Bystander:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(120)

    def _run(self) -> None:
        try:
            with _TimedClient(self.endpoint) as client:
                self.arrivals = client.arrivals
                client.stylize("bystander", {**FAST, "iterations": self.iterations,
                                             "progress_every": self.progress_every})
                n = 0
                while not self._stop.is_set():
                    n += 1
                    started = time.monotonic()
                    client.request({"type": "ping", "id": f"b{n}"}, timeout=30)
                    answered = time.monotonic()
                    self.latencies.append(answered - started)
                    self.pings.append((started, answered))
                    time.sleep(0.05)
                if self.cancel:
                    client.send({"type": "cancel", "id": "enough", "target": "bystander"})
                self.stream = client.stream("bystander", timeout=120, quiet=0)
        except BaseException as exc:  # surfaced by check()
            self.errors.append(exc)

    def check(self, bound: float = PING_BOUND) -> None:
        """Served throughout: every ping within ``bound``, and its job ended in its result (or, ``cancel``,
        in ``cancelled``)."""
        assert not self.errors, self.errors
        assert self.latencies, "the bystander never got a pong"
        assert max(self.latencies) < bound, f"worst ping {max(self.latencies):.2f} s"
        terminal = terminal_of(self.stream)
        assert (terminal["type"], terminal.get("code")) == (("error", "cancelled") if self.cancel else ("result", None))

    def job_messages_while_slowest_ping_waited(self) -> int:
        """The job's messages (progress, heartbeats) that arrived while the slowest ping waited for its pong."""
        sent, answered = max(self.pings, key=lambda ping: ping[1] - ping[0])
        return sum(1 for at, _, request_id in self.arrivals if request_id == "bystander" and sent < at < answered)


def _frames(header: dict[str, Any], *payloads: bytes) -> list[bytes]:
    return [msgpack.packb(header, use_bin_type=True), *payloads]


def _ask(client: RawClient, frames: list[bytes], reply_id: str, timeout: float = 30) -> dict[str, Any]:
    client.send_frames(frames)
    reply = client.recv_for(reply_id, timeout)
    assert reply is not None
    return reply[0]


# ------------------------------------------------------------------ item 1: many frames, stalls
MANY_FRAMES = """
import sys, msgpack, zmq
sock = zmq.Context().socket(zmq.DEALER)
sock.setsockopt(zmq.LINGER, 0)
sock.connect(sys.argv[1])
sock.send_multipart([msgpack.packb({"v": 1, "type": "ping", "id": "many"})] + [b""] * int(sys.argv[2]))
assert sock.poll(60000), "no reply"
print(msgpack.unpackb(sock.recv_multipart()[0])["message"])
"""


def test_a_message_of_many_frames_is_refused_frame_by_frame_without_stalling_others(daemon):
    """300,000 empty frames (the issue used a million: see bench/abuse_bench.py): counted as they
    are read, refused with the request's id, and read in slices between which the loop serves
    everyone else: the bystander's running job keeps sending it progress while its slowest ping
    waits.  That ping waits for the bad message (libzmq's ROUTER hands over one peer's multipart
    message whole before the next peer's), so how long is bench/abuse_bench.py's figure (3.6 s once
    here, reading the frames on one loaded core), not asserted beyond a bound only a stalled loop misses."""
    with Bystander(daemon.endpoint, iterations=4000, progress_every=1, cancel=True) as bystander:
        time.sleep(0.3)
        done = subprocess.run([sys.executable, "-c", MANY_FRAMES, daemon.endpoint, "300000"],
                              capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == (f"the message has 300001 frames; a request has at most {MAX_FRAMES} "
                                   "(a header, a content image, a sequence's previous and earlier frames with two "
                                   "each, and the style images with two masks each: see pong's limits)")
    bystander.check(STALL_BOUND)
    assert bystander.job_messages_while_slowest_ping_waited() > 0, "the loop sent nothing while it read the frames"


# ------------------------------------------------------------------ item 2: bytes per message
def test_messages_over_the_byte_or_frame_bound_are_refused_and_a_huge_frame_drops_the_connection(daemon):
    header = {"v": 1, "type": "stylize", "id": "big", "content": raw_image(1, 256, 256, 3),
              "styles": [raw_image(2, 256, 256, 3)], "params": {**FAST, "iterations": 1}}
    with Bystander(daemon.endpoint) as bystander, RawClient(daemon.endpoint) as bad:
        # 4 frames (allowed), 1.5 MiB in all (over 1 MiB): refused by size, with its id
        reply = _ask(bad, _frames(header, b"\x00" * (3 * MiB // 4), b"\x00" * (3 * MiB // 4), b"x"), "big")
        assert (reply["code"], reply["message"]) == (
            "too_large", f"the message is {3 * MiB // 2 + 1 + len(_frames(header)[0])} bytes; "
                         f"this daemon accepts at most {MiB} bytes per message")
        # one small frame more than a request may have (a header, a content image, a previous frame's two,
        # MAX_EARLIER earlier frames' two and MAX_STYLES styles with two masks each): refused by count
        # before their size matters
        reply = _ask(bad, _frames({**header, "id": "many"}, *[b"x"] * MAX_FRAMES), "many")
        assert reply["code"] == "too_large" and f"{MAX_FRAMES + 1} frames" in reply["message"]
        # one frame over libzmq's per-frame ceiling (the limit + 1 MiB): the connection is closed
        # before anything is buffered; no reply is possible
        bad.send_frames(_frames({**header, "id": "huge"}, b"\x00" * (2 * MiB + 1)))
        assert bad.recv_for("huge", timeout=2, missing_ok=True) is None
    bystander.check()
    with RawClient(daemon.endpoint) as again:  # a new connection is served as usual
        assert again.request({"type": "ping", "id": "ok"})["type"] == "pong"


# ------------------------------------------------------------------ issue 16: a message held open
def test_a_message_held_open_is_answered_at_its_end_and_costs_nobody_else_their_service(daemon):
    """A hand-written peer sends the first frames of a message over the byte bound and stops there for
    3 s: libzmq holds them unseen (PROTOCOL.md section 9: nothing bounds the message arriving), the
    daemon serves everyone else meanwhile, and the message's end gets exactly one ``too_large`` with its
    id, after which the same connection is served."""
    peer = ZmtpPeer(daemon.endpoint)
    try:
        with Bystander(daemon.endpoint) as bystander:
            peer.frame(msgpack.packb({"v": 1, "type": "ping", "id": "open"}), more=True)
            for _ in range(3):
                peer.frame(b"\x00" * (MiB // 2), more=True)  # 1.5 MiB so far, each frame under MAXMSGSIZE
            peer.sock.settimeout(3)
            with pytest.raises(TimeoutError):  # nothing can be answered before the message ends
                peer.read_frame()
            peer.sock.settimeout(30)
            peer.frame(b"end", more=False)
            reply = msgpack.unpackb(peer.read_message()[0])
        assert (reply["type"], reply["id"], reply["code"]) == ("error", "open", "too_large")
        bystander.check()
        peer.frame(msgpack.packb({"v": 1, "type": "ping", "id": "after"}), more=False)
        assert msgpack.unpackb(peer.read_message()[0])["type"] == "pong"
    finally:
        peer.close()


# ------------------------------------------------------------------ item 3: a client that never reads
def test_a_client_that_never_reads_has_its_replies_capped_and_keeps_its_jobs(daemon):
    """A client queues a job, then sends 60,000 pings without reading (its receive queue holds one
    message): the daemon keeps at most 32 unread pongs for it, refuses its new jobs with ``busy``,
    and, when it reads again, it gets its job's every essential message and exactly one result."""
    gone_before = daemon.log().count("is not reading its replies")
    with Bystander(daemon.endpoint) as bystander, RawClient(daemon.endpoint, rcvhwm=1) as bad:
        bad.stylize("kept", {**FAST, "iterations": 20, "progress_every": 1})
        sent = 0
        for sent in range(1, 60_001):
            bad.send({"type": "ping", "id": f"p{sent}"})
        wait_until(lambda: daemon.log().count("is not reading its replies") > gone_before, 60,
                   "the daemon to notice a client that does not read")
        wait_until(lambda: re.search(r"id='kept' client=\w+ result:", daemon.log()) is not None, 60,
                   "the job of the client that does not read to finish")
        bad.stylize("refused", {**FAST, "iterations": 1})
        time.sleep(0.5)  # nothing reads meanwhile: the refusal waits in the daemon, after the pongs
        stream = bad.stream("kept", timeout=60, quiet=0)
        refused = bad.recv_for("refused", timeout=30)[0]
        bad.recv_for("nothing has this id", timeout=1.0, missing_ok=True)  # read the rest
        pongs = sum(1 for h, _ in bad.pending if h["type"] == "pong")
    bystander.check()
    assert stream[0][0]["type"] == "accepted" and terminal_of(stream)["type"] == "result"
    assert (refused["type"], refused["code"]) == ("error", "busy") and "not read" in refused["message"]
    assert 0 < pongs < sent  # the oldest were dropped, not queued without end
    wait_until(lambda: re.search(r"client \w+ caught up; \d+ of its replies were dropped meanwhile",
                                 daemon.log()) is not None, 10, "the daemon to log the dropped replies")


# ------------------------------------------------------------------ item 4: a paused Client
def test_a_paused_client_with_twenty_previewed_jobs_gets_every_result(daemon):
    """The project's Client submits 20 previewed jobs, then does not read for 30 s while they run:
    all 20 end in their result (or an explicit error), and the process does not abort in libzmq."""
    content = ImageData.raw(rgb_bytes(32, 32, 3, seed=3), 32, 32, 3)
    style = ImageData.raw(rgb_bytes(24, 24, 3, seed=4), 24, 24, 3)
    params = {**FAST, "iterations": 40, "progress_every": 1, "preview": True}
    with Bystander(daemon.endpoint, iterations=20) as bystander, Client(daemon.endpoint, timeout=30) as client:
        streams = [client.stylize(content, [style], params, request_id=f"job{i}") for i in range(20)]
        positions = [next(s).position for s in streams]  # accepted: all 20 are in flight
        time.sleep(30)  # the caller pauses; the daemon goes on sending previews and heartbeats
        outcomes = []
        for stream in streams:
            events = list(stream)
            assert all(e.image is not None for e in events if isinstance(e, Progress))
            outcomes.append(events[-1])
    assert sorted(positions) == positions and len(set(positions)) == 20
    assert all(isinstance(o, Result) and o.iterations == 40 for o in outcomes)
    bystander.check()


# ------------------------------------------------------------------ fuzz
def _mutate(rng: Any, i: int) -> tuple[list[bytes], str | None]:
    """A structurally malformed (or occasionally valid) request, and the id its reply must carry
    (None: the reply's id is "" because the header cannot be read)."""
    ident = f"f{i}"
    content, style = rgb_bytes(8, 8, 3, seed=i), rgb_bytes(8, 8, 3, seed=i + 1)
    templates = [
        ({"v": 1, "type": "ping", "id": ident}, []),
        ({"v": 1, "type": "status", "id": ident}, []),
        ({"v": 1, "type": "cancel", "id": ident, "target": "nothing"}, []),
        ({"v": 1, "type": "stylize", "id": ident, "content": raw_image(1, 8, 8, 3), "styles": [raw_image(2, 8, 8, 3)],
          "params": {"size": 16, "iterations": 1, "content_layers": ["relu1_1"], "style_layers": ["relu1_1"]}},
         [content, style]),
    ]
    header, payloads = templates[rng.integers(len(templates))]
    header, payloads = dict(header), list(payloads)
    junk_values = [None, True, -1, 2**64 - 1, 1.5e308, float("nan"), "", "x" * 300, [], {}, [1, [2, [3]]],
                   {"frame": 9}, b"\x00\x01", {"a": {"b": {"c": 1}}}, raw_image(1, 8, 8, 3)]
    kind = rng.integers(9)
    if kind == 0:  # an existing field gets a value of another type
        key = list(header)[rng.integers(len(header))]
        header[key] = junk_values[rng.integers(len(junk_values))]
    elif kind == 1:  # a field goes missing
        del header[list(header)[rng.integers(len(header))]]
    elif kind == 2:  # an unknown field
        header[f"extra{rng.integers(5)}"] = junk_values[rng.integers(len(junk_values))]
    elif kind == 3:  # a payload frame goes missing, or one too many
        payloads = payloads[:-1] if payloads and rng.integers(2) else [*payloads, b"spare"]
    elif kind == 4:  # payload bytes of the wrong length
        payloads = [p[: rng.integers(len(p) + 1)] for p in payloads] or [b"\x00" * 7]
    elif kind == 5:  # params become junk
        header["params"] = {"iterations": junk_values[rng.integers(len(junk_values))],
                            "size": junk_values[rng.integers(len(junk_values))]}
    packed = msgpack.packb(header, use_bin_type=True)
    if kind == 6:  # the header's bytes are cut short
        packed = packed[: rng.integers(len(packed))]
    elif kind == 7:  # a byte of the header is flipped
        at = int(rng.integers(len(packed)))
        packed = packed[:at] + bytes([packed[at] ^ int(rng.integers(1, 256))]) + packed[at + 1:]
    elif kind == 8:  # trailing garbage after the map
        packed += bytes(rng.integers(0, 256, 3, dtype="uint8"))
    try:
        readable = msgpack.unpackb(packed, raw=False)
    except Exception:
        readable = None
    ident_out = readable.get("id") if isinstance(readable, dict) else None
    expected = ident_out if isinstance(ident_out, str) and 0 < len(ident_out) <= 256 else None
    return [packed, *payloads], expected


def test_fuzzed_requests_each_get_one_reply_with_their_id_and_the_daemon_keeps_serving(daemon):
    """2,000 structurally malformed requests from a fixed seed: each gets exactly one reply (an
    ``error`` with a documented code, or the right reply when the mutation happens to be valid),
    carrying the request's id whenever its header can be read; no ``internal`` error."""
    import numpy as np

    rng = np.random.default_rng(20261124)
    codes: dict[str, int] = {}
    with Bystander(daemon.endpoint) as bystander, RawClient(daemon.endpoint) as fuzzer:
        for i in range(2000):
            frames, expected = _mutate(rng, i)
            fuzzer.send_frames(frames)
            reply = fuzzer.recv_for(expected if expected is not None else "", timeout=30)[0]
            if reply["type"] == "error":
                assert reply["code"] in ERROR_CODES and reply["code"] != "internal", (i, frames[0], reply)
                codes[reply["code"]] = codes.get(reply["code"], 0) + 1
            elif reply["type"] == "accepted":  # a valid stylize (maybe of 500 default iterations): cancel it
                ack = fuzzer.request({"type": "cancel", "id": f"c{i}", "target": expected})
                assert ack["type"] == "cancel_ack" or ack["code"] == "not_found"  # or it had finished
                assert terminal_of(fuzzer.stream(expected, timeout=60, quiet=0))["type"] in ("result", "error")
            else:
                assert reply["type"] in ("pong", "status_reply"), (i, reply)
        # replies come in order on one connection: a second reply to any of them would be pending now
        assert fuzzer.request({"type": "ping", "id": "still"})["type"] == "pong"
        assert [h for h, _ in fuzzer.pending if h["type"] != "heartbeat"] == []
    bystander.check()
    assert codes.get("bad_request", 0) > 1000  # the fuzzing did reach the checks
    assert daemon.alive()
