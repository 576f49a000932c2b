"""``python -m neural_style.daemon.server``: the same command as ``neural-style serve``."""

from __future__ import annotations

import argparse
import sys

from neural_style.daemon.cli import add_serve_options
from neural_style.daemon.cli import main as cli_main

from .main import SERVE_DESCRIPTION


def build_parser() -> argparse.ArgumentParser:
    """``serve``'s parser under this module's name: the same options (``cli.add_serve_options``)."""
    return add_serve_options(argparse.ArgumentParser(prog="python -m neural_style.daemon.server",
                                                     description=SERVE_DESCRIPTION))


def main(argv: list[str] | None = None) -> int:
    """``neural-style serve`` itself: its logging, its exit codes."""
    return cli_main(["serve", *(sys.argv[1:] if argv is None else argv)])


if __name__ == "__main__":
    sys.exit(main())
