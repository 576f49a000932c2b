"""``python -m neural_style.daemon.server``: the daemon without the rest of the CLI."""

from __future__ import annotations

import argparse
import sys

from .main import SERVE_HELP, add_serve_arguments, serve


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m neural_style.daemon.server",
                                     description=SERVE_HELP[0].upper() + SERVE_HELP[1:] + ".")
    group = parser.add_argument_group("model")
    group.add_argument("--weights", metavar="PATH|random", help="VGG19 weights file, or 'random'")
    group.add_argument("--weights-format", choices=("torchvision", "caffe"), default="torchvision")
    group.add_argument("--device", default="auto", help="auto, cpu or cuda")
    add_serve_arguments(parser)
    return parser


def main(argv: list[str] | None = None) -> int:
    return serve(build_parser().parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
