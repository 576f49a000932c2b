"""Admission off the socket loop: a PNG/JPEG region mask is inflated and judged on the admission pool's
threads (``daemon/server/admission_pool.py``) before ``accepted``, while the loop keeps serving.

The daemon tests use a real ``neural-style serve`` and the raw client of ``server_fixtures``; that the loop
is not held is shown by order, not by time: a ping sent after a request whose mask is still being
inflated is answered before that request's refusal.
"""

from __future__ import annotations

import dataclasses
import io

import numpy as np
import pytest
from PIL import Image
from server_fixtures import FAST, RawClient, png_bytes, raw_image, rgb_bytes, shared_daemon, terminal_of, wait_until

from neural_style.daemon.engine.params import StyleParams
from neural_style.daemon.server.admission import judge_pixels, needs_reading
from neural_style.daemon.server.jobs import StylizeRequest
from neural_style.daemon.server.limits import Limits
from neural_style.protocol.errors import CodedError
from neural_style.protocol.image_data import ImageData

W, H = 40, 32  # the small content's size
STYLE = 24
BIG_W, BIG_H = 4000, 3000  # a 12 MP mask: inflating it takes a few tenths of a second at least


def encoded(levels: np.ndarray, encoding: str = "png", level: int = 6) -> bytes:
    out = io.BytesIO()
    Image.fromarray(levels).save(out, format=encoding.upper(), **({"compress_level": level}
                                                                  if encoding == "png" else {"quality": 95}))
    return out.getvalue()


def half(width: int, height: int, dtype: type = np.uint8) -> np.ndarray:
    levels = np.zeros((height, width), dtype)
    levels[:, width // 2:] = np.iinfo(dtype).max
    return levels


@pytest.fixture(scope="module")
def daemon(tmp_path_factory):
    return shared_daemon(tmp_path_factory)


@pytest.fixture(scope="module")
def big_mask() -> bytes:
    """A soft two-region split with noise at 12 MP, as bench/mask_admission_bench.py makes them (a real
    selection compresses better): slow to inflate, quick to encode at zlib's level 1."""
    ramp = np.clip((np.arange(BIG_W) - BIG_W / 2) / (BIG_W / 20) + 0.5, 0, 1)
    noise = np.random.default_rng(0).normal(0, 0.02, (BIG_H, BIG_W))
    return encoded((np.clip(ramp[None, :] + noise, 0, 1) * 255).astype(np.uint8), level=1)


def send(client: RawClient, request_id: str, masks: list[tuple[str, bytes]], *, content: bytes | None = None,
         size: tuple[int, int] = (W, H), iterations: int = 2) -> None:
    """A stylize of a ``size`` content (raw, or the PNG ``content``) and one 24×24 style per mask (at least
    one), each mask (encoding, bytes) in its own frame."""
    width, height = size
    frames = [content if content is not None else rgb_bytes(width, height)]
    header = {"type": "stylize", "id": request_id,
              "content": {"frame": 1, "encoding": "png"} if content is not None else raw_image(1, width, height),
              "styles": [], "params": {**FAST, "iterations": iterations}}
    for i in range(max(1, len(masks))):
        frames.append(rgb_bytes(STYLE, STYLE, seed=i + 1))
        header["styles"].append(raw_image(len(frames), STYLE, STYLE))
    if masks:
        header["style_masks"] = []
    for encoding, data in masks:
        frames.append(data)
        header["style_masks"].append({"frame": len(frames), "encoding": encoding})
    client.send(header, *frames)


def types(stream: list) -> list[str]:
    return [h["type"] for h, _ in stream]


# ----------------------------------------------------------------------------- the stage itself, no daemon


def _request(masks: list[ImageData | None], sources: list[ImageData | None] | None = None) -> StylizeRequest:
    content = ImageData.raw(rgb_bytes(W, H), W, H, 3)
    return StylizeRequest(StyleParams(), content, [ImageData.raw(rgb_bytes(STYLE, STYLE), STYLE, STYLE, 3)] * 2,
                          style_masks=masks, style_source_masks=sources)


def test_png_and_jpeg_masks_and_png_pictures_need_the_pool() -> None:
    raw = ImageData.raw(half(W, H).tobytes(), W, H, 1)
    assert not needs_reading(_request([raw, None]))
    assert not needs_reading(_request([]))
    assert needs_reading(dataclasses.replace(_request([]), content=ImageData.png(png_bytes(W, H))))
    jpeg = ImageData.jpeg(encoded(np.zeros((H, W, 3), np.uint8), "jpeg"))
    assert not needs_reading(dataclasses.replace(_request([]), content=jpeg))  # its validity: when it starts
    assert needs_reading(_request([None], sources=[ImageData.png(encoded(half(STYLE, STYLE)))]))
    assert needs_reading(_request([raw, ImageData.jpeg(encoded(half(W, H), "jpeg"))]))


def test_an_eight_bit_mask_is_handed_on_as_raw_grey8_and_a_sixteen_bit_one_as_its_png() -> None:
    eight, sixteen = half(W, H), half(W, H, np.uint16)
    judged = judge_pixels(_request([ImageData.png(encoded(eight)), ImageData.png(encoded(sixteen))]), Limits())
    assert judged.style_masks is not None
    first, second = judged.style_masks
    assert first is not None and (first.encoding, first.channels, first.width, first.height) == ("raw", 1, W, H)
    assert bytes(first.data) == eight.tobytes()  # the worker reads it without inflating it again
    assert second is not None and second.encoding == "png"  # raw grey8 would lose its 16 bits


def test_handing_on_stays_within_max_message_bytes() -> None:
    """Levels are one byte per pixel where the PNG may be far smaller: a request whose images would grow past
    ``max_message_bytes`` keeps the PNG (the worker inflates it again), so a queued job holds no more."""
    request = _request([ImageData.png(encoded(half(W, H)))])
    images = len(rgb_bytes(W, H)) + 2 * len(rgb_bytes(STYLE, STYLE)) + len(request.style_masks[0].data)  # type: ignore[index]
    tight = judge_pixels(request, Limits(max_message_bytes=images + W * H // 2))
    assert tight.style_masks is not None and tight.style_masks[0] is not None
    assert tight.style_masks[0].encoding == "png"
    roomy = judge_pixels(request, Limits(max_message_bytes=images + W * H))
    assert roomy.style_masks is not None and roomy.style_masks[0] is not None
    assert roomy.style_masks[0].encoding == "raw"


@pytest.mark.parametrize("mask, field, words", [
    (ImageData.png(encoded(np.zeros((H, W), np.uint8))), "style_masks[1]", "all black"),
    (ImageData.png(encoded(np.zeros((H, W), np.uint16))), "style_masks[1]", "all black"),
    (ImageData.jpeg(encoded(np.zeros((H, W), np.uint8), "jpeg")), "style_masks[1]", "all black"),
    (ImageData.png(encoded(half(W, H))[:60]), "style_masks[1]", "not a readable png mask"),
], ids=["png8", "png16", "jpeg", "truncated"])
def test_a_mask_that_selects_nothing_or_does_not_inflate_is_refused_with_its_field(mask, field, words) -> None:
    with pytest.raises(CodedError) as caught:
        judge_pixels(_request([ImageData.png(encoded(half(W, H))), mask]), Limits())
    assert (caught.value.code, caught.value.field) == ("bad_request", field)
    assert words in caught.value.message


def _flipped(data: bytes) -> bytes:
    """``data`` with one byte of its image data changed: its chunk's CRC no longer matches."""
    broken = bytearray(data)
    broken[len(data) // 2] ^= 0xFF
    return bytes(broken)


@pytest.mark.parametrize("which, broken", [
    ("content", png_bytes(W, H)[:-40]),
    ("styles[1]", _flipped(png_bytes(STYLE, STYLE))),
], ids=["truncated-content", "corrupted-style"])
def test_a_truncated_or_corrupted_png_picture_is_refused_with_its_field(which, broken) -> None:
    request = _request([])
    if which == "content":
        request.content = ImageData.png(broken)
    else:
        request.styles = [request.styles[0], ImageData.png(broken)]
    with pytest.raises(CodedError) as caught:
        judge_pixels(request, Limits())
    assert (caught.value.code, caught.value.field) == ("bad_request", which)
    assert "not a readable png image" in caught.value.message


# ----------------------------------------------------------------------------- a real daemon


def test_a_truncated_png_picture_is_refused_alone_with_no_accepted(daemon) -> None:
    with RawClient(daemon.endpoint) as client:
        send(client, "cut", [], content=png_bytes(W, H)[:-40])
        stream = client.stream("cut", timeout=60, quiet=0.6)
        assert types(stream) == ["error"] and (stream[0][0]["code"], stream[0][0]["field"]) == \
            ("bad_request", "content"), stream[0][0]
        send(client, "whole", [], content=png_bytes(W, H))  # the same picture whole runs
        stream = client.stream("whole", timeout=120, quiet=0)
        assert stream[0][0]["type"] == "accepted" and terminal_of(stream)["type"] == "result"


@pytest.mark.parametrize("mask", [
    ("png", encoded(np.zeros((H, W), np.uint8))),
    ("png", encoded(np.zeros((H, W), np.uint16))),
    ("jpeg", encoded(np.zeros((H, W), np.uint8), "jpeg")),
    ("png", encoded(half(W, H))[:60]),
], ids=["png8-black", "png16-black", "jpeg-black", "png-truncated"])
def test_a_bad_png_or_jpeg_mask_is_refused_alone_with_no_accepted(daemon, mask) -> None:
    with RawClient(daemon.endpoint) as client:
        send(client, "bad", [("png", encoded(half(W, H))), mask])
        stream = client.stream("bad", timeout=60, quiet=0.6)
        assert types(stream) == ["error"], "refused before accepted: one error alone"
        assert (stream[0][0]["code"], stream[0][0]["field"]) == ("bad_request", "style_masks[1]")
        assert client.request({"type": "ping", "id": "after"})["type"] == "pong"  # still serving


def test_good_png_and_jpeg_masks_are_accepted_and_run(daemon) -> None:
    with RawClient(daemon.endpoint) as client:
        send(client, "good", [("png", encoded(half(W, H))), ("png", encoded(half(W, H, np.uint16)[:, ::-1].copy())),
                              ("jpeg", encoded(half(W, H), "jpeg"))])
        stream = client.stream("good", timeout=120, quiet=0)
        assert stream[0][0]["type"] == "accepted"
        assert terminal_of(stream)["type"] == "result", terminal_of(stream)


def test_pings_are_answered_while_a_large_mask_is_inflated_and_the_daemon_serves_after(daemon, big_mask) -> None:
    """Order, not time: the ping the same connection sends just after the request is answered before that
    request's refusal (a loop that inflated the mask itself would send the refusal first), and so is another
    connection's ping sent once that pong is in."""
    black = encoded(np.zeros((BIG_H, BIG_W), np.uint8))
    content = encoded(np.full((BIG_H, BIG_W, 3), 128, np.uint8))
    with RawClient(daemon.endpoint) as client, RawClient(daemon.endpoint) as other:
        send(client, "big", [("png", big_mask), ("png", black)], content=content, size=(BIG_W, BIG_H))
        client.send({"type": "ping", "id": "own"})
        assert client.recv_for("own", timeout=60) is not None
        assert not [h for h, _ in client.pending if h["id"] == "big"], "the refusal came before the ping's pong"
        assert other.request({"type": "ping", "id": "other"}, timeout=30)["type"] == "pong"
        refusal = client.stream("big", timeout=120, quiet=0.6)
        assert types(refusal) == ["error"] and refusal[0][0]["field"] == "style_masks[1]", refusal[0][0]
        assert "all black" in refusal[0][0]["message"]
        send(client, "small", [("png", encoded(half(W, H)))])  # and the daemon serves after
        stream = client.stream("small", timeout=120, quiet=0)
        assert stream[0][0]["type"] == "accepted" and terminal_of(stream)["type"] == "result"


def test_an_id_being_admitted_is_taken_and_a_cancel_ends_it_once(daemon, big_mask) -> None:
    """While its masks are inflated the request's id is reserved (a second stylize with it is a duplicate),
    and a cancel then ends it with one ``cancelled`` error, no ``accepted``, and nothing once its masks are read."""
    content = encoded(np.full((BIG_H, BIG_W, 3), 128, np.uint8))
    with RawClient(daemon.endpoint) as client:
        send(client, "held", [("png", big_mask), ("png", big_mask)], content=content, size=(BIG_W, BIG_H),
             iterations=4000)
        send(client, "held", [("png", encoded(half(W, H)))])  # the same id, while the first is admitted
        duplicate = client.recv_for("held", timeout=60)
        assert duplicate is not None and duplicate[0]["type"] == "error", duplicate
        assert duplicate[0]["code"] == "bad_request" and "already used" in duplicate[0]["message"]
        ack = client.request({"type": "cancel", "id": "stop", "target": "held"}, timeout=30)
        assert (ack["type"], ack["target"]) == ("cancel_ack", "held"), ack
        stream = client.stream("held", timeout=60, quiet=3.0)  # its masks are read meanwhile: nothing follows
        assert types(stream) == ["error"] and stream[0][0]["code"] == "cancelled", stream
        assert client.request({"type": "ping", "id": "after"})["type"] == "pong"


def test_a_client_gone_during_admission_has_its_request_ended_once_and_the_daemon_serves_on(daemon, big_mask) -> None:
    """The request's client closes while its masks are inflated: the accepted that follows cannot be sent, so
    the job it made is cancelled ("the client disconnected", the job's one log line) and nothing else is owed."""
    content = encoded(np.full((BIG_H, BIG_W, 3), 128, np.uint8))
    with RawClient(daemon.endpoint) as client:
        send(client, "admission-gone", [("png", big_mask), ("png", big_mask)], content=content, size=(BIG_W, BIG_H),
             iterations=4000)
        client.send({"type": "ping", "id": "sent"})  # the request is in the daemon once this is answered
        assert client.recv_for("sent", timeout=60) is not None
    wait_until(lambda: "id='admission-gone'" in daemon.log() and "the client disconnected" in daemon.log(), 120,
               "the vanished client's job to be cancelled")
    ended = [line for line in daemon.log().splitlines() if "id='admission-gone'" in line and "cancelled:" in line]
    assert len(ended) == 1, ended
    with RawClient(daemon.endpoint) as client:
        assert client.request({"type": "ping", "id": "after"})["type"] == "pong"
