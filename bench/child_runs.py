"""Running one measurement in a fresh Python process, so that its peak RSS is its own.

A bench calls itself with ``--child SPEC`` (a JSON map); the child prints one JSON line. ``--mmap-threshold``
sets glibc's M_MMAP_THRESHOLD for the children (see docs/PERFORMANCE.md).
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from collections.abc import Callable
from typing import Any

#: Set by --mmap-threshold: extra environment for the child processes.
CHILD_ENV: dict[str, str] = {}


def add_child_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--mmap-threshold", type=int, help="glibc M_MMAP_THRESHOLD (bytes) for the measured processes")
    parser.add_argument("--child", help=argparse.SUPPRESS)


def serve_child(args: argparse.Namespace, child: Callable[[dict[str, Any]], dict[str, Any]]) -> bool:
    """Apply --mmap-threshold; in a child, run the measurement and print its JSON line. True in a child."""
    if args.mmap_threshold:
        CHILD_ENV["MALLOC_MMAP_THRESHOLD_"] = str(args.mmap_threshold)
    if args.child:
        print(json.dumps(child(json.loads(args.child))))
        return True
    return False


def run_child(script: str, spec: dict[str, Any]) -> dict[str, Any]:
    """``script --child spec`` in a new process: its JSON line, or ``spec`` with the error's last line."""
    done = subprocess.run([sys.executable, script, "--child", json.dumps(spec)], capture_output=True, text=True,
                          env={**os.environ, **CHILD_ENV})
    if done.returncode != 0:
        lines = done.stderr.strip().splitlines()
        return {**spec, "error": lines[-1] if lines else f"exit {done.returncode}"}
    return dict(json.loads(done.stdout.strip().splitlines()[-1]))
