"""Where the blocks of a block-wise evaluation lie: interiors that tile the image, crops with margins.

Pure geometry (no torch apart from slicing). Two rules make a block's interior features equal the
whole image's, so that block-wise evaluation is exact by construction:

- **alignment**: every interior and crop edge inside the image is a multiple of ``2^K``, K the number
  of poolings before the deepest layer used, so each crop's pooling grid is the image's;
- **margin**: a crop extends its interior by at least the deepest layer's receptive radius, so the
  zero padding of the 3×3 convolutions at a crop edge never reaches an interior feature. At the
  image's own border a crop stops, and the padding there is the whole image's padding.

Images whose sides are not multiples of ``2^K`` need nothing special: the last block in a row or
column ends at the image edge, where a crop ends too, and the poolings drop the same odd pixels.
"""
from __future__ import annotations

import itertools
from collections.abc import Collection
from dataclasses import dataclass

from .layers import poolings_before, receptive_radius


@dataclass(frozen=True)
class Span:
    """One block's extent along one axis: its interior [start, stop) inside its crop [crop_start, crop_stop)."""

    start: int
    stop: int
    crop_start: int
    crop_stop: int

    def feature_slice(self, level: int) -> slice:
        """The interior, in the crop's features at pooling level ``level`` (2^level pixels per feature).

        Floor division also gives the last block's end right: the crop and the image end together
        there, and both drop the pixels that do not fill a pooling cell.
        """
        return slice((self.start - self.crop_start) >> level, (self.stop - self.crop_start) >> level)


@dataclass(frozen=True)
class Block:
    rows: Span
    cols: Span

    @property
    def crop(self) -> tuple[slice, slice]:
        """(rows, cols) of the crop in image pixels, for ``image[..., rows, cols]``."""
        return slice(self.rows.crop_start, self.rows.crop_stop), slice(self.cols.crop_start, self.cols.crop_stop)

    @property
    def interior(self) -> tuple[slice, slice]:
        """(rows, cols) of the interior in image pixels."""
        return slice(self.rows.start, self.rows.stop), slice(self.cols.start, self.cols.stop)

    def interior_features(self, features, level: int):
        """The interior's part of a crop's features (…, C, h, w) at pooling level ``level``."""
        return features[..., self.rows.feature_slice(level), self.cols.feature_slice(level)]

    def image_features(self, features, level: int):
        """The interior's part of a whole image's features (…, C, h, w) at pooling level ``level``."""
        return features[..., self.rows.start >> level: self.rows.stop >> level,
                        self.cols.start >> level: self.cols.stop >> level]


def layer_grid(layers: Collection[str]) -> tuple[int, int]:
    """(grid, margin) in pixels for evaluating ``layers`` block-wise: the deepest layer's alignment and
    its receptive radius, rounded up to that alignment (relu5_1: 16, 80; relu4_2: 8, 40; pool5: 32, 128)."""
    grid = 2 ** max((poolings_before(name) for name in layers), default=0)
    radius = max((receptive_radius(name) for name in layers), default=0)
    return grid, -(-radius // grid) * grid


@dataclass(frozen=True)
class BlockGrid:
    """The blocks for one image size and one set of layers; ``block_size`` bounds an interior's side."""

    height: int
    width: int
    block_size: int
    grid: int
    margin: int

    @classmethod
    def for_layers(cls, height: int, width: int, layers: Collection[str], block_size: int,
                   margin: int | None = None) -> BlockGrid:
        """The grid for ``layers``; ``block_size`` is rounded down to the alignment (at least one cell).

        ``margin`` overrides the safe margin; only tests do that, to show a short margin is not exact.
        """
        grid, safe_margin = layer_grid(layers)
        size = max(grid, block_size // grid * grid)
        return cls(height, width, size, grid, safe_margin if margin is None else margin)

    def blocks(self) -> list[Block]:
        rows, cols = self._spans(self.height), self._spans(self.width)
        return [Block(r, c) for r in rows for c in cols]

    def interior_side(self, length: int) -> int:
        """The longest interior along an axis of ``length`` pixels (at most block_size)."""
        cells, count = self._cells(length)
        return min(length, -(-cells // count) * self.grid)

    def crop_side(self, length: int) -> int:
        """The longest crop along an axis of ``length`` pixels (the memory of one evaluation follows it)."""
        return min(length, self.interior_side(length) + 2 * self.margin)

    def _cells(self, length: int) -> tuple[int, int]:
        """(alignment cells along the axis, the last one maybe partial; blocks along the axis)."""
        cells = -(-length // self.grid)
        return cells, -(-cells // (self.block_size // self.grid))

    def _spans(self, length: int) -> list[Span]:
        """Blocks of as equal a number of cells as possible (never above block_size): no thin last sliver."""
        cells, count = self._cells(length)
        edges = [i * cells // count * self.grid for i in range(count)] + [length]
        return [Span(start, stop, max(0, start - self.margin), min(length, stop + self.margin))
                for start, stop in itertools.pairwise(edges)]
