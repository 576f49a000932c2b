"""The engine's exceptions, importable without torch (the CLI and the server's request checks need them early)."""
from __future__ import annotations


class ParamError(ValueError):
    """A parameter is unknown, of the wrong type or out of range; the message says which and why, and
    ``field`` names it when one is to blame ("iterations", "style_layers[1]", "style_blend"), so that a
    caller can point at it without reading the message."""

    def __init__(self, message: str, field: str | None = None) -> None:
        super().__init__(message)
        self.field = field


class NonFiniteLoss(ParamError):
    """The loss overflowed float32 or became NaN: the weights (or Adam's step) are too large for this image."""


class WeightsFormatError(ValueError):
    """A state dict does not have VGG19's convolution shapes."""


class Cancelled(Exception):
    """The caller's ``should_stop`` answered True; the run ended between two iterations."""

    def __init__(self, iteration: int) -> None:
        super().__init__(f"cancelled after {iteration} iterations")
        self.iteration = iteration
