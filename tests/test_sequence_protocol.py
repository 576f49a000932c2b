"""A sequence's frame through a real daemon process over real ZeroMQ: ``stylize`` with ``previous``.

The daemon computes flow, warp and certainty from the request alone; bad previous frames are refused
before ``accepted`` with a code and the field to blame, and the daemon keeps serving.
"""
from __future__ import annotations

import numpy as np
import pytest
from server_fixtures import FAST, RawClient, raw_image, shared_daemon

from neural_style.daemon.sequence.synthetic import pan_with_occluder
from neural_style.protocol import Client, DaemonError, ImageData, Result
from neural_style.protocol.messages import Previous

WIDTH, HEIGHT = 48, 32


@pytest.fixture(scope="module")
def daemon(tmp_path_factory):
    return shared_daemon(tmp_path_factory)


def _u8(image: np.ndarray) -> np.ndarray:
    return np.clip(image * 255.0 + 0.5, 0, 255).astype(np.uint8)


def _raw(array: np.ndarray) -> ImageData:
    height, width, channels = array.shape
    return ImageData.raw(np.ascontiguousarray(array).tobytes(), width, height, channels)


@pytest.fixture(scope="module")
def frames() -> list[np.ndarray]:
    rng = np.random.default_rng(3)
    photo = np.repeat(np.repeat(rng.random((24, 20, 3), dtype=np.float32), 4, 0), 4, 1)  # 96×80, smooth-ish
    sequence = pan_with_occluder(photo, rng.random((16, 16, 3), dtype=np.float32), 2, HEIGHT, WIDTH,
                                 pan=(3, 1), speed=(-2, 1), side=10)
    return [_u8(f) for f in sequence.frames]


def _result(client: Client, content: np.ndarray, style: np.ndarray, params: dict,
            previous: Previous | None = None) -> Result:
    out = None
    for event in client.stylize(_raw(content), [_raw(style)], params, previous=previous):
        if isinstance(event, Result):
            out = event
    assert out is not None
    return out


def _pixels(result: Result) -> np.ndarray:
    image = result.image
    assert image is not None and image.width and image.height and image.channels
    return np.frombuffer(bytes(image.data), np.uint8).reshape(image.height, image.width, image.channels)


def test_a_frame_is_stylized_consistently_with_the_previous_one(daemon, frames) -> None:
    """Frame 2 with its previous frame stays near frame 1's result moved by the flow (where the flow is
    certain), far nearer than frame 2 stylized on its own; the style's Grams come from the cache."""
    from neural_style.daemon.sequence.frame_start import frame_start

    style = _u8(np.random.default_rng(5).random((24, 24, 3), dtype=np.float32))
    params = {**FAST, "size": WIDTH, "iterations": 4, "seed": 1}
    with Client(daemon.endpoint, timeout=30) as client:
        first = _pixels(_result(client, frames[0], style, params))
        independent = _result(client, frames[1], style, params)
        previous = Previous(_raw(frames[0]), _raw(first), "dis")
        held = _result(client, frames[1], style, {**params, "temporal_weight": 1e7}, previous)
    assert held.style_cache_hits >= 1  # the Gram targets of this style were computed for frame 1
    prepared = frame_start(frames[1] / 255.0, frames[0] / 255.0, first / 255.0, (HEIGHT, WIDTH))
    c = prepared.certainty[..., None]
    assert c.mean() > 0.5  # a pan: most pixels are certain

    def warping_error(image: np.ndarray) -> float:
        return float((c * (image / 255.0 - prepared.target) ** 2).sum() / c.sum())

    assert warping_error(_pixels(held)) < 0.3 * warping_error(_pixels(independent))


def _refusal(client: RawClient, request_id: str, header: dict, *payloads: bytes) -> dict:
    """The single reply to a stylize that must be refused before ``accepted``."""
    reply = client.request({"type": "stylize", "id": request_id, **header}, *payloads)
    assert reply["type"] == "error", reply
    return reply


def test_bad_previous_frames_are_refused_before_accepted_with_their_field(daemon, frames) -> None:
    content = np.ascontiguousarray(frames[1]).tobytes()
    style = bytes(24 * 24 * 3)
    small = bytes(40 * 30 * 3)
    base = {"content": raw_image(1, WIDTH, HEIGHT), "styles": [raw_image(2, 24, 24)], "params": FAST}
    cases = [  # (previous, extra payloads, params, field)
        ({"content": raw_image(3, 40, 30), "stylized": raw_image(4, 40, 30)}, [small, small], FAST,
         "previous.content"),  # frames of different sizes
        ({"content": raw_image(3, WIDTH, HEIGHT)}, [content], FAST, "previous.stylized"),  # result without content
        ({"stylized": raw_image(3, WIDTH, HEIGHT)}, [content], FAST, "previous.content"),  # and vice versa
        ({"content": raw_image(3, WIDTH, HEIGHT), "stylized": raw_image(4, 40, 40)}, [content, bytes(40 * 40 * 3)],
         FAST, "previous.stylized"),  # another shape
        ({"content": raw_image(3, WIDTH, HEIGHT), "stylized": raw_image(4, WIDTH, HEIGHT), "flow": "deepflow"},
         [content, content], FAST, "previous.flow"),
        ({"content": raw_image(3, WIDTH, HEIGHT), "stylized": raw_image(4, WIDTH, HEIGHT)}, [content, content],
         {**FAST, "temporal_weight": -1}, "params.temporal_weight"),  # a weight out of range
    ]
    with RawClient(daemon.endpoint) as client:
        for i, (previous, payloads, params, field) in enumerate(cases):
            reply = _refusal(client, f"bad{i}", {**base, "params": params, "previous": previous},
                             content, style, *payloads)
            assert (reply["code"], reply.get("field")) == ("bad_request", field), reply
            assert reply["message"]
        texture = _refusal(client, "texture", {"content": None, "styles": [raw_image(1, 24, 24)], "params": FAST,
                                               "previous": {"content": raw_image(2, WIDTH, HEIGHT),
                                                            "stylized": raw_image(3, WIDTH, HEIGHT)}},
                           style, content, content)
        assert (texture["code"], texture.get("field")) == ("bad_request", "previous")
        assert client.request({"type": "ping", "id": "after"})["type"] == "pong"  # still serving


def test_the_client_refuses_to_send_half_a_previous_frame() -> None:
    from neural_style.protocol.messages import Stylize

    with pytest.raises(ValueError, match="stylized"):
        Stylize("s", _raw(np.zeros((2, 2, 3), np.uint8)), [_raw(np.zeros((2, 2, 3), np.uint8))], {}, None,
                Previous(_raw(np.zeros((2, 2, 3), np.uint8)), None)).to_frames()


def test_daemon_error_names_the_field_for_the_python_client(daemon, frames) -> None:
    bad = Previous(_raw(np.zeros((30, 40, 3), np.uint8)), _raw(np.zeros((30, 40, 3), np.uint8)))
    with Client(daemon.endpoint, timeout=30) as client, pytest.raises(DaemonError) as err:
        _result(client, frames[1], np.zeros((24, 24, 3), np.uint8), FAST, bad)
    assert (err.value.code, err.value.field) == ("bad_request", "previous.content")


def test_previous_travels_after_the_v1_fields_and_decodes_back() -> None:
    """A v1 stylize without ``previous`` is unchanged byte for byte; with it, the map comes last and its
    two images take the next payload frames."""
    import msgpack

    from neural_style.protocol.messages import Stylize, decode_request

    image = _raw(np.zeros((2, 2, 3), np.uint8))
    plain = Stylize("s", image, [image], {"iterations": 2}).to_frames()
    assert "previous" not in msgpack.unpackb(bytes(plain[0]))
    frames = Stylize("s", image, [image], {}, None, Previous(image, image, "farneback")).to_frames()
    header = msgpack.unpackb(bytes(frames[0]))
    assert list(header)[-1] == "previous" and len(frames) == 5
    assert header["previous"]["flow"] == "farneback" and header["previous"]["stylized"]["frame"] == 4
    decoded = decode_request(frames)
    assert isinstance(decoded, Stylize) and decoded.previous is not None
    assert decoded.previous.flow == "farneback" and decoded.previous.stylized is not None


def test_a_frame_with_previous_and_the_most_styles_fits_in_one_request(daemon, frames) -> None:
    """The frame bound counts the previous frame's two images beside the content and ``max_styles`` styles."""
    with Client(daemon.endpoint, timeout=30) as client:
        most = client.ping().limits["max_styles"]
        style = _raw(np.full((16, 16, 3), 90, np.uint8))
        previous = Previous(_raw(frames[0]), _raw(frames[0]))
        events = list(client.stylize(_raw(frames[1]), [style] * most, {**FAST, "iterations": 1}, previous=previous))
    assert isinstance(events[-1], Result)
