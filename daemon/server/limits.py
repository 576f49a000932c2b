"""This daemon's limits: the bounds its ``serve`` options put on what one request may ask.

Why a module of its own: the limits are one fact read in several places (the request
reader's per-message bounds, the admission checks, the socket's ``MAXMSGSIZE``, the queue's
length, ``pong``'s ``limits``), so they are declared once here and imported everywhere.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["Limits", "MiB"]

MiB = 1024 * 1024


@dataclass(frozen=True)
class Limits:
    """Bounds on what one request may ask of the daemon (``serve`` options)."""

    max_pixels: int = 25_000_000  # per input image: a 24-megapixel photo fits
    max_message_bytes: int = 256 * MiB  # all frames of one message together
    max_iterations: int = 5000
    max_size: int = 2048  # longest side the engine may optimise at (size, width, height)
    max_queue: int = 16  # jobs waiting behind the running one
    max_styles: int = 8

    def __post_init__(self) -> None:
        for name in ("max_pixels", "max_message_bytes", "max_iterations", "max_size", "max_styles"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be at least 1")
        if self.max_queue < 0:
            raise ValueError("max_queue must be >= 0")

    @property
    def max_request_frames(self) -> int:
        """A request is a header, a content image and up to ``max_styles`` style images."""
        return 2 + self.max_styles

    def describe(self) -> dict[str, int]:
        """The limits as a map, for ``pong`` replies (clients can size requests to fit)."""
        return {
            "max_pixels": self.max_pixels,
            "max_message_bytes": self.max_message_bytes,
            "max_iterations": self.max_iterations,
            "max_size": self.max_size,
            "max_queue": self.max_queue,
            "max_styles": self.max_styles,
        }
