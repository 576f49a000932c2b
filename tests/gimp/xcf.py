"""Just enough of GIMP's XCF format to check a saved image from outside GIMP.

Reads the header, the layer list and, per layer, its name, size, offsets and whether it
has a layer mask (the pixel data is checked through PNG exports instead).
Format: https://developer.gimp.org/core/standards/xcf/
"""
from __future__ import annotations

import struct
from dataclasses import dataclass

PROP_END = 0
PROP_OFFSETS = 15


@dataclass
class XcfLayer:
    name: str
    width: int
    height: int
    offsets: tuple[int, int]
    has_mask: bool


@dataclass
class XcfImage:
    version: int
    width: int
    height: int
    layers: list[XcfLayer]  # top to bottom, as GIMP stores them


class _Reader:
    def __init__(self, data: bytes, pointer_size: int) -> None:
        self.data, self.pos, self.pointer_size = data, 0, pointer_size

    def u32(self) -> int:
        (v,) = struct.unpack_from(">I", self.data, self.pos)
        self.pos += 4
        return v

    def pointer(self) -> int:
        if self.pointer_size == 8:
            (v,) = struct.unpack_from(">Q", self.data, self.pos)
            self.pos += 8
            return v
        return self.u32()

    def string(self) -> str:
        n = self.u32()
        raw = self.data[self.pos:self.pos + n]
        self.pos += n
        return raw.rstrip(b"\0").decode("utf-8")

    def properties(self) -> dict[int, bytes]:
        props = {}
        while True:
            kind, length = self.u32(), self.u32()
            payload = self.data[self.pos:self.pos + length]
            self.pos += length
            if kind == PROP_END:
                return props
            props[kind] = payload


def read_xcf(path: str) -> XcfImage:
    with open(path, "rb") as fh:
        data = fh.read()
    if not data.startswith(b"gimp xcf "):
        raise ValueError(f"{path} is not an XCF file")
    tag = data[9:13]
    version = 0 if tag == b"file" else int(tag[1:].decode())
    reader = _Reader(data, 8 if version >= 11 else 4)
    reader.pos = 14
    width, height, _base = reader.u32(), reader.u32(), reader.u32()
    if version >= 4:
        reader.u32()  # precision
    reader.properties()
    pointers = []
    while True:
        p = reader.pointer()
        if p == 0:
            break
        pointers.append(p)
    layers = []
    for p in pointers:
        reader.pos = p
        lw, lh, _type = reader.u32(), reader.u32(), reader.u32()
        name = reader.string()
        props = reader.properties()
        ox, oy = struct.unpack(">ii", props[PROP_OFFSETS]) if PROP_OFFSETS in props else (0, 0)
        reader.pointer()  # hierarchy
        mask = reader.pointer()
        layers.append(XcfLayer(name, lw, lh, (ox, oy), mask != 0))
    return XcfImage(version, width, height, layers)
