"""Framing of protocol v1: header frame, payload frames, the three mandatory header fields."""

from __future__ import annotations

import msgpack
import pytest

from neural_style.protocol import ErrorCode, ProtocolError
from neural_style.protocol.wire import MAX_ID_LENGTH, PROTOCOL_VERSION, decode, encode, peek_id


def pack(obj) -> bytes:
    return msgpack.packb(obj, use_bin_type=True)


def test_encode_decode_round_trip_keeps_header_and_payloads() -> None:
    frames = encode({"type": "stylize", "id": "job-1", "extra": [1, 2.5, None]}, [b"abc", memoryview(b"defg")])
    assert len(frames) == 3
    env = decode(frames)
    assert env.header == {"v": PROTOCOL_VERSION, "type": "stylize", "id": "job-1", "extra": [1, 2.5, None]}
    assert env.type == "stylize" and env.id == "job-1"
    assert bytes(env.frame(1)) == b"abc" and bytes(env.frame(2)) == b"defg"


def test_encode_requires_type_and_string_id() -> None:
    with pytest.raises(ValueError):
        encode({"type": "ping", "id": 3})
    with pytest.raises(ValueError):
        encode({"id": "x"})


def test_frame_index_out_of_range_is_bad_request() -> None:
    env = decode(encode({"type": "ping", "id": "a"}, [b"x"]))
    for index in (0, 2, -1):
        with pytest.raises(ProtocolError) as err:
            env.frame(index)
        assert err.value.code == "bad_request" and err.value.request_id == "a"


@pytest.mark.parametrize(
    "frames, code, request_id",
    [
        ([], ErrorCode.BAD_REQUEST, None),
        ([b""], ErrorCode.BAD_REQUEST, None),
        ([b"\xc1not msgpack"], ErrorCode.BAD_REQUEST, None),
        ([pack([1, 2, 3])], ErrorCode.BAD_REQUEST, None),
        ([pack({"v": 1, "type": "ping"})], ErrorCode.BAD_REQUEST, None),
        ([pack({"v": 1, "type": "ping", "id": 7})], ErrorCode.BAD_REQUEST, None),
        ([pack({"v": 1, "type": "ping", "id": ""})], ErrorCode.BAD_REQUEST, None),
        ([pack({"v": 1, "type": "ping", "id": "x" * (MAX_ID_LENGTH + 1)})], ErrorCode.BAD_REQUEST, None),
        ([pack({"type": "ping", "id": "a"})], ErrorCode.BAD_REQUEST, "a"),
        ([pack({"v": 2, "type": "ping", "id": "a"})], ErrorCode.UNSUPPORTED_VERSION, "a"),
        ([pack({"v": "1", "type": "ping", "id": "a"})], ErrorCode.UNSUPPORTED_VERSION, "a"),
        ([pack({"v": True, "type": "ping", "id": "a"})], ErrorCode.UNSUPPORTED_VERSION, "a"),
        ([pack({"v": 1, "type": 5, "id": "a"})], ErrorCode.BAD_REQUEST, "a"),
        ([pack({"v": 1, "type": "", "id": "a"})], ErrorCode.BAD_REQUEST, "a"),
        ([pack({1: 2, "v": 1, "type": "ping", "id": "a"})], ErrorCode.BAD_REQUEST, None),
        ([pack({"v": 1, "type": "ping", "id": "a"}) + b"\x00"], ErrorCode.BAD_REQUEST, None),
    ],
)
def test_malformed_headers_get_the_documented_code(frames, code, request_id) -> None:
    with pytest.raises(ProtocolError) as err:
        decode(frames)
    assert err.value.code == code.value
    assert err.value.request_id == request_id


def test_oversized_header_is_too_large_and_keeps_the_id() -> None:
    header = pack({"v": 1, "type": "ping", "id": "big", "pad": "x" * 5000})
    with pytest.raises(ProtocolError) as err:
        decode([header], max_header_bytes=1000)
    assert err.value.code == "too_large" and err.value.request_id == "big"


def test_binary_keys_are_rejected() -> None:
    with pytest.raises(ProtocolError) as err:
        decode([msgpack.packb({b"v": 1, "type": "ping", "id": "a"}, use_bin_type=True)])
    assert err.value.code == "bad_request"


def test_empty_id_is_allowed_only_when_asked() -> None:
    frames = [pack({"v": 1, "type": "error", "id": "", "code": "bad_request", "message": "?"})]
    assert decode(frames, allow_empty_id=True).id == ""
    with pytest.raises(ProtocolError):
        decode(frames)


def test_peek_id_reads_what_it_can() -> None:
    assert peek_id(pack({"id": "abc", "v": 9})) == "abc"
    assert peek_id(b"\xc1") is None
    assert peek_id(pack({"id": 3})) is None


def test_zmq_frames_are_accepted() -> None:
    zmq = pytest.importorskip("zmq")
    frames = [zmq.Frame(f) for f in encode({"type": "ping", "id": "z"}, [b"payload"])]
    env = decode(frames)
    assert env.id == "z" and bytes(env.frame(1)) == b"payload"
