"""Image files and bytes ↔ tensors: modes, alpha, and the errors a bad or oversized image gives."""
from __future__ import annotations

import io

import pytest
import torch
from PIL import Image

from neural_style.daemon.image_files import ImageError, decode_image, load_image, tensor_from_bytes, tensor_to_bytes
from neural_style.daemon.local_errors import ImageTooLarge


def png(mode: str, size=(6, 4), **info) -> bytes:
    buffer = io.BytesIO()
    Image.new(mode, size, **info).save(buffer, format="PNG")
    return buffer.getvalue()


@pytest.mark.parametrize("mode, channels", [("RGB", 3), ("L", 3), ("RGBA", 4), ("LA", 4)])
def test_modes_become_rgb_or_rgba(mode, channels):
    assert decode_image(png(mode)).shape == (channels, 4, 6)


def test_raw_round_trip_is_exact():
    data = bytes(range(6 * 4 * 4))[: 6 * 4 * 4]
    image = tensor_from_bytes(data, 6, 4, 4)
    assert tensor_to_bytes(image) == (data, 6, 4, 4)
    with pytest.raises(ImageError, match="needs 96 bytes"):
        tensor_from_bytes(data[:-1], 6, 4, 4)


def test_oversized_images_are_refused_as_too_large_before_decoding():
    with pytest.raises(ImageTooLarge, match="above the limit of 20"):
        decode_image(png("RGB"), max_pixels=20)


def test_a_bad_image_is_an_image_error_not_too_large(tmp_path):
    with pytest.raises(ImageError) as error:
        decode_image(b"\x89PNG\r\n\x1a\n not really")
    assert not isinstance(error.value, ImageTooLarge)
    (tmp_path / "x.png").write_bytes(b"nope")
    with pytest.raises(ImageError, match="not an image"):
        load_image(tmp_path / "x.png")


def test_the_daemon_maps_too_large_to_its_error_code():
    from neural_style.daemon.server.decode import decode_request_image
    from neural_style.protocol.errors import CodedError
    from neural_style.protocol.image_data import ImageData

    with pytest.raises(CodedError) as problem:
        decode_request_image(ImageData.png(png("RGB")), max_pixels=20)
    assert problem.value.code == "too_large"
    assert torch.is_tensor(decode_request_image(ImageData.png(png("RGB")), max_pixels=100))
