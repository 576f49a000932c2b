"""A sequence cut into chunks, one per worker of a daemon that runs several jobs at once (``serve --ray``).

Why each chunk starts early: the chunks run at the same time, so a chunk's first frame cannot start from
the frame before it (not stylized yet). Stylizing a few frames before it, from the chunk's own start,
lets the temporal term settle before the first frame the chunk writes. How many is a trade (each lead frame
is paid once more): bench/chunk_overlap_bench.py measures the warping error at the boundaries by overlap,
and docs/PERFORMANCE.md gives the figures behind ``DEFAULT_OVERLAP``. No numpy, no torch: the CLI's
parser reads the default.
"""
from __future__ import annotations

from dataclasses import dataclass
from itertools import pairwise

__all__ = ["Chunk", "plan_chunks", "DEFAULT_OVERLAP"]


@dataclass(frozen=True)
class Chunk:
    """Frames ``begin`` to ``end`` − 1, written by one worker; it starts ``lead`` frames early (stylized, not
    written: the chunk before writes them) so that its first frame enters with the look of the frames before."""

    begin: int
    end: int
    lead: int


#: Frames a chunk starts early (``--overlap``): chosen from bench/chunk_overlap_bench.py (docs/PERFORMANCE.md).
DEFAULT_OVERLAP = 4


def plan_chunks(count: int, workers: int, overlap: int = DEFAULT_OVERLAP) -> list[Chunk]:
    """``count`` frames cut into one chunk per worker (at most one per frame), of sizes differing by at most one."""
    parts = max(1, min(workers, count))
    bounds = [i * count // parts for i in range(parts + 1)]
    return [Chunk(begin, end, min(max(0, overlap), begin)) for begin, end in pairwise(bounds)]
