"""Issue 17 on the wire: stylize's ``style_masks`` and ``style_source_masks`` (docs/PROTOCOL.md, "Regions").

The fields round trip and keep v1's bytes when absent; masks are read as grey levels (raw grey8, PNG
grey8/grey16, other PNGs by luminance); a real daemon refuses each bad mask before ``accepted`` with its
code and field and keeps serving, runs a masked job to its result (the same image an in-process run
with the same masks gives), and still reads the old boolean ``preserve_color``.
"""
from __future__ import annotations

import io

import msgpack
import numpy as np
import pytest
from PIL import Image
from server_fixtures import FAST, RawClient, raw_image, rgb_bytes, shared_daemon, terminal_of

from neural_style.daemon.local_errors import ImageError
from neural_style.daemon.mask_images import load_mask, mask_frame, mask_levels, mask_tensor
from neural_style.protocol.errors import ProtocolError
from neural_style.protocol.image_data import ImageData
from neural_style.protocol.messages import Stylize, decode_request

W, H = 40, 32  # the content's size in the daemon tests
STYLE = 24
STRONG = {"iterations": 10, "style_weight": 1e5, "seed": 7}  # enough for the styles to show on a 32-px result


def grey(width: int, height: int, value: int | None = None, *, left: bool | None = None) -> bytes:
    """A raw grey8 mask: ``value`` everywhere, or white on the left (``left``) or right half."""
    levels = np.zeros((height, width), np.uint8)
    if value is not None:
        levels[:] = value
    elif left:
        levels[:, : width // 2] = 255
    else:
        levels[:, width // 2:] = 255
    return levels.tobytes()


def png_of(levels: np.ndarray) -> bytes:
    """A PNG of these levels: grey8 (uint8), grey16 (uint16) or RGB (H, W, 3)."""
    out = io.BytesIO()
    Image.fromarray(levels).save(out, format="PNG")
    return out.getvalue()


# ----------------------------------------------------------------------------- the fields and the formats


def test_the_mask_fields_round_trip_with_nil_entries_and_keep_v1_bytes_when_absent() -> None:
    content, style = ImageData.raw(bytes(12), 2, 2, 3), ImageData.raw(bytes(12), 2, 2, 3)
    mask = ImageData.raw(bytes([0, 255, 128, 1]), 2, 2, 1)
    message = Stylize("s", content, [style, style], {}, None, None, [None, mask], [mask, None])
    frames = message.to_frames()
    assert decode_request(frames) == message
    header = msgpack.unpackb(bytes(frames[0]))
    assert header["style_masks"] == [None, {"frame": 4, "encoding": "raw", "width": 2, "height": 2, "channels": 1}]
    assert header["style_source_masks"][1] is None and header["style_source_masks"][0]["frame"] == 5
    assert list(header)[-2:] == ["style_masks", "style_source_masks"]  # after v1's keys
    plain = Stylize("s", content, [style], {})
    assert "style_masks" not in msgpack.unpackb(bytes(plain.to_frames()[0]))
    assert decode_request(plain.to_frames()).style_masks is None


def test_a_mask_entry_must_be_an_image_or_nil() -> None:
    header = {"v": 1, "type": "stylize", "id": "a", "content": None, "styles": [raw_image(1, 2, 2)],
              "style_masks": ["sky.png"]}
    with pytest.raises(ProtocolError) as err:
        decode_request([msgpack.packb(header), bytes(12)])
    assert err.value.field == "style_masks[0]"


def test_masks_are_read_as_grey_levels_in_every_accepted_format() -> None:
    raw = mask_levels(ImageData.raw(bytes([0, 64, 128, 255]), 2, 2, 1), 100)
    assert raw.dtype == np.uint8 and raw.tolist() == [[0, 64], [128, 255]]
    eight = np.array([[0, 10], [200, 255]], np.uint8)
    assert mask_levels(ImageData.png(png_of(eight)), 100).tolist() == eight.tolist()
    sixteen = np.array([[0, 1], [32768, 65535]], np.uint16)  # grey16: 1/65535 survives
    levels = mask_levels(ImageData.png(png_of(sixteen)), 100)
    assert levels.dtype == np.uint16 and levels.tolist() == sixteen.tolist()
    assert mask_tensor(levels).shape == (1, 2, 2) and float(mask_tensor(levels)[0, 0, 1]) == pytest.approx(1 / 65535)
    rgb = np.zeros((2, 2, 3), np.uint8)
    rgb[0, 0] = (255, 255, 255)
    assert mask_levels(ImageData.png(png_of(rgb)), 100).tolist() == [[255, 0], [0, 0]]  # by luminance
    frame = mask_frame(levels)
    assert (frame.height, frame.width, frame.peak) == (2, 2, 1.0)
    with pytest.raises(ImageError, match="one grey channel"):
        mask_levels(ImageData.raw(bytes(12), 2, 2, 3), 100)
    with pytest.raises(ImageError, match="above the limit"):
        mask_levels(ImageData.png(png_of(eight)), 3)


def test_a_mask_file_becomes_a_request_image(tmp_path) -> None:
    """Raw grey8 (judged whole before ``accepted``), whatever the file; a 16-bit grey PNG as it is."""
    levels = np.array([[0, 255, 7]], np.uint8)
    (tmp_path / "m.png").write_bytes(png_of(levels))
    Image.fromarray(levels).save(tmp_path / "m.tif")
    Image.fromarray(np.stack([levels] * 3, axis=-1)).save(tmp_path / "rgb.jpg", quality=100)
    for name in ("m.png", "m.tif"):
        mask = load_mask(tmp_path / name)
        assert (mask.encoding, mask.channels, mask.width, bytes(mask.data)) == ("raw", 1, 3, levels.tobytes())
    assert load_mask(tmp_path / "rgb.jpg").channels == 1
    (tmp_path / "m16.png").write_bytes(png_of(levels.astype(np.uint16) * 257))
    sixteen = load_mask(tmp_path / "m16.png")
    assert (sixteen.encoding, sixteen.width, sixteen.height) == ("png", 3, 1)
    assert mask_levels(sixteen, 100).tolist() == [[0, 65535, 1799]]


# ----------------------------------------------------------------------------- a real daemon


@pytest.fixture(scope="module")
def daemon(tmp_path_factory):
    return shared_daemon(tmp_path_factory)


def _send(client: RawClient, request_id: str, *, masks: list | None = None, sources: list | None = None,
          styles: int = 1, content: bool = True, params: dict | None = None, content_channels: int = 3) -> None:
    """A stylize of a W×H content and ``styles`` 24×24 styles; ``masks``/``sources``: lists of
    (width, height, bytes) or None, sent raw grey8 after the images."""
    payloads = ([rgb_bytes(W, H, content_channels)] if content else []) + \
        [rgb_bytes(STYLE, STYLE, 3, seed=i + 1) for i in range(styles)]
    header = {"type": "stylize", "id": request_id,
              "content": raw_image(1, W, H, content_channels) if content else None,
              "styles": [raw_image(i + 1 + content, STYLE, STYLE) for i in range(styles)],
              "params": {**FAST, "iterations": 4, **(params or {})}}
    for key, entries in (("style_masks", masks), ("style_source_masks", sources)):
        if entries is None:
            continue
        header[key] = []
        for entry in entries:
            if entry is None:
                header[key].append(None)
                continue
            width, height, data = entry
            payloads.append(data)
            header[key].append(raw_image(len(payloads), width, height, 1))
    client.send(header, *payloads)


@pytest.mark.parametrize("request_kw, code, field, words", [
    ({"masks": [(W, H - 1, grey(W, H - 1, 255))]}, "bad_request", "style_masks[0]", "content's size"),
    ({"masks": [None, (W, H, grey(W, H, 255))]}, "bad_request", "style_masks[1]", "one mask per style"),
    ({"masks": [(W, H, grey(W, H, 0))]}, "bad_request", "style_masks[0]", "all black"),
    ({"masks": [(W, H, grey(W, H, 255))], "content": False, "params": {"width": 32, "height": 32}},
     "bad_request", "style_masks", "texture"),
    ({"sources": [(STYLE + 1, STYLE, grey(STYLE + 1, STYLE, 255))]}, "bad_request", "style_source_masks[0]",
     "style image's size"),
    ({"sources": [None, (STYLE, STYLE, grey(STYLE, STYLE, 0))], "styles": 2}, "bad_request",
     "style_source_masks[1]", "all black"),
    ({"content_channels": 1}, "bad_request", "content", "one channel"),
], ids=["wrong-size", "one-too-many", "all-black", "no-content", "source-wrong-size", "source-all-black",
        "grey-content"])
def test_each_bad_mask_is_refused_before_accepted_with_its_code_and_field(daemon, request_kw, code, field,
                                                                           words) -> None:
    with RawClient(daemon.endpoint) as client:
        _send(client, "bad", **request_kw)
        stream = client.stream("bad", timeout=30, quiet=0.6)
        assert [h["type"] for h, _ in stream] == ["error"], "refused before accepted: one error alone"
        error = stream[0][0]
        assert (error["code"], error.get("field")) == (code, field), error
        assert words in error["message"]
        assert client.request({"type": "ping", "id": "p"})["type"] == "pong"  # still serving


def test_an_all_black_png_mask_is_refused_before_accepted_like_a_raw_one(daemon) -> None:
    """A PNG mask's size is checked from its header in the socket loop, its levels off the loop (the admission
    pool, tests/test_server_admission.py): both refusals come alone, with no ``accepted``."""
    def send(request_id: str, width: int) -> list:
        client.send({"type": "stylize", "id": request_id, "content": raw_image(1, W, H),
                     "styles": [raw_image(2, STYLE, STYLE)], "style_masks": [{"frame": 3, "encoding": "png"}],
                     "params": {**FAST, "iterations": 2}},
                    rgb_bytes(W, H), rgb_bytes(STYLE, STYLE), png_of(np.zeros((H, width), np.uint8)))
        return client.stream(request_id, timeout=60, quiet=0.6)

    with RawClient(daemon.endpoint) as client:
        wrong = send("png-wrong", W + 1)
        assert [h["type"] for h, _ in wrong] == ["error"] and wrong[0][0]["field"] == "style_masks[0]"
        black = send("png-black", W)
        assert [h["type"] for h, _ in black] == ["error"], "refused before accepted: one error alone"
        error = black[0][0]
        assert (error["code"], error["field"]) == ("bad_request", "style_masks[0]") and "all black" in error["message"]


def test_a_raw_mask_of_three_channels_is_refused(daemon) -> None:
    with RawClient(daemon.endpoint) as client:
        client.send({"type": "stylize", "id": "rgb-mask", "content": raw_image(1, W, H),
                     "styles": [raw_image(2, STYLE, STYLE)], "style_masks": [raw_image(3, W, H)],
                     "params": {**FAST, "iterations": 2}},
                    rgb_bytes(W, H), rgb_bytes(STYLE, STYLE), rgb_bytes(W, H))
        error = terminal_of(client.stream("rgb-mask", timeout=30, quiet=0))
        assert (error["type"], error["code"], error["field"]) == ("error", "bad_request", "style_masks[0]")


def _result(client: RawClient, request_id: str, **kw) -> tuple[dict, np.ndarray]:
    _send(client, request_id, **kw)
    stream = client.stream(request_id, timeout=120, quiet=0)
    assert stream[0][0]["type"] == "accepted", stream[0][0]
    header = terminal_of(stream)
    assert header["type"] == "result", header
    image = header["image"]
    payload = stream[-1][1][image["frame"] - 1]
    return header, np.frombuffer(payload, np.uint8).reshape(image["height"], image["width"], image["channels"])


def test_a_masked_job_runs_end_to_end_as_the_engine_runs_it_in_process(daemon, model) -> None:
    """Two styles meeting at the middle: the daemon's result is the in-process ``stylize`` with the same
    masks (so the masks reach the engine as sent), and differs from the same job without masks."""
    from neural_style.daemon import image_files
    from neural_style.daemon.engine import StyleParams, stylize

    halves = [(W, H, grey(W, H, left=True)), (W, H, grey(W, H, left=False))]
    with RawClient(daemon.endpoint) as client:
        masked_header, masked = _result(client, "masked", masks=halves, styles=2, params=STRONG)
        _, plain = _result(client, "plain", styles=2, params=STRONG)
        _, nils = _result(client, "nils", styles=2, masks=[None, None], params=STRONG)
    assert masked.shape == plain.shape == (26, 32, 3)  # FAST's size 32: the masks were scaled with the content
    assert np.abs(masked.astype(int) - plain).mean() > 3.0, "the masks changed nothing"
    assert np.array_equal(nils, plain), "a list of nils is the unmasked request"

    content = image_files.tensor_from_bytes(rgb_bytes(W, H), W, H, 3)
    styles = [image_files.tensor_from_bytes(rgb_bytes(STYLE, STYLE, 3, seed=i + 1), STYLE, STYLE, 3) for i in (0, 1)]
    masks = [mask_tensor(mask_levels(ImageData.raw(data, w, h, 1), 10**6)) for w, h, data in halves]
    local = stylize(model, content, styles, StyleParams(**{**FAST, **STRONG}), style_masks=masks)
    local_bytes = image_files.tensor_to_array(local.image)
    assert np.abs(local_bytes.astype(int) - masked).max() <= 2  # thread counts may round differently
    assert masked_header["loss"]["total"] == pytest.approx(local.loss.total, rel=1e-3)


def test_a_source_mask_changes_the_style_and_is_part_of_its_cache_key(daemon) -> None:
    """The same style image with another source mask is another style: its targets are not the cached ones."""
    top = np.zeros((STYLE, STYLE), np.uint8)
    top[: STYLE // 2] = 255
    bottom = 255 - top
    with RawClient(daemon.endpoint) as client:
        _, whole = _result(client, "whole", params=STRONG)
        first, upper = _result(client, "top", sources=[(STYLE, STYLE, top.tobytes())], params=STRONG)
        again, upper_again = _result(client, "top-again", sources=[(STYLE, STYLE, top.tobytes())], params=STRONG)
        other, lower = _result(client, "bottom", sources=[(STYLE, STYLE, bottom.tobytes())], params=STRONG)
    assert first["style_cache_misses"] > 0 and again["style_cache_misses"] == 0
    assert other["style_cache_misses"] > 0, "another source mask must not reuse the cached targets"
    assert np.array_equal(upper, upper_again)
    assert np.abs(upper.astype(int) - whole).mean() > 3.0 and np.abs(upper.astype(int) - lower).mean() > 3.0


@pytest.mark.parametrize("old, new", [(True, "luminance"), (False, "off")])
def test_the_old_boolean_preserve_color_still_means_what_it_did(daemon, old, new) -> None:
    with RawClient(daemon.endpoint) as client:
        _, by_boolean = _result(client, f"old-{old}", params={"preserve_color": old})
        _, by_name = _result(client, f"new-{new}", params={"preserve_color": new})
    assert np.array_equal(by_boolean, by_name)


def test_histogram_colour_runs_through_the_daemon_and_an_unknown_mode_is_refused(daemon) -> None:
    with RawClient(daemon.endpoint) as client:
        _, histogram = _result(client, "histogram", params={"preserve_color": "histogram"})
        _, off = _result(client, "off", params={"preserve_color": "off"})
        assert not np.array_equal(histogram, off)
        _send(client, "sepia", params={"preserve_color": "sepia"})
        error = terminal_of(client.stream("sepia", timeout=30, quiet=0))
    assert (error["code"], error["field"]) == ("bad_request", "params.preserve_color")


def test_a_turned_jpeg_has_its_upright_size_so_that_its_mask_fits(daemon) -> None:
    """A phone photo: a 40×32 JPEG whose EXIF says "turn it", decoded 32×40; a mask of that size fits."""
    from neural_style.daemon.server.decode import probe

    exif = Image.Exif()
    exif[0x0112] = 6
    photo = io.BytesIO()
    Image.fromarray(np.frombuffer(rgb_bytes(W, H), np.uint8).reshape(H, W, 3)).save(photo, format="JPEG",
                                                                                  exif=exif.tobytes())
    assert probe(photo.getvalue(), "jpeg", 10**6) == (H, W)
    with RawClient(daemon.endpoint) as client:
        client.send({"type": "stylize", "id": "turned", "content": {"frame": 1, "encoding": "jpeg"},
                     "styles": [raw_image(2, STYLE, STYLE)], "style_masks": [raw_image(3, H, W, 1)],
                     "params": {**FAST, "iterations": 2}},
                    photo.getvalue(), rgb_bytes(STYLE, STYLE), grey(H, W, 255))
        assert terminal_of(client.stream("turned", timeout=60, quiet=0))["type"] == "result"


def test_a_cluster_worker_gets_the_masks_as_bytes_of_its_own() -> None:
    """``serve --ray`` pickles the request to its actor: received masks are memoryviews of ZeroMQ's frames."""
    import pickle

    from neural_style.daemon.cluster.actor import portable_request
    from neural_style.daemon.engine import StyleParams
    from neural_style.daemon.server.jobs import StylizeRequest

    def view(data: bytes, channels: int) -> ImageData:
        return ImageData.raw(memoryview(data), 2, 2, channels)

    request = StylizeRequest(StyleParams(), view(bytes(12), 3), [view(bytes(12), 3)],
                             style_masks=[None, view(bytes([255] * 4), 1)], style_source_masks=[view(bytes(4), 1)])
    again = pickle.loads(pickle.dumps(portable_request(request)))
    assert again.style_masks == [None, ImageData.raw(bytes([255] * 4), 2, 2, 1)]
    assert again.style_source_masks == [ImageData.raw(bytes(4), 2, 2, 1)]
