#!/usr/bin/env python3
"""Install Neural Style: a virtual environment with the package, then (later) the GIMP plug-in.

Placeholder written by the lead; the GIMP plug-in helper extends it.
"""
from __future__ import annotations

import argparse
import subprocess
import sys
import venv
from pathlib import Path

ROOT = Path(__file__).resolve().parent


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--venv", type=Path, default=ROOT / ".venv")
    args = parser.parse_args(argv)
    python = args.venv / "bin" / "python"
    if not python.exists():
        venv.EnvBuilder(with_pip=True).create(args.venv)
    subprocess.run([str(python), "-m", "pip", "install", "-q", "-e", f"{ROOT}[test]"], check=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
