"""The engine's exceptions, importable without torch (the CLI and the server's request checks need them early)."""
from __future__ import annotations

from typing import Any

#: Longest quote of a client's value in a message: enough to recognise it, never a flood.
QUOTE_LIMIT = 60


class ParamError(ValueError):
    """A parameter is unknown, of the wrong type or out of range; the message says which and why."""


class NonFiniteLoss(ParamError):
    """The loss overflowed float32 or became NaN: the weights (or Adam's step) are too large for this image."""


class WeightsFormatError(ValueError):
    """A state dict does not have VGG19's convolution shapes."""


class Cancelled(Exception):
    """The caller's ``should_stop`` answered True; the run ended between two iterations."""

    def __init__(self, iteration: int) -> None:
        super().__init__(f"cancelled after {iteration} iterations")
        self.iteration = iteration


def shorten(value: Any, limit: int = QUOTE_LIMIT) -> str:
    """A value as a message may quote it: a scalar's repr cut to ``limit`` characters, a container by
    its type only (it may nest a thousand levels deep, and its repr would recurse that far)."""
    if isinstance(value, str):
        text = repr(value[: limit + 1])
    elif isinstance(value, (int, float)) or value is None:
        try:
            text = repr(value)
        except ValueError:  # an int beyond sys.get_int_max_str_digits()
            text = "<a very long integer>"
    else:
        return f"<{type(value).__name__}>"
    return text if len(text) <= limit else text[: limit - 1] + "…"
