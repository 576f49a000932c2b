"""The engine's exceptions, importable without torch (the CLI and the server's request checks need them early)."""
from __future__ import annotations

from typing import Any

#: Longest quote of a caller's value in a message: enough to recognise it, never a flood.
QUOTE_LIMIT = 60


def quote(value: Any, limit: int = QUOTE_LIMIT) -> str:
    """A caller's value as a ParamError's message shows it: a scalar's repr cut to ``limit`` characters, a
    container by its type only (its repr could be huge).  The protocol has its own (``protocol.errors``): the
    engine imports nothing from the wire's package, and the wire's package nothing from the daemon."""
    if value is not None and not isinstance(value, (str, int, float)):
        return f"<{type(value).__name__}>"
    try:
        text = repr(value[: limit + 1] if isinstance(value, str) else value)
    except ValueError:  # an int beyond sys.get_int_max_str_digits() (a CLI or JSON value)
        return "<a very long integer>"
    return text if len(text) <= limit else text[: limit - 1] + "…"


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
