"""Images on the wire: the descriptor map in a header and the bytes in a payload frame.

Raw images are 8-bit, row-major, interleaved RGB or RGBA in sRGB, or one grey channel (a region's
mask, ``GREY``: the daemon takes it nowhere else), so a raw frame's length must be exactly
``width * height * channels``; PNG and JPEG carry their own size.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from enum import Enum
from typing import Any, Optional, Union

from .errors import ErrorCode, ProtocolError, quote

Buffer = Union[bytes, bytearray, memoryview]

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
JPEG_SIGNATURE = b"\xff\xd8\xff"
GREY = 1  # a mask's one channel (docs/PROTOCOL.md, "Regions"): admission refuses it for a picture
CHANNELS = (GREY, 3, 4)
IMAGE_KEYS = frozenset({"frame", "encoding", "width", "height", "channels"})


class Encoding(str, Enum):
    RAW = "raw"
    PNG = "png"
    JPEG = "jpeg"


ENCODINGS = frozenset(e.value for e in Encoding)


def _bad(message: str, request_id: Optional[str]) -> ProtocolError:
    return ProtocolError(ErrorCode.BAD_REQUEST, message, request_id)


def _positive_int(value: Any, name: str, request_id: Optional[str]) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise _bad(f"image '{name}' must be a positive integer, got {quote(value)}", request_id)
    return value


def _check_dims(encoding: Any, width: Any, height: Any, channels: Any,
                request_id: Optional[str]) -> str:
    """The encoding, once it and the dimensions are valid."""
    if not isinstance(encoding, str) or encoding not in ENCODINGS:
        raise _bad(f"image 'encoding' must be one of raw, png, jpeg; got {quote(encoding)}", request_id)
    if encoding == Encoding.RAW.value and None in (width, height, channels):
        raise _bad("a raw image needs 'width', 'height' and 'channels'", request_id)
    for name, value in (("width", width), ("height", height)):
        if value is not None:
            _positive_int(value, name, request_id)
    if channels is not None and (isinstance(channels, bool) or channels not in CHANNELS):
        raise _bad(f"image 'channels' must be 1 (a mask), 3 or 4, got {quote(channels)}", request_id)
    return encoding


@dataclass(frozen=True)
class ImageRef:
    """The descriptor map of an image inside a header; ``frame`` counts the header as 0."""

    frame: int
    encoding: str = Encoding.RAW.value
    width: Optional[int] = None
    height: Optional[int] = None
    channels: Optional[int] = None

    def to_map(self) -> dict[str, Any]:
        out: dict[str, Any] = {"frame": self.frame, "encoding": self.encoding}
        for key in ("width", "height", "channels"):
            value = getattr(self, key)
            if value is not None:
                out[key] = value
        return out

    @classmethod
    def from_map(cls, value: Any, *, frame_count: int, request_id: Optional[str] = None,
                 strict: bool = True) -> ImageRef:
        """Validate a descriptor; ``frame_count`` is the number of payload frames present."""
        if not isinstance(value, Mapping):
            raise _bad(f"an image must be a map, got {type(value).__name__}", request_id)
        if strict:
            unknown = sorted(str(k) for k in value if k not in IMAGE_KEYS)
            if unknown:
                raise _bad(f"unknown image field(s): {', '.join(unknown)}", request_id)
        frame = value.get("frame")
        if isinstance(frame, bool) or not isinstance(frame, int):
            raise _bad(f"image 'frame' must be an integer, got {quote(frame)}", request_id)
        if not 1 <= frame <= frame_count:
            raise _bad(f"image 'frame' {frame} does not exist (payload frames are 1..{frame_count})",
                       request_id)
        width, height, channels = value.get("width"), value.get("height"), value.get("channels")
        encoding = _check_dims(value.get("encoding"), width, height, channels, request_id)
        return cls(frame, encoding, width, height, channels)

    def check_payload(self, payload: Buffer, request_id: Optional[str] = None) -> None:
        """Reject a payload that cannot be what the descriptor says (size or magic bytes)."""
        check_payload(self.encoding, payload, self.width, self.height, self.channels, request_id)

    def image(self, payload: Buffer, request_id: Optional[str] = None) -> ImageData:
        """The image this descriptor (validated by ``from_map``) and its payload make, the payload checked
        here once: the descriptor is not validated a second time by ``ImageData``'s constructor."""
        self.check_payload(payload, request_id)
        image = object.__new__(ImageData)
        for name, value in (("data", payload), ("width", self.width), ("height", self.height),
                            ("channels", self.channels), ("encoding", self.encoding)):
            object.__setattr__(image, name, value)
        return image


def check_payload(encoding: str, payload: Buffer, width: Optional[int], height: Optional[int],
                  channels: Optional[int], request_id: Optional[str] = None) -> None:
    size = len(payload) if not isinstance(payload, memoryview) else payload.nbytes
    if encoding == Encoding.RAW.value:
        assert width is not None and height is not None and channels is not None
        expected = width * height * channels
        if size != expected:
            raise _bad(f"raw image frame is {size} bytes; {width}x{height}x{channels} needs {expected}",
                       request_id)
    elif encoding == Encoding.PNG.value:
        if bytes(payload[:8]) != PNG_SIGNATURE:
            raise _bad("image frame is not a PNG (bad signature)", request_id)
    elif encoding == Encoding.JPEG.value and bytes(payload[:3]) != JPEG_SIGNATURE:
        raise _bad("image frame is not a JPEG (bad signature)", request_id)


def encoded_size(data: Buffer) -> Optional[tuple[int, int]]:
    """(width, height) of PNG or JPEG bytes from their headers alone, else None."""
    head = bytes(data[:64 * 1024])  # a JPEG's frame header follows its APPn segments (EXIF, ICC: usually small)
    if head[:8] == PNG_SIGNATURE and head[12:16] == b"IHDR":
        return int.from_bytes(head[16:20], "big"), int.from_bytes(head[20:24], "big")
    if head[:3] != JPEG_SIGNATURE:
        return None
    at = 2
    while at + 9 <= len(head) and head[at] == 0xFF:
        marker, length = head[at + 1], int.from_bytes(head[at + 2:at + 4], "big")
        if 0xC0 <= marker <= 0xCF and marker not in (0xC4, 0xC8, 0xCC):  # SOFn: precision, height, width
            return int.from_bytes(head[at + 7:at + 9], "big"), int.from_bytes(head[at + 5:at + 7], "big")
        at += 2 + length
    return None


@dataclass(frozen=True)
class ImageData:
    """An image as code handles it: the bytes and what they are. Validated on construction.

    ``data`` is any bytes-like object; received images are memoryviews of ZeroMQ's own
    buffers (no copy of a 64 MiB frame), so call ``bytes(image.data)`` where bytes are needed.
    """

    data: Buffer
    width: Optional[int] = None
    height: Optional[int] = None
    channels: Optional[int] = None
    encoding: str = Encoding.RAW.value

    def __post_init__(self) -> None:
        if isinstance(self.encoding, Encoding):
            object.__setattr__(self, "encoding", self.encoding.value)
        _check_dims(self.encoding, self.width, self.height, self.channels, None)
        check_payload(self.encoding, self.data, self.width, self.height, self.channels)

    @classmethod
    def raw(cls, data: Buffer, width: int, height: int, channels: int) -> ImageData:
        return cls(data, width, height, channels, Encoding.RAW.value)

    @classmethod
    def png(cls, data: Buffer) -> ImageData:
        return cls(data, encoding=Encoding.PNG.value)

    @classmethod
    def jpeg(cls, data: Buffer) -> ImageData:
        return cls(data, encoding=Encoding.JPEG.value)

    @classmethod
    def from_file_bytes(cls, data: Buffer) -> Optional[ImageData]:
        """A PNG or JPEG file's bytes as they are (the daemon decodes them under its limits), else None:
        other formats must be decoded by the caller and sent raw."""
        head = bytes(data[:8])
        if head == PNG_SIGNATURE:
            return cls.png(data)
        if head[:3] == JPEG_SIGNATURE:
            return cls.jpeg(data)
        return None

    def pixels(self) -> Optional[int]:
        """Width × height: from the descriptor, or read from a PNG's IHDR or a JPEG's frame header (no decoding);
        None where neither says (a damaged header: the daemon will say so)."""
        if self.width is not None and self.height is not None:
            return self.width * self.height
        size = encoded_size(self.data)
        return size[0] * size[1] if size is not None else None

    def ref(self, frame: int) -> ImageRef:
        return ImageRef(frame, self.encoding, self.width, self.height, self.channels)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, ImageData):
            return NotImplemented
        return (self.encoding, self.width, self.height, self.channels) == (
            other.encoding, other.width, other.height, other.channels) and bytes(self.data) == bytes(other.data)

    def __hash__(self) -> int:
        return hash((self.encoding, self.width, self.height, self.channels, len(self.data)))

    def __repr__(self) -> str:  # never dump megabytes of pixels into a log line
        return (f"ImageData(encoding={self.encoding!r}, width={self.width}, height={self.height}, "
                f"channels={self.channels}, bytes={len(self.data)})")
