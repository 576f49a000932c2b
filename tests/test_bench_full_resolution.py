"""bench/full_resolution_bench.py's seam statistic (the bench itself takes minutes: never in CI)."""
from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest
import torch

BENCH = Path(__file__).resolve().parents[1] / "bench" / "full_resolution_bench.py"


@pytest.fixture(scope="module")
def bench():
    spec = importlib.util.spec_from_file_location("full_resolution_bench", BENCH)
    module = importlib.util.module_from_spec(spec)
    sys.modules["full_resolution_bench"] = module
    spec.loader.exec_module(module)
    yield module
    del sys.modules["full_resolution_bench"]


def test_the_seam_statistic_is_one_without_seams_and_large_with_one(bench):
    generator = torch.Generator().manual_seed(0)
    noise = torch.rand((3, 64, 96), generator=generator)
    assert bench.seam_ratio(noise, [32], [48]) == pytest.approx(1.0, abs=0.15)  # boundaries like any pixels
    smooth = torch.nn.functional.interpolate(noise[None, :, :4, :6], size=(64, 96), mode="bilinear")[0]
    assert bench.seam_ratio(smooth, [32], [48]) < 2
    seamed = smooth.clone()
    seamed[:, :, 48:] += 0.2  # a step where the blocks meet
    assert bench.seam_ratio(seamed, [32], [48]) > 5
    seamed_rows = smooth.clone()
    seamed_rows[:, 32:, :] -= 0.2
    assert bench.seam_ratio(seamed_rows, [32], [48]) > 5
    assert bench.seam_ratio(seamed_rows, [16], [24]) < 2  # a step elsewhere is not at a boundary
