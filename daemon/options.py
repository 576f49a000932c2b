"""Option types and declarations the command line's subcommands share, torch-free and server-free.

Why a module of its own: ``neural-style serve`` (``server/main.py``) and the in-process commands
(``cli.py``) both read memory sizes and counts and both load the model, so these live once here
and neither of the two imports the other for them (no CLI ↔ server import cycle).
"""
from __future__ import annotations

import argparse
import re

__all__ = ["WEIGHT_FORMATS", "add_model_options", "mebibytes", "non_negative_int", "positive_int"]

#: The VGG19 files ``--weights-format`` names (``engine/vgg.py`` reads them; a test keeps the two equal).
WEIGHT_FORMATS = ("torchvision", "caffe")

#: Suffixes a memory size accepts, in MiB (a bare number is MiB).
_MEMORY_UNITS = {"": 1, "m": 1, "mb": 1, "mib": 1, "g": 1024, "gb": 1024, "gib": 1024, "t": 1 << 20, "tb": 1 << 20,
                 "tib": 1 << 20}


def mebibytes(text: str) -> int:
    """"2G", "512M", "1.5GiB" or "2048" (MiB) → MiB, rounded down (``--max-memory`` of stylize and serve)."""
    match = re.fullmatch(r"\s*([0-9]+(?:\.[0-9]*)?)\s*([a-zA-Z]*)\s*", text)
    unit = match.group(2).lower() if match else None
    if match is None or unit not in _MEMORY_UNITS:
        raise argparse.ArgumentTypeError(f"expected a memory size such as 2G, 512M or 0, got {text!r}")
    return int(float(match.group(1)) * _MEMORY_UNITS[unit])


def positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1 (got {value})")
    return value


def non_negative_int(text: str) -> int:
    value = int(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be at least 0 (got {value})")
    return value


def add_model_options(parser: argparse.ArgumentParser) -> None:
    """``--weights``, ``--weights-format`` and ``--device``: declared once for every command that loads VGG19."""
    from .engine.devices import DEVICE_CHOICES, DEVICE_HELP

    group = parser.add_argument_group("model")
    group.add_argument("--weights", metavar="PATH|random",
                       help="VGG19 weights file, or 'random' for seeded random weights (tests and demos); "
                            "default: the torchvision cache")
    group.add_argument("--weights-format", choices=WEIGHT_FORMATS, default=WEIGHT_FORMATS[0],
                       help="torchvision state dict, or the Caffe-converted VGG19 of neural-style-pt")
    group.add_argument("--device", default="auto", metavar="|".join(DEVICE_CHOICES), help=DEVICE_HELP)
