"""bench/gpu_bench.py is for a CUDA machine (never run in CI); here only its options and its CPU dry run."""
from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[1] / "bench" / "gpu_bench.py"


@pytest.fixture(scope="module")
def gpu_bench():
    spec = importlib.util.spec_from_file_location("gpu_bench", BENCH)
    module = importlib.util.module_from_spec(spec)
    sys.modules["gpu_bench"] = module  # its dataclasses look their module up by name
    spec.loader.exec_module(module)
    yield module
    del sys.modules["gpu_bench"]


def test_its_options(gpu_bench, capsys):
    args = gpu_bench.parse_args([])
    assert args.parts == gpu_bench.PARTS and args.budget_list == ["24", "card"] and args.iterations == 500
    args = gpu_bench.parse_args(["--part", "24mp", "--budgets", "12, card", "--ck-run"])
    assert args.parts == ("24mp",) and args.budget_list == ["12", "card"] and args.ck_run
    with pytest.raises(SystemExit):
        gpu_bench.parse_args(["--budgets", "lots"])
    assert "--budgets takes numbers of GiB" in capsys.readouterr().err
    assert (2172, 2896) in gpu_bench.LARGEST_SIZES and all(h * w >= 24e6 for h, w in gpu_bench.HUGE_SIZES)


def test_the_dry_run_goes_through_every_part_on_the_cpu(tmp_path):
    out = tmp_path / "rows.json"
    done = subprocess.run([sys.executable, str(BENCH), "--dry-run", "--ck-run", "--json", str(out)],
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert "dry run: toy sizes, no figures" in done.stdout
    rows = json.loads(out.read_text())["rows"]
    assert [r["size"] for r in rows] == ["32×32", "64×48", "128×96", "64×48", "128×96", "64×48", "80×64"]
    assert all(not r["error"] and r["seconds"] > 0 and "whole image" in r["plan"] for r in rows)
    assert "within 24 GiB" in rows[1]["what"] and "whole card" in rows[3]["what"]


def test_without_cuda_it_refuses_with_one_clear_message():
    """No CUDA (CI, this machine): a nonzero exit and a message saying why, before any work."""
    done = subprocess.run([sys.executable, str(BENCH), "--part", "512"], capture_output=True, text=True, timeout=120,
                          env={**os.environ, "CUDA_VISIBLE_DEVICES": ""})
    assert done.returncode != 0
    assert "no CUDA GPU here" in done.stderr and "Traceback" not in done.stderr
    assert "|" not in done.stdout  # no table started
