"""Check a style file before anything loads it, so a bad choice gets one message naming the file.

PNG and JPEG go to the daemon as they are; both must be complete (a truncated download
is the common failure), which their end markers show.  Any other image format is loaded
by GIMP, but only when the file looks like an image: a text file picked by mistake is
reported here, not by GIMP's "Unknown file type" error.
"""
from __future__ import annotations

import os

from .settings import SettingsError, label

# Leading bytes of the formats GIMP 3 opens with its standard loaders (beyond PNG and JPEG).
_SIGNATURES = (
    (b"GIF87a", "GIF"), (b"GIF89a", "GIF"), (b"BM", "BMP"), (b"II*\x00", "TIFF"), (b"MM\x00*", "TIFF"),
    (b"8BPS", "PSD"), (b"gimp xcf", "XCF"), (b"\x76\x2f\x31\x01", "OpenEXR"), (b"\x00\x00\x00\x0cJXL ", "JPEG XL"),
    (b"\xff\x0a", "JPEG XL"), (b"qoif", "QOI"), (b"DDS ", "DDS"), (b"\x00\x00\x01\x00", "ICO"),
)
# Formats without a reliable signature: trusted by their extension.
_EXTENSIONS = {".tga", ".pcx", ".pnm", ".ppm", ".pgm", ".pbm", ".pam", ".xpm", ".svg", ".sgi", ".rgb", ".ora",
               ".heic", ".heif", ".avif", ".webp", ".ico", ".xbm", ".fits", ".fit"}
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
PNG_END = b"IEND\xaeB`\x82"
JPEG_MAGIC = b"\xff\xd8\xff"
JPEG_END = b"\xff\xd9"


def sniff(head: bytes, path: str = "") -> str | None:
    """The format of a file from its first bytes (and, for signature-less formats, its extension)."""
    if head.startswith(PNG_MAGIC):
        return "PNG"
    if head.startswith(JPEG_MAGIC):
        return "JPEG"
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "WebP"
    if head[4:8] == b"ftyp":
        return "HEIF/AVIF"
    for magic, name in _SIGNATURES:
        if head.startswith(magic):
            return name
    if os.path.splitext(path)[1].lower() in _EXTENSIONS:
        return os.path.splitext(path)[1][1:].upper()
    return None


def truncated(data: bytes, fmt: str) -> bool:
    """True when a PNG or JPEG lacks its end marker (JPEGs may carry a little trailing padding)."""
    if fmt == "PNG":
        return not data.rstrip(b"\x00").endswith(PNG_END)
    if fmt == "JPEG":
        return JPEG_END not in data[-1024:]
    return False


def check_style_file(path: str, argument: str = "style") -> str:
    """The format of the style file at ``path``, or a SettingsError that names the file and the setting."""
    what = f"'{label(argument)}' {path}"
    if not os.path.isfile(path):
        raise SettingsError(f"{what} does not exist or is not a file. Choose an image file.", argument)
    try:
        with open(path, "rb") as fh:
            head = fh.read(32)
            fmt = sniff(head, path)
            if fmt in ("PNG", "JPEG"):
                fh.seek(0)
                damaged = truncated(fh.read(), fmt)
            else:
                damaged = False
    except OSError as exc:
        raise SettingsError(f"{what} cannot be read ({exc.strerror or exc}).", argument) from None
    if fmt is None:
        raise SettingsError(f"{what} is not an image file GIMP can open. Choose a PNG or JPEG image "
                            "(or another image format GIMP opens).", argument)
    if damaged:
        raise SettingsError(f"{what} is an incomplete {fmt} file (it ends before the image does, as a "
                            "cut-off download would). Choose another file, or download it again.", argument)
    return fmt
