"""Typed messages: round trips, strict request validation, image descriptor checks."""

from __future__ import annotations

import msgpack
import pytest

from neural_style.protocol import (
    Accepted,
    Cancel,
    CancelAck,
    Error,
    ErrorCode,
    Heartbeat,
    ImageData,
    ImageRef,
    JobInfo,
    Loss,
    Ping,
    Pong,
    Progress,
    ProtocolError,
    Result,
    Status,
    StatusReply,
    Stylize,
    UnknownReply,
    decode_reply,
    decode_request,
    error_frames,
)

PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 16
JPEG = b"\xff\xd8\xff\xe0" + b"\x00" * 16


def rgb(w: int, h: int, value: int = 7) -> ImageData:
    return ImageData.raw(bytes([value]) * (w * h * 3), w, h, 3)


def rgba(w: int, h: int) -> ImageData:
    return ImageData.raw(bytes(i % 251 for i in range(w * h * 4)), w, h, 4)


def frames_of(header: dict, *payloads: bytes) -> list[bytes]:
    return [msgpack.packb({"v": 1, **header}, use_bin_type=True), *payloads]


def raw_ref(frame: int, w: int = 2, h: int = 2, c: int = 3) -> dict:
    return {"frame": frame, "encoding": "raw", "width": w, "height": h, "channels": c}


# ----------------------------------------------------------------------------- round trips

REQUESTS = [
    Ping("p"),
    Status("s"),
    Cancel("c", target="job"),
    Stylize("j1", rgba(3, 2), [rgb(2, 2), ImageData.png(PNG), ImageData.jpeg(JPEG)],
            {"iterations": 3, "style_layers": ["relu1_1"], "preview": True}, [0.5, 0.25, 0.25]),
    Stylize("synth", None, [rgb(4, 4)], {"width": 32, "height": 16}),
]

REPLIES = [
    Pong("p", "0.1.0", 1, "cuda:0", True, "vgg19 caffe", 2, {"max_pixels": 4096 * 4096}),
    Pong("p2", "0.1.0", 1, "cpu", False, None, 0),
    StatusReply("s", JobInfo("a", "running", 0, 5, 10, 1.25), [JobInfo("b", "queued", 1)]),
    StatusReply("s2"),
    CancelAck("c", "job", "running"),
    Accepted("j1", 3),
    Heartbeat("j1", "running", 0),
    Progress("j1", 10, 100, Loss(6.0, 1.0, 4.0, 1.0), 2.5),
    Progress("j1", 20, 100, Loss(1, 1, 0, 0), 3.0, rgba(3, 2)),
    Result("j1", rgba(3, 2), Loss(1.0, 0.5, 0.25, 0.25), 100, 9.5, 1, 2),
    Error("j1", ErrorCode.CANCELLED, "cancelled by the client"),
]


@pytest.mark.parametrize("message", REQUESTS, ids=lambda m: m.TYPE + ":" + m.id)
def test_requests_round_trip(message) -> None:
    decoded = decode_request(message.to_frames())
    assert type(decoded) is type(message)
    assert decoded == message


@pytest.mark.parametrize("message", REPLIES, ids=lambda m: m.TYPE + ":" + m.id)
def test_replies_round_trip(message) -> None:
    decoded = decode_reply(message.to_frames())
    assert type(decoded) is type(message)
    assert decoded == message


def test_stylize_frames_are_numbered_from_one_in_order() -> None:
    message = Stylize("j", rgb(1, 1, 1), [rgb(1, 1, 2), rgb(1, 1, 3)])
    frames = message.to_frames()
    header = msgpack.unpackb(frames[0])
    assert header["content"]["frame"] == 1
    assert [s["frame"] for s in header["styles"]] == [2, 3]
    assert [bytes(f) for f in frames[1:]] == [b"\x01" * 3, b"\x02" * 3, b"\x03" * 3]
    assert header["content"] == raw_ref(1, 1, 1, 3)


def test_error_code_enum_becomes_its_string() -> None:
    assert Error("x", ErrorCode.BUSY, "queue full").code == "busy"
    frames = error_frames(None, ErrorCode.BAD_REQUEST, "unreadable")
    reply = decode_reply(frames)
    assert isinstance(reply, Error) and reply.id == "" and reply.code == "bad_request"


# ----------------------------------------------------------------------------- request validation


def _code_of(frames) -> str:
    with pytest.raises(ProtocolError) as err:
        decode_request(frames)
    return err.value.code


@pytest.mark.parametrize(
    "header, payloads",
    [
        ({"type": "pong", "id": "a"}, []),  # a reply type sent as a request
        ({"type": "launch_missiles", "id": "a"}, []),
        ({"type": "ping", "id": "a", "colour": "blue"}, []),  # unknown field
        ({"type": "ping", "id": "a"}, [b"stray"]),  # unreferenced payload frame
        ({"type": "cancel", "id": "a"}, []),  # missing target
        ({"type": "cancel", "id": "a", "target": 5}, []),
        ({"type": "cancel", "id": "a", "target": ""}, []),
        ({"type": "stylize", "id": "a", "content": None}, []),  # missing styles
        ({"type": "stylize", "id": "a", "content": None, "styles": []}, []),
        ({"type": "stylize", "id": "a", "content": None, "styles": "x"}, []),
        ({"type": "stylize", "id": "a", "styles": [raw_ref(1)]}, [bytes(12)]),  # missing content key
        ({"type": "stylize", "id": "a", "content": None, "styles": [raw_ref(1)], "params": [1]}, [bytes(12)]),
        # style_blend's values (one per style, >= 0, finite...) are the daemon's: test_server_limits.py
        ({"type": "stylize", "id": "a", "content": None, "styles": [raw_ref(1)], "style_blend": 1.0},
         [bytes(12)]),
        ({"type": "stylize", "id": "a", "content": None, "styles": [raw_ref(1)], "style_blend": ["1"]},
         [bytes(12)]),
        ({"type": "stylize", "id": "a", "content": None, "styles": [raw_ref(1)], "style_blend": [None]},
         [bytes(12)]),
        ({"type": "stylize", "id": "a", "content": None, "styles": [raw_ref(1)], "style_blend": [True]},
         [bytes(12)]),
        ({"type": "stylize", "id": "a", "content": raw_ref(1), "styles": [raw_ref(1)]}, [bytes(12)]),  # reuse
        ({"type": "stylize", "id": "a", "content": raw_ref(1), "styles": [raw_ref(2)]},
         [bytes(12), bytes(12), bytes(12)]),  # frame 3 unreferenced
    ],
)
def test_bad_requests_are_bad_request(header, payloads) -> None:
    assert _code_of(frames_of(header, *payloads)) == "bad_request"


def _nested(depth: int) -> list:
    value: list = []
    for _ in range(depth):
        value = [value]
    return value


STYLIZE = {"type": "stylize", "id": "deep", "content": None, "styles": [raw_ref(1)], "params": {}}
DEEP_PLACES = {  # a value nested ~1000 deep (msgpack's own limit is 1024) in every kind of header field
    "v": lambda deep: {**STYLIZE, "v": deep},
    "type": lambda deep: {**STYLIZE, "type": deep},
    "content": lambda deep: {**STYLIZE, "content": deep},
    "styles": lambda deep: {**STYLIZE, "styles": deep},
    "image field": lambda deep: {**STYLIZE, "styles": [{**raw_ref(1), "width": deep}]},
    "image frame": lambda deep: {**STYLIZE, "styles": [{**raw_ref(1), "frame": deep}]},
    "params": lambda deep: {**STYLIZE, "params": deep},
    "a param": lambda deep: {**STYLIZE, "params": {"iterations": deep}},
    "style_blend": lambda deep: {**STYLIZE, "style_blend": [deep]},
    "unknown field": lambda deep: {**STYLIZE, "colour": deep},
    "cancel target": lambda deep: {"type": "cancel", "id": "deep", "target": deep},
}


@pytest.mark.parametrize("place", sorted(DEEP_PLACES))
@pytest.mark.parametrize("depth", [40, 1020])
def test_deeply_nested_values_are_bad_request_even_on_a_deep_stack(place, depth) -> None:
    """The daemon's socket thread decodes below other frames: the limit must hold there too, never as a
    RecursionError while a value is formatted into the message."""
    header = {"v": 1, **DEEP_PLACES[place](_nested(depth))}
    frames = [msgpack.packb(header, use_bin_type=True), bytes(12)]

    def at_depth(levels: int) -> str:
        return _code_of(frames) if levels == 0 else at_depth(levels - 1)

    allowed = {"bad_request", "unsupported_version"} if place == "v" else {"bad_request"}  # v is not 1 either
    assert at_depth(150) in allowed


def test_error_messages_quote_client_values_in_bounded_form() -> None:
    huge = "x" * 200_000
    cases = [
        {"type": huge, "id": "a"},
        {"type": "ping", "id": "a", **{f"{huge[:5000]}{i}": 1 for i in range(50)}},
        {"v": huge, "type": "ping", "id": "a"},
        {"type": "stylize", "id": "a", "content": None, "styles": [{**raw_ref(1), "encoding": huge}]},
        {"type": "stylize", "id": "a", "content": None, "styles": [{**raw_ref(1), "width": huge}]},
    ]
    for header in cases:
        with pytest.raises(ProtocolError) as err:
            decode_request([msgpack.packb({"v": 1, **header}, use_bin_type=True), bytes(12)])
        assert err.value.request_id == "a"
        assert len(err.value.message) <= 300, err.value.message[:400]
    from neural_style.protocol.errors import quote

    assert quote("y" * 1000) == "'" + "y" * 58 + "…" and quote(_nested(2000)) == "<list>" and quote(2.5) == "2.5"


def test_unsupported_version_is_reported_with_its_id() -> None:
    frames = [msgpack.packb({"v": 2, "type": "ping", "id": "later"})]
    with pytest.raises(ProtocolError) as err:
        decode_request(frames)
    assert err.value.code == "unsupported_version" and err.value.request_id == "later"


def test_params_are_opaque_to_the_protocol() -> None:
    params = {"iterations": 5, "some_future_knob": {"nested": [1, 2]}, "style_layers": "relu1_1,relu2_1"}
    message = decode_request(frames_of({"type": "stylize", "id": "a", "content": None,
                                        "styles": [raw_ref(1)], "params": params}, bytes(12)))
    assert isinstance(message, Stylize) and message.params == params and message.content is None


def test_replies_ignore_unknown_fields_but_requests_do_not() -> None:
    reply = decode_reply(frames_of({"type": "accepted", "id": "a", "position": 0, "eta": 12.0}))
    assert reply == Accepted("a", 0)
    assert _code_of(frames_of({"type": "status", "id": "a", "verbose": True})) == "bad_request"


def test_unknown_reply_types_are_returned_for_the_client_to_ignore() -> None:
    reply = decode_reply(frames_of({"type": "eta", "id": "a", "seconds": 3}))
    assert isinstance(reply, UnknownReply) and reply.type == "eta" and reply.header["seconds"] == 3
    with pytest.raises(ProtocolError):  # but a known type with ill-typed fields is still an error
        decode_reply(frames_of({"type": "accepted", "id": "a", "position": "first"}))


# ----------------------------------------------------------------------------- image descriptors


@pytest.mark.parametrize(
    "ref, payload, fragment",
    [
        (raw_ref(1, 2, 2, 3), bytes(11), "needs 12"),  # truncated raw frame
        (raw_ref(1, 2, 2, 3), bytes(13), "needs 12"),  # too long
        (raw_ref(1, 2, 2, 4), bytes(12), "needs 16"),
        (raw_ref(1, 2, 2, 2), bytes(8), "channels"),
        (raw_ref(1, 2, 2, 5), bytes(20), "channels"),  # 1 (a grey mask) is an image's; admission refuses a grey picture
        (raw_ref(1, 2, 2, 1), bytes(3), "needs 4"),
        (raw_ref(1, 0, 2, 3), b"", "width"),
        (raw_ref(1, 2, -2, 3), b"", "height"),
        (raw_ref(1, 2.0, 2, 3), bytes(12), "width"),
        (raw_ref(2), bytes(12), "does not exist"),  # frame index past the end
        (raw_ref(0), bytes(12), "does not exist"),  # frame 0 is the header
        ({"frame": "1", "encoding": "raw", "width": 2, "height": 2, "channels": 3}, bytes(12), "frame"),
        ({"frame": 1, "encoding": "raw", "width": 2, "height": 2}, bytes(12), "needs 'width'"),
        ({"frame": 1, "encoding": "bmp"}, b"BM", "encoding"),
        ({"frame": 1, "encoding": ["raw"]}, b"BM", "encoding"),  # unhashable: no TypeError
        ({"frame": 1, "encoding": {"raw": 1}}, b"BM", "encoding"),
        ({"frame": 1, "encoding": "raw", "width": 2, "height": 2, "channels": [3]}, bytes(12), "channels"),
        ({"frame": 1, "encoding": "png"}, JPEG, "not a PNG"),
        ({"frame": 1, "encoding": "jpeg"}, PNG, "not a JPEG"),
        ({"frame": 1, "encoding": "png", "path": "/etc/passwd"}, PNG, "unknown image field"),
        ([1, "raw"], PNG, "must be a map"),
    ],
)
def test_bad_image_descriptors(ref, payload, fragment) -> None:
    frames = frames_of({"type": "stylize", "id": "img", "content": None, "styles": [ref]}, payload)
    with pytest.raises(ProtocolError) as err:
        decode_request(frames)
    assert err.value.code == "bad_request"
    assert err.value.request_id == "img"
    assert fragment in err.value.message


def test_encoded_images_need_no_dimensions() -> None:
    frames = frames_of({"type": "stylize", "id": "a", "content": {"frame": 1, "encoding": "png"},
                        "styles": [{"frame": 2, "encoding": "jpeg", "width": 9}]}, PNG, JPEG)
    message = decode_request(frames)
    assert message.content.encoding == "png" and message.content.width is None
    assert message.styles[0].width == 9


def test_image_ref_map_round_trip_and_imagedata_validation() -> None:
    ref = ImageRef(3, "raw", 4, 5, 4)
    assert ImageRef.from_map(ref.to_map(), frame_count=3) == ref
    assert ImageRef(1, "png").to_map() == {"frame": 1, "encoding": "png"}
    with pytest.raises(ProtocolError):
        ImageData.raw(bytes(10), 2, 2, 3)
    with pytest.raises(ProtocolError):
        ImageData(bytes(12), 2, 2, 3, "gif")
    with pytest.raises(ValueError):  # ProtocolError is a ValueError for callers that build images
        ImageData.raw(bytes(12), 2, 2, 5)
    assert "bytes=12" in repr(rgb(2, 2))  # never the pixels themselves


def test_result_must_carry_an_image() -> None:
    with pytest.raises(ProtocolError):
        decode_reply(frames_of({"type": "result", "id": "a", "loss": {}, "elapsed": 1.0}))
    with pytest.raises(ValueError):
        Result("a").to_frames()


def test_nan_loss_is_rejected() -> None:
    frames = [msgpack.packb({"v": 1, "type": "progress", "id": "a", "iteration": 1, "iterations": 2,
                             "loss": {"total": float("nan")}, "elapsed": 0.1})]
    with pytest.raises(ProtocolError):
        decode_reply(frames)


def test_decoders_raise_only_protocol_error_on_garbage() -> None:
    """The daemon answers malformed input with an error code; it must never see a TypeError."""
    import random

    rng = random.Random(3)
    atoms = [None, True, 0, 3, -1, 10**6, 1.5, float("nan"), "raw", "png", "queued", "", b"b", [], {}, [1], {"a": 1}]

    def pick():
        r = rng.random()
        if r < 0.15:
            return [pick() for _ in range(rng.randint(0, 2))]
        return {"total": pick(), "frame": pick()} if r < 0.25 else rng.choice(atoms)

    def image():
        m = {"frame": 1, "encoding": "raw", "width": 2, "height": 2, "channels": 3}
        return {k: (pick() if rng.random() < 0.3 else v) for k, v in m.items()}

    fields = {
        "stylize": lambda: {"content": rng.choice([None, image()]),
                            "styles": [image() for _ in range(rng.randint(0, 2))],
                            "params": rng.choice([{}, pick()]), "style_blend": rng.choice([None, [pick()]])},
        "cancel": lambda: {"target": pick()},
        "pong": lambda: {"daemon_version": pick(), "protocol": pick(), "device": "cpu", "weights_loaded": pick(),
                         "limits": pick()},
        "status_reply": lambda: {"running": rng.choice([None, pick(), {"id": "j", "state": pick()}]),
                                 "queued": pick()},
        "progress": lambda: {"iteration": pick(), "iterations": 1, "loss": pick(), "elapsed": pick(),
                             "image": rng.choice([image(), None])},
        "result": lambda: {"image": image(), "loss": {"total": pick()}, "elapsed": pick()},
        "error": lambda: {"code": pick(), "message": pick()},
        "accepted": lambda: {"position": pick()},
        "heartbeat": lambda: {"state": pick(), "position": pick()},
    }
    outcomes = {"ok": 0, "rejected": 0}
    for _ in range(3000):
        kind = rng.choice(sorted(fields))
        header = {"v": 1, "type": kind, "id": "a", **fields[kind]()}
        frames = [msgpack.packb(header, use_bin_type=True)] + [bytes(rng.choice([0, 12, 13]))] * rng.randint(0, 2)
        for decoder in (decode_request, decode_reply):
            try:
                decoder(frames)
                outcomes["ok"] += 1
            except ProtocolError as exc:
                assert exc.code == "bad_request"
                outcomes["rejected"] += 1
    assert outcomes["ok"] > 0 and outcomes["rejected"] > 0  # the fuzz reached both paths


def test_file_bytes_go_as_they_are_only_for_png_and_jpeg() -> None:
    from neural_style.protocol.image_data import ImageData as Data

    png = b"\x89PNG\r\n\x1a\n" + b"rest"
    assert Data.from_file_bytes(png).encoding == "png"
    assert Data.from_file_bytes(memoryview(b"\xff\xd8\xff\xe0more")).encoding == "jpeg"
    assert Data.from_file_bytes(b"GIF89a....") is None
    assert Data.from_file_bytes(b"") is None


# ----------------------------------------------------------------------------- the codec against PROTOCOL.md


def _packed(header: dict) -> bytes:
    return msgpack.packb({"v": 1, **header}, use_bin_type=True)


@pytest.mark.parametrize("message, header", [
    (Progress("j", 3, 10, Loss(6, 1, 4, 1), 2, None, 1, 2, 1.5),
     {"type": "progress", "id": "j", "iteration": 3, "iterations": 10,
      "loss": {"total": 6.0, "content": 1.0, "style": 4.0, "tv": 1.0}, "elapsed": 2.0, "scale": 1, "scales": 2,
      "seconds_left": 1.5}),
    (Progress("j", 3, 10, Loss(), 2.5, rgb(1, 1)),  # the preview's descriptor comes after the other fields
     {"type": "progress", "id": "j", "iteration": 3, "iterations": 10,
      "loss": {"total": 0.0, "content": 0.0, "style": 0.0, "tv": 0.0}, "elapsed": 2.5, "scale": 1, "scales": 1,
      "seconds_left": None, "image": raw_ref(1, 1, 1, 3)}),
    (Stylize("s", None, [rgb(2, 2)], {"iterations": 2}),  # no style_blend key at all when there is none
     {"type": "stylize", "id": "s", "content": None, "styles": [raw_ref(1)], "params": {"iterations": 2}}),
    (Stylize("s", rgb(2, 2), [rgb(2, 2)], {}, [1]),
     {"type": "stylize", "id": "s", "content": raw_ref(1), "styles": [raw_ref(2)], "params": {},
      "style_blend": [1.0]}),
    (Error("e", ErrorCode.BUSY, "full"), {"type": "error", "id": "e", "code": "busy", "message": "full"}),
    (Error("e", ErrorCode.TOO_LARGE, "big", "styles[1]"),
     {"type": "error", "id": "e", "code": "too_large", "message": "big", "field": "styles[1]"}),
    (StatusReply("s", JobInfo("a", "running", 0, 1, 2, 3)),
     {"type": "status_reply", "id": "s", "running": {"id": "a", "state": "running", "position": 0, "iteration": 1,
                                                    "iterations": 2, "elapsed": 3.0}, "queued": []}),
    (Pong("p", "0.1.0", 1, "cpu", True, None, 0, {"max_size": 2}),
     {"type": "pong", "id": "p", "daemon_version": "0.1.0", "protocol": 1, "device": "cpu", "weights_loaded": True,
      "weights": None, "queue_length": 0, "limits": {"max_size": 2}}),
])
def test_headers_are_protocol_v1_byte_for_byte(message, header) -> None:
    """The declarations' order is the wire's key order (fields left out when nil last), floats are floats."""
    assert bytes(message.to_frames()[0]) == _packed(header)


def test_decoding_errors_name_their_field() -> None:
    cases = [
        ({"type": "stylize", "id": "a", "content": None, "styles": [raw_ref(1), {**raw_ref(2), "channels": 5}]},
         [bytes(12), bytes(12)], "styles[1]"),
        ({"type": "stylize", "id": "a", "content": None, "styles": [raw_ref(1)], "style_blend": [1, "x"]},
         [bytes(12)], "style_blend[1]"),
        ({"type": "cancel", "id": "a", "target": ""}, [], "target"),
        ({"type": "ping", "id": "a", "colour": 1}, [], "colour"),
    ]
    for header, payloads, field in cases:
        with pytest.raises(ProtocolError) as err:
            decode_request(frames_of(header, *payloads))
        assert err.value.field == field, err.value.message
    with pytest.raises(ProtocolError) as err:
        decode_reply(frames_of({"type": "progress", "id": "a", "iteration": 1, "iterations": 1, "elapsed": 0,
                                "loss": {"total": "x"}}))
    assert err.value.field == "loss.total"
    reply = decode_reply(Error("a", ErrorCode.BAD_REQUEST, "no", "params.iterations").to_frames())
    assert isinstance(reply, Error) and reply.field == "params.iterations"


def _documented_keys(doc: str, message_type: str) -> set[str]:
    """The keys PROTOCOL.md gives a message: its table's first column, or its inline map's keys."""
    import re

    section = doc.split(f"### `{message_type}`", 1)[1]
    section = re.split(r"\n##", section, maxsplit=1)[0]
    table = re.search(r"^\|.*?(?=\n[^|]|\n?\Z)", section, flags=re.MULTILINE | re.DOTALL)  # the first table only
    rows = re.findall(r"^\| `(\w+)` \|", table.group(0), flags=re.MULTILINE) if table else []
    return set(rows) if rows else set(re.findall(r'"(\w+)":', section))


@pytest.mark.parametrize("cls", [Ping, Status, Stylize, Cancel, Pong, StatusReply, CancelAck, Accepted, Heartbeat,
                                 Progress, Result, Error], ids=lambda c: c.TYPE)
def test_protocol_md_documents_every_field_of_every_message(cls) -> None:
    from pathlib import Path

    from neural_style.protocol.codec import specs

    doc = (Path(__file__).resolve().parents[1] / "docs" / "PROTOCOL.md").read_text(encoding="utf-8")
    assert _documented_keys(doc, cls.TYPE) == {s.name for s in specs(cls)}
