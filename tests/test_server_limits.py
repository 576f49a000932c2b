"""Every bad input the daemon must survive: each gets its documented error code, and the
next good request still succeeds.  Also: queue full (busy), no weights, and a slow client
whose previews are coalesced instead of piling up.

The daemon here listens on an ipc:// path with small limits, so the oversized inputs stay
small enough for CI.
"""

from __future__ import annotations

import re
import signal
import struct
import uuid
import zlib

import msgpack
import pytest
from server_fixtures import (
    ENDLESS,
    FAST,
    RawClient,
    png_bytes,
    raw_image,
    rgb_bytes,
    start_daemon,
    terminal_of,
    wait_for_ping,
    wait_until,
)

MAX_PIXELS = 40_000
LIMIT_ARGS = ("--max-pixels", str(MAX_PIXELS), "--max-message-mb", "1", "--max-iterations", "50",
              "--max-queue", "2", "--max-size", "128", "--max-styles", "2")


@pytest.fixture(scope="module")
def daemon(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("limits")
    d = start_daemon(tmp, *LIMIT_ARGS, endpoint=f"ipc://{tmp}/daemon.sock")
    yield d
    d.process.send_signal(signal.SIGINT)  # as Ctrl-C in a terminal: a clean exit too
    assert d.process.wait(15) == 0, d.log()
    assert "SIGINT: cancelling jobs and shutting down" in d.log()


@pytest.fixture()
def client(daemon):
    with RawClient(daemon.endpoint) as c:
        yield c


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)


def bomb_png(side: int = 8000) -> bytes:
    """A genuine decompression bomb: a valid greyscale PNG of side×side zeros, a few tens of KB."""
    ihdr = struct.pack(">IIBBBBB", side, side, 8, 0, 0, 0, 0)
    comp = zlib.compressobj(9)
    row = b"\x00" * (side + 1)  # filter byte + pixels
    idat = b"".join(comp.compress(row) for _ in range(side)) + comp.flush()
    return b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", ihdr) + _chunk(b"IDAT", idat) + _chunk(b"IEND", b"")


def _stylize_header(request_id: str, **overrides):
    header = {"v": 1, "type": "stylize", "id": request_id, "content": raw_image(1, 40, 32, 3),
              "styles": [raw_image(2, 24, 24, 3)], "params": {**FAST, "iterations": 1}}
    header.update(overrides)
    return header


GOOD_CONTENT = rgb_bytes(40, 32, 3)
GOOD_STYLE = rgb_bytes(24, 24, 3, seed=1)


def _frames(header, *payloads):
    return [msgpack.packb(header, use_bin_type=True), *payloads]


def _nested(depth: int) -> list:
    value: list = []
    for _ in range(depth):
        value = [value]
    return value


def _stylize_frames(**overrides):
    return _frames(_stylize_header("bad", **overrides), GOOD_CONTENT, GOOD_STYLE)


# (name, frames, expected code, expected reply id)
BAD_INPUTS = [
    ("malformed msgpack", [b"\xc1\xc1 not msgpack"], "bad_request", ""),
    ("header is not a map", [msgpack.packb([1, "ping", "x"])], "bad_request", ""),
    ("header without id", _frames({"v": 1, "type": "ping"}), "bad_request", ""),
    ("id of the wrong type", _frames({"v": 1, "type": "ping", "id": 7}), "bad_request", ""),
    ("unknown message type", _frames({"v": 1, "type": "explode", "id": "bad"}), "bad_request", "bad"),
    ("unsupported version", _frames({"v": 2, "type": "ping", "id": "bad"}), "unsupported_version", "bad"),
    ("missing version", _frames({"type": "ping", "id": "bad"}), "bad_request", "bad"),
    ("unknown request field", _stylize_frames(colour="red"), "bad_request", "bad"),
    ("unknown param", _stylize_frames(params={"iterations": 1, "brightness": 2}), "bad_request", "bad"),
    ("unknown layer name", _stylize_frames(params={"iterations": 1, "style_layers": ["relu9_1"]}),
     "bad_request", "bad"),
    ("param of the wrong type", _stylize_frames(params={"iterations": "ten"}), "bad_request", "bad"),
    ("params not a map", _stylize_frames(params=[1, 2]), "bad_request", "bad"),
    ("styles not a list", _stylize_frames(styles=raw_image(2, 24, 24, 3)), "bad_request", "bad"),
    ("image descriptor of the wrong type", _stylize_frames(content="content.png"), "bad_request", "bad"),
    ("style_blend twice", _stylize_frames(style_blend=[1.0], params={"iterations": 1, "style_blend": [1.0]}),
     "bad_request", "bad"),
    # issue 10, item 6: numbers float32 cannot carry, products that overflow, values nested ~1000 deep
    ("content_weight beyond float32", _stylize_frames(params={"iterations": 1, "content_weight": 1e40}),
     "bad_request", "bad"),
    ("style_scale that overflows a size", _stylize_frames(params={"iterations": 1, "style_scale": 1e308}),
     "bad_request", "bad"),
    ("Adam's learning rate of 1e300", _stylize_frames(params={"iterations": 1, "optimizer": "adam",
                                                              "learning_rate": 1e300}), "bad_request", "bad"),
    ("infinite style layer weight", _stylize_frames(params={"iterations": 1, "style_layers": ["relu1_1"],
                                                            "style_layer_weights": [float("inf")]}),
     "bad_request", "bad"),
    ("infinite style_blend", _stylize_frames(style_blend=[float("inf")]), "bad_request", "bad"),
    ("NaN style_blend", _stylize_frames(style_blend=[float("nan")]), "bad_request", "bad"),
    ("style_blend longer than the styles", _stylize_frames(style_blend=[1, 2]), "bad_request", "bad"),
    ("negative style_blend", _stylize_frames(style_blend=[-1]), "bad_request", "bad"),
    ("all-zero style_blend", _stylize_frames(style_blend=[0]), "bad_request", "bad"),
    ("nothing to optimise", _frames(_stylize_header("bad", content=None, styles=[raw_image(1, 24, 24, 3)],
                                                    params={"iterations": 1, "style_weight": 0}), GOOD_STYLE),
     "bad_request", "bad"),
    # a version that is no version at all (section 8: `v` is not 1), quoted by its type only
    ("version nested 1000 deep", _frames({"v": _nested(1020), "type": "ping", "id": "bad"}), "unsupported_version",
     "bad"),
    ("param nested 1000 deep", _stylize_frames(params={"iterations": _nested(1020)}), "bad_request", "bad"),
    ("image field nested 1000 deep", _stylize_frames(styles=[{**raw_image(2, 24, 24, 3), "width": _nested(1020)}]),
     "bad_request", "bad"),
    ("truncated raw frame", _frames(_stylize_header("bad"), GOOD_CONTENT[:-1], GOOD_STYLE), "bad_request", "bad"),
    ("raw frame too long", _frames(_stylize_header("bad"), GOOD_CONTENT + b"\x00" * 7, GOOD_STYLE),
     "bad_request", "bad"),
    ("missing payload frame", _frames(_stylize_header("bad"), GOOD_CONTENT), "bad_request", "bad"),
    ("unreferenced payload frame", _frames(_stylize_header("bad"), GOOD_CONTENT, GOOD_STYLE, b"extra"),
     "bad_request", "bad"),
    ("not a PNG", _frames(_stylize_header("bad", content={"frame": 1, "encoding": "png"}), b"GIF89a....",
                          GOOD_STYLE), "bad_request", "bad"),
    ("undecodable PNG", _frames(_stylize_header("bad", content={"frame": 1, "encoding": "png"}),
                                b"\x89PNG\r\n\x1a\n" + b"\x00" * 64, GOOD_STYLE), "bad_request", "bad"),
    ("image over max pixels", _frames(_stylize_header("bad", content=raw_image(1, 250, 250, 3)),
                                      rgb_bytes(250, 250), GOOD_STYLE), "too_large", "bad"),
    ("iterations over the maximum", _stylize_frames(params={"iterations": 51}), "too_large", "bad"),
    # max_size bounds a scaled-down size (129 < the content's 200 px); at its own size a content is bounded by
    # max_pixels (above: "image over max pixels"); a texture's width by max_size
    ("scaled-down size over the maximum", _frames(_stylize_header("bad", content=raw_image(1, 200, 150, 3),
                                                                  params={"iterations": 1, "size": 129}),
                                                  rgb_bytes(200, 150), GOOD_STYLE), "too_large", "bad"),
    ("texture width over the maximum", _frames(_stylize_header("bad", content=None, styles=[raw_image(1, 24, 24, 3)],
                                                               params={"iterations": 1, "width": 129, "height": 16}),
                                               GOOD_STYLE), "too_large", "bad"),
    ("native size for a texture without width and height",
     _frames(_stylize_header("bad", content=None, styles=[raw_image(1, 24, 24, 3)],
                             params={"iterations": 1, "size": 0}), GOOD_STYLE),
     "bad_request", "bad"),
    ("too many styles", _frames(_stylize_header("bad", styles=[raw_image(i, 24, 24, 3) for i in (2, 3, 4)]),
                                GOOD_CONTENT, GOOD_STYLE, GOOD_STYLE, GOOD_STYLE), "too_large", "bad"),
    ("message over the maximum size", _frames(_stylize_header("bad", content=raw_image(1, 700, 700, 3)),
                                              rgb_bytes(700, 700), GOOD_STYLE), "too_large", "bad"),
    ("cancel target of the wrong type", _frames({"v": 1, "type": "cancel", "id": "bad", "target": 5}),
     "bad_request", "bad"),
    ("cancel of an unknown job", _frames({"v": 1, "type": "cancel", "id": "bad", "target": "nope"}),
     "not_found", "bad"),
]


def assert_still_serving(client: RawClient) -> None:
    """A good stylize right after a bad input runs to a result."""
    job = uuid.uuid4().hex
    client.send(_stylize_header(job), GOOD_CONTENT, GOOD_STYLE, version=None)
    stream = client.stream(job, timeout=30, quiet=0)
    assert stream[0][0]["type"] == "accepted"
    assert terminal_of(stream)["type"] == "result"


@pytest.mark.parametrize("name, frames, code, reply_id", BAD_INPUTS, ids=[case[0] for case in BAD_INPUTS])
def test_bad_input_gets_its_error_and_the_daemon_keeps_serving(client, name, frames, code, reply_id):
    client.send_frames(frames)
    reply = client.recv_for(reply_id, timeout=10)[0]
    assert reply["type"] == "error", reply
    assert (reply["code"], reply["id"]) == (code, reply_id), reply
    assert isinstance(reply["message"], str) and len(reply["message"]) > 10
    assert client.recv_for(reply_id, timeout=0.2, missing_ok=True, skip=()) is None  # exactly one reply
    assert_still_serving(client)


def test_every_size_and_layer_runs_or_is_refused_before_accepted(client):
    """Issue 10, item 5: an 8:1 style whose short side shrinks below what relu5_1 needs, and pool5 at the
    smallest size, each run to a result instead of failing after ``accepted``."""
    panorama = rgb_bytes(128, 16, seed=3)
    cases = {
        "panorama": {"iterations": 2, "size": 64},
        "pool5": {"iterations": 2, "size": 16, "style_layers": ["relu1_1", "pool5"]},
    }
    for job, params in cases.items():
        client.send(_stylize_header(job, params=params, styles=[raw_image(2, 128, 16, 3)]), GOOD_CONTENT, panorama,
                    version=None)
        stream = client.stream(job, timeout=60)
        assert stream[0][0]["type"] == "accepted", stream[0][0]
        assert terminal_of(stream)["type"] == "result", terminal_of(stream)


def test_decompression_bomb_is_refused_before_decoding(client, daemon):
    bomb = bomb_png()
    assert len(bomb) < 200_000  # tiny on the wire, 64 megapixels decoded
    client.send_frames(_frames(_stylize_header("bomb", content={"frame": 1, "encoding": "png"}), bomb, GOOD_STYLE))
    reply = client.recv_for("bomb")[0]
    assert (reply["type"], reply["code"]) == ("error", "too_large"), reply
    assert "64000000" in reply["message"]
    assert_still_serving(client)


def test_a_second_daemon_does_not_steal_a_live_ipc_path(daemon, caplog):
    """Binding an existing ipc:// path would silently take it over; the daemon checks first."""
    import threading

    from neural_style.daemon.server.main import ServerConfig, run_server

    assert run_server(ServerConfig(bind=daemon.endpoint), threading.Event()) == 1
    assert "another daemon is running there" in caplog.text
    with RawClient(daemon.endpoint) as still:
        assert still.request({"type": "ping", "id": "p"})["type"] == "pong"


def test_png_inside_the_limits_is_accepted(client):
    client.send_frames(_frames(_stylize_header("png", content={"frame": 1, "encoding": "png"}),
                               png_bytes(40, 30), GOOD_STYLE))
    assert terminal_of(client.stream("png"))["type"] == "result"


def test_frame_over_the_hard_ceiling_drops_the_connection_but_not_the_daemon(client):
    """A single frame over ZeroMQ's MAXMSGSIZE (2 × the message limit + 1 MiB) cannot be answered:
    libzmq closes that connection.  The DEALER reconnects and the daemon still serves."""
    client.send_frames(_frames({"v": 1, "type": "ping", "id": "huge"}, b"\x00" * (4 * 1024 * 1024)))
    assert client.recv_for("huge", timeout=1.0, missing_ok=True) is None
    wait_until(lambda: client.request({"type": "ping", "id": uuid.uuid4().hex}, timeout=2)["type"] == "pong",
               20, "a pong after the reconnect")
    assert_still_serving(client)


def test_full_queue_answers_busy(client, daemon):
    client.send(_stylize_header("run", params=ENDLESS_UNDER_LIMIT), GOOD_CONTENT, GOOD_STYLE, version=None)
    assert client.recv_for("run")[0]["type"] == "accepted"
    assert client.recv_for("run")[0]["type"] == "progress"
    for name in ("q1", "q2"):  # --max-queue 2 waiting behind the running job
        client.send(_stylize_header(name), GOOD_CONTENT, GOOD_STYLE, version=None)
        assert client.recv_for(name)[0]["type"] == "accepted"
    client.send(_stylize_header("q3"), GOOD_CONTENT, GOOD_STYLE, version=None)
    reply = client.recv_for("q3")[0]
    assert (reply["type"], reply["code"]) == ("error", "busy")
    assert client.request({"type": "cancel", "id": "c", "target": "run"})["type"] == "cancel_ack"
    assert terminal_of(client.stream("run"))["code"] == "cancelled"
    for name in ("q1", "q2"):
        assert terminal_of(client.stream(name))["type"] == "result"
    assert_still_serving(client)


# within --max-iterations 50 but long enough to still be running when we look
ENDLESS_UNDER_LIMIT = {**ENDLESS, "iterations": 50, "size": 128}


def test_slow_client_gets_coalesced_previews_not_a_backlog(daemon):
    """A client that reads nothing while its job produces a 48 KiB preview every iteration
    (RCVHWM 1, so its buffers fill at once): the daemon coalesces progress instead of queueing it,
    so the client later receives fewer progress messages than were produced, in order, ending
    with the final one, then exactly one result.

    This client stops reading at the libzmq level on purpose (RCVHWM 1; PROTOCOL.md section 7 tells
    real clients to set RCVHWM 0, so that they never do).  It keeps sending ZMTP PINGs with a 2 s TTL
    (so the daemon keeps its connection) and waits 60 s for PONGs: with a full receive queue its I/O
    thread reads nothing, so a short ZMTP timeout would drop its own connection, like a stopped
    process (which is why section 7's clients set none)."""
    iterations = 50  # the --max-iterations of this daemon
    with RawClient(daemon.endpoint, rcvhwm=1, heartbeat=(500, 60_000, 2000)) as slow, \
            RawClient(daemon.endpoint) as watcher:
        slow.send(_stylize_header("slow", content=raw_image(1, 128, 128, 3),
                                  params={"size": 128, "iterations": iterations, "progress_every": 1,
                                          "preview": True, "content_layers": ["relu1_1"],
                                          "style_layers": ["relu1_1"]}),
                  rgb_bytes(128, 128), GOOD_STYLE, version=None)
        # the daemon's one log line per job says when it is over
        wait_until(lambda: re.search(r"id='slow' client=\w+ result:", daemon.log()) is not None,
                   120, "the slow client's job to finish")
        assert watcher.request({"type": "ping", "id": "p"})["queue_length"] == 0
        stream = slow.stream("slow")
    progress = [h["iteration"] for h, _ in stream if h["type"] == "progress"]
    assert stream[0][0]["type"] == "accepted"
    assert terminal_of(stream)["type"] == "result"
    assert progress == sorted(set(progress))
    assert progress[-1] == iterations  # the latest preview survives coalescing
    assert len(progress) < iterations  # older ones were replaced, not queued
    assert all(len(p[0]) == 128 * 128 * 3 for h, p in stream if h["type"] == "progress")


def test_no_weights_is_reported_and_the_daemon_keeps_answering(tmp_path):
    empty = tmp_path / "torch-home"
    empty.mkdir()
    daemon = start_daemon(tmp_path, weights=None, env={"TORCH_HOME": str(empty)}, wait=False)
    try:
        wait_until(lambda: "no VGG19 weights" in daemon.log(), 60, "the daemon to find no weights")
        pong = wait_for_ping(daemon, weights_loaded=False)
        assert pong["weights_loaded"] is False and pong["weights"] is None
        with RawClient(daemon.endpoint) as client:
            client.send(_stylize_header("nw"), GOOD_CONTENT, GOOD_STYLE, version=None)
            reply = terminal_of(client.stream("nw"))  # accepted first: the worker looks for the weights again
            assert (reply["type"], reply["code"]) == ("error", "no_weights")
            assert "install.py" in reply["message"] and "--weights" in reply["message"]
            assert client.request({"type": "ping", "id": "after"})["type"] == "pong"
    finally:
        assert daemon.stop() == 0, daemon.log()


FIELD_CASES = [  # (what, frames, code, the reply's field: None when no one field is to blame)
    ("a style over max pixels",
     _frames(_stylize_header("f", styles=[raw_image(2, 24, 24, 3), raw_image(3, 250, 250, 3)]),
             GOOD_CONTENT, GOOD_STYLE, rgb_bytes(250, 250)), "too_large", "styles[1]"),
    ("undecodable PNG content", _frames(_stylize_header("f", content={"frame": 1, "encoding": "png"}),
                                        b"\x89PNG\r\n\x1a\n" + b"\x00" * 64, GOOD_STYLE), "bad_request", "content"),
    ("bad style descriptor", _frames(_stylize_header("f", styles=[{**raw_image(2, 24, 24, 3), "channels": 2}]),
                                     GOOD_CONTENT, GOOD_STYLE), "bad_request", "styles[0]"),
    ("iterations over the maximum", _frames(_stylize_header("f", params={"iterations": 51}), GOOD_CONTENT, GOOD_STYLE),
     "too_large", "params.iterations"),
    ("unknown layer", _frames(_stylize_header("f", params={"iterations": 1, "style_layers": ["relu1_1", "relu9_9"]}),
                              GOOD_CONTENT, GOOD_STYLE), "bad_request", "params.style_layers[1]"),
    ("unknown param", _frames(_stylize_header("f", params={"colour": 1}), GOOD_CONTENT, GOOD_STYLE), "bad_request",
     "params.colour"),
    ("blend of the wrong length", _frames(_stylize_header("f", style_blend=[1, 2]), GOOD_CONTENT, GOOD_STYLE),
     "bad_request", "style_blend"),
    ("scaled-down size over the maximum", _frames(_stylize_header("f", content=raw_image(1, 200, 150, 3),
                                                                  params={"iterations": 1, "size": 129}),
                                                  rgb_bytes(200, 150), GOOD_STYLE), "too_large", "params.size"),
    ("nothing to optimise", _frames(_stylize_header("f", params={"iterations": 1, "style_weight": 0,
                                                                 "content_layers": []}), GOOD_CONTENT, GOOD_STYLE),
     "bad_request", None),
]


@pytest.mark.parametrize("name, frames, code, field", FIELD_CASES, ids=[case[0] for case in FIELD_CASES])
def test_an_error_names_the_field_it_is_about(client, name, frames, code, field):
    """PROTOCOL.md section 5, `error`: `field` says what to change, so a client never parses the message."""
    client.send_frames(frames)
    reply = client.recv_for("f", timeout=10)[0]
    assert (reply["type"], reply["code"], reply.get("field")) == ("error", code, field), reply
    assert ("field" in reply) == (field is not None)  # absent, not nil, when no field is to blame
