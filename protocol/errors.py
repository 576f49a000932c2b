"""Error codes of protocol v1 and the exceptions this package raises.

The codes are part of the public contract (docs/PROTOCOL.md, "Error codes"): a client
in any language branches on them, so they are plain strings on the wire.
"""

from __future__ import annotations

from enum import Enum
from typing import Any

#: Longest quote of a client's value in an error message: enough to recognise it, never a flood.
QUOTE_LIMIT = 60


class ErrorCode(str, Enum):
    """Every ``code`` an ``error`` reply may carry (see docs/PROTOCOL.md)."""

    BAD_REQUEST = "bad_request"  # malformed msgpack, wrong types, unknown fields/params/layers, bad frames
    TOO_LARGE = "too_large"  # over a size limit: pixels, message bytes, iterations, decompression bomb
    BUSY = "busy"  # the job queue is full; retry later
    CANCELLED = "cancelled"  # cancelled by the client, by a vanished client, or by daemon shutdown
    NOT_FOUND = "not_found"  # cancel named an id that has no unfinished job on this connection
    NO_WEIGHTS = "no_weights"  # the daemon has no VGG19 weights loaded
    UNSUPPORTED_VERSION = "unsupported_version"  # header "v" is not a version the daemon speaks
    CLUSTER_UNAVAILABLE = "cluster_unavailable"  # serve --ray: the Ray cluster cannot be reached, or has no worker
    WORKER_LOST = "worker_lost"  # serve --ray: the job's worker died twice (killed, node lost) while running it
    INTERNAL = "internal"  # a bug or an unexpected failure inside the daemon (e.g. out of memory)


ERROR_CODES: frozenset[str] = frozenset(code.value for code in ErrorCode)


def code_value(code: ErrorCode | str) -> str:
    """The wire string of a code (accepts the enum or its string)."""
    return code.value if isinstance(code, ErrorCode) else str(code)


def quote(value: Any, limit: int = QUOTE_LIMIT) -> str:
    """A client's value as an error message may show it: a scalar's repr cut to ``limit``
    characters, a container by its type only (its repr could be huge or recurse too deep).

    Every module that puts client data into a message uses this (``wire``, ``images``, ``messages``)."""
    if isinstance(value, str):
        text = repr(value[: limit + 1])
    elif isinstance(value, (int, float)) or value is None:
        try:
            text = repr(value)
        except ValueError:  # an int beyond sys.get_int_max_str_digits() (a CLI or JSON value, not msgpack)
            text = "<a very long integer>"
    else:
        return f"<{type(value).__name__}>"
    return text if len(text) <= limit else text[: limit - 1] + "…"


class NeuralStyleError(Exception):
    """Base of every exception raised by ``neural_style.protocol``."""


class CodedError(NeuralStyleError):
    """An error that carries a protocol error ``code``, its ``message``, the ``request_id`` it concerns
    and, when one is to blame, the ``field`` of the request ("styles[1]", "params.iterations").

    The one coded error of both ends: the daemon raises it for a request it refuses (admission,
    image decoding) and answers with its code and message; ``ProtocolError`` and ``DaemonError``
    are its two kinds on the wire's either side."""

    def __init__(self, code: ErrorCode | str, message: str, request_id: str | None = None,
                 field: str | None = None) -> None:
        super().__init__(message)
        self.code: str = code_value(code)
        self.message = message
        self.request_id = request_id
        self.field = field

    def __str__(self) -> str:
        return f"{self.code}: {self.message}"


class ProtocolError(CodedError, ValueError):
    """A message breaks protocol v1; ``code`` is the error code the daemon answers with.

    ``request_id`` is the header's id when it could be read (so the daemon can address its
    ``error`` reply), else ``None``.
    """


class DaemonError(CodedError):
    """The daemon answered a request with an ``error`` message."""


class DaemonUnavailable(NeuralStyleError, ConnectionError):
    """No daemon answered in time, or contact with it was lost in the middle of a job."""
