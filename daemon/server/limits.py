"""This daemon's limits: the bounds its ``serve`` options put on what one request may ask.

Why a module of its own: the limits are one fact read in several places (the request
reader's per-message bounds, the admission checks, the socket's ``MAXMSGSIZE``, the queue's
length, ``pong``'s ``limits``), so they are declared once here and imported everywhere.

Two of them are budgets rather than refusals: ``max_memory`` and ``max_preview_size`` bound
what a job gets, and a request may ask for less (``job_bound``: the smaller of the two, 0
meaning "no bound of its own"), never for more.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from neural_style.daemon.engine.params import PARAM_SPECS

__all__ = ["Limits", "MiB", "job_bound"]

MiB = 1024 * 1024


def job_bound(requested: int, daemon: int) -> int:
    """The smaller of a request's and the daemon's bound, where 0 means "no bound of its own"."""
    if not requested or not daemon:
        return requested or daemon
    return min(requested, daemon)


@dataclass(frozen=True)
class Limits:
    """Bounds on what one request may ask of the daemon (``serve`` options)."""

    max_pixels: int = 25_000_000  # per input image: a 24-megapixel photo fits, and its native-size job
    max_message_bytes: int = 256 * MiB  # all frames of one message together: a 24 MP RGBA raw frame is 96 MB
    max_iterations: int = 5000
    max_size: int = 2048  # longest side of a scaled-down working size (size, width, height); not native jobs
    max_queue: int = 16  # jobs waiting behind the running one
    max_styles: int = 8
    max_memory: int = 0  # MiB a job may use (the request's max_memory is capped to it); 0: what the device gives
    max_preview_size: int = 2048  # longest side of a progress preview (the request's preview_size is capped); 0: none

    def __post_init__(self) -> None:
        for name in ("max_pixels", "max_message_bytes", "max_iterations", "max_size", "max_styles"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be at least 1")
        if self.max_queue < 0:
            raise ValueError("max_queue must be >= 0")
        for name, param in (("max_memory", "max_memory"), ("max_preview_size", "preview_size")):
            try:  # the request parameter's own range applies (0 included)
                PARAM_SPECS[param].coerce(getattr(self, name))
            except ValueError as exc:
                raise ValueError(name + str(exc).removeprefix(param)) from None  # "max_preview_size must be…"

    @property
    def max_request_frames(self) -> int:
        """A request is a header, a content image and up to ``max_styles`` style images."""
        return 2 + self.max_styles

    def describe(self) -> dict[str, int]:
        """The limits as a map, for ``pong`` replies: every bound the daemon applies, so that a client
        (the GIMP plug-in) sizes its requests from these instead of restating them."""
        return dataclasses.asdict(self)
