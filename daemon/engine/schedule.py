"""Coarse-to-fine: the working sizes of one run and how its iterations are split between them.

Torch-free arithmetic. A run optimises at a few sizes, each starting from the upsampled result of
the last, so that the large-scale arrangement is found where an iteration is cheap and the finest
size only refines it. An iteration at a size of P pixels costs about P (the convolutions), so an
iteration at half the side costs a quarter of one at full size: the split gives the coarse sizes
more iterations (``FRONT_LOADING``). docs/PERFORMANCE.md has the measurements behind the constants.

- ``scales = 0`` (automatic): from about ``COARSE_SIDE`` up to the output, each size ``AUTO_STEP``
  times the last; an output no larger than ``COARSE_SIDE`` runs at one size.
- ``scales = N``: N sizes, each twice the last (the parameter's meaning since protocol v1).
"""
from __future__ import annotations

import math
from dataclasses import dataclass

#: The automatic schedule's coarsest longest side: where the arrangement of the style is settled.
COARSE_SIDE = 512
#: The automatic schedule's step between sizes: ×2 and ×√2 reach the single-scale loss within the spread
#: between runs at 768, 1024 and 2048 px (docs/PERFORMANCE.md, "Time to quality, fifth session"): ×2, one
#: size fewer.
AUTO_STEP = 2.0
#: ``scales = N``: each size twice the last.
EXPLICIT_STEP = 2.0
#: A size's share of the iterations ∝ (output pixels / its pixels) ** FRONT_LOADING: 0 splits them
#: equally, 1 gives every size the same time. Measured (docs/PERFORMANCE.md).
FRONT_LOADING = 0.5


@dataclass(frozen=True)
class Scale:
    """One size of the schedule: (height, width) and the iterations run there."""

    height: int
    width: int
    iterations: int

    @property
    def size(self) -> tuple[int, int]:
        return self.height, self.width

    @property
    def pixels(self) -> int:
        return self.height * self.width


def scale_sizes(height: int, width: int, scales: int, smallest: int = 1, *, coarse_side: int = COARSE_SIDE,
                step: float = AUTO_STEP) -> list[tuple[int, int]]:
    """The working sizes, coarse to fine, ending at (height, width); each side at least ``smallest``.

    ``scales = 0``: as many sizes as it takes to go from at most ``coarse_side`` to the output in
    steps of ``step``; ``scales = N``: N sizes, each ``EXPLICIT_STEP`` times the last. Sizes that
    coincide once raised to ``smallest`` are merged.
    """
    if scales < 0:
        raise ValueError("scales must be 0 (automatic) or more")
    if scales == 0:
        longest = max(height, width)
        count = 1 + max(0, math.ceil(math.log(longest / coarse_side) / math.log(step) - 1e-9))
    else:
        count, step = scales, EXPLICIT_STEP
    sizes: list[tuple[int, int]] = []
    for k in range(count - 1, -1, -1):
        factor = step**k
        size = (max(smallest, round(height / factor)), max(smallest, round(width / factor)))
        if not sizes or sizes[-1] != size:
            sizes.append(size)
    return sizes


def split_iterations(total: int, pixels: list[int], front_loading: float = FRONT_LOADING) -> list[int]:
    """``total`` iterations over sizes of ``pixels`` (coarse to fine), each at least one, summing to ``total``.

    A size's share is ∝ (pixels[-1] / its pixels) ** front_loading; the rounding is by largest
    remainder, ties to the finer size. Needs ``total ≥ len(pixels)`` (see ``schedule``).
    """
    if total < len(pixels):
        raise ValueError(f"{total} iterations cannot cover {len(pixels)} sizes")
    weights = [(pixels[-1] / p) ** front_loading for p in pixels]
    spare = total - len(pixels)  # one each first
    shares = [spare * w / sum(weights) for w in weights]
    counts = [1 + math.floor(s) for s in shares]
    order = sorted(range(len(pixels)), key=lambda i: (shares[i] - math.floor(shares[i]), i), reverse=True)
    for i in order[: total - sum(counts)]:
        counts[i] += 1
    return counts


def content_weight_factor(scale: Scale, output: Scale) -> float:
    """What a size's content weight is multiplied by so that every size optimises the output's trade-off.

    The content loss sums over positions (the paper's ½ Σ (F − P)²) while the style loss compares Gram
    matrices that are averages over positions, so at a size with 1/k of the output's pixels the content
    would weigh k times less against the style, and each coarse size would optimise a more stylised
    image than the output's α/β asks for, which the next size must then undo. Scaled by output pixels /
    this size's pixels, each size's loss estimates the output's: measured in docs/PERFORMANCE.md
    ("Coarse to fine: the content weight per scale"). TV needs nothing: for a smooth image it does
    not change with the sampling (k² differences, each 1/k as large).
    """
    return output.pixels / scale.pixels


def schedule(height: int, width: int, *, scales: int, iterations: int, smallest: int = 1,
             coarse_side: int = COARSE_SIDE, step: float = AUTO_STEP,
             front_loading: float = FRONT_LOADING) -> list[Scale]:
    """The run's scales, coarse to fine, with their iterations (summing to ``iterations``).

    With fewer iterations than automatic sizes, the coarsest sizes are dropped: every size keeps at
    least one iteration and the last is always the output's.
    """
    sizes = scale_sizes(height, width, scales, smallest, coarse_side=coarse_side, step=step)
    sizes = sizes[max(0, len(sizes) - iterations):]
    counts = split_iterations(iterations, [h * w for h, w in sizes], front_loading)
    return [Scale(h, w, n) for (h, w), n in zip(sizes, counts)]

