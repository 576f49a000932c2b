"""Request validation: everything the daemon refuses before a job is queued.

Why a module of its own: every limit of the daemon (pixels, message bytes,
iterations, processing size, styles, queue) and every shape check of a request
lives here, as plain functions of (request, limits) that raise ``Rejected``
with the protocol's error code.  The socket loop calls them and stays free of
rules; tests can read the rules in one place.

Nothing here decodes pixels: PNG/JPEG headers are only probed (``decode.probe``)
so that a decompression bomb is refused before the worker ever inflates it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from neural_style.daemon.engine.errors import ParamError
from neural_style.daemon.engine.params import StyleParams, plan_inputs
from neural_style.protocol.errors import ErrorCode
from neural_style.protocol.images import ImageData
from neural_style.protocol.messages import Stylize

from .decode import ImageProblem, probe

__all__ = ["Limits", "Rejected", "StylizeRequest", "validate_stylize"]

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
        """The limits as a map, for ``status`` replies (clients can size requests to fit)."""
        return {
            "max_pixels": self.max_pixels,
            "max_message_bytes": self.max_message_bytes,
            "max_iterations": self.max_iterations,
            "max_size": self.max_size,
            "max_queue": self.max_queue,
            "max_styles": self.max_styles,
        }


class Rejected(Exception):
    """A request the daemon answers with an ``error`` (and does not run)."""

    def __init__(self, code: ErrorCode | str, message: str) -> None:
        super().__init__(message)
        self.code = code.value if isinstance(code, ErrorCode) else str(code)
        self.message = message


@dataclass
class StylizeRequest:
    """A validated ``stylize`` request: engine parameters, still-encoded images and their blend."""

    params: StyleParams
    content: ImageData | None
    styles: list[ImageData]
    style_blend: tuple[float, ...] | None = None


def _check_image(image: ImageData, what: str, limits: Limits) -> None:
    if image.width is not None and image.height is not None and image.width * image.height > limits.max_pixels:
        raise Rejected(ErrorCode.TOO_LARGE,
                       f"{what} is {image.width}x{image.height} = {image.width * image.height} pixels; "
                       f"this daemon accepts at most {limits.max_pixels} pixels per image")
    if image.encoding != "raw":
        try:
            width, height = probe(image.data, image.encoding, limits.max_pixels)
        except ImageProblem as exc:
            raise Rejected(exc.code, f"{what}: {exc}") from None
        if (image.width is not None and image.width != width) or \
                (image.height is not None and image.height != height):
            raise Rejected(ErrorCode.BAD_REQUEST,
                           f"{what}: the header says {image.width}x{image.height} but the "
                           f"{image.encoding} data is {width}x{height}")


def validate_stylize(message: Stylize, limits: Limits) -> StylizeRequest:
    """Check a decoded ``stylize`` (framing and field types already checked by the protocol
    module) against the engine's parameters and this daemon's ``limits``.

    Raises ``Rejected`` with ``bad_request`` (unknown params or layer names, wrong types or
    values, a style blend that does not fit the styles, nothing to optimise, undecodable
    images) or ``too_large`` (pixels, decompression bombs, iterations, processing size,
    number of styles). What the engine's parameters accept is the engine's schema; only
    this daemon's own limits are written here.
    """
    try:
        params = StyleParams.from_mapping(message.params or {})
    except ParamError as exc:
        raise Rejected(ErrorCode.BAD_REQUEST, f"params: {exc}") from None
    try:
        plan_inputs(params, has_content=message.content is not None, style_count=len(message.styles),
                    style_blend=message.style_blend)
    except ParamError as exc:
        raise Rejected(ErrorCode.BAD_REQUEST, str(exc)) from None

    if params.iterations > limits.max_iterations:
        raise Rejected(ErrorCode.TOO_LARGE,
                       f"iterations {params.iterations} is over this daemon's limit of {limits.max_iterations}")
    for name in ("size", "width", "height"):
        value = getattr(params, name)
        if value is not None and value > limits.max_size:
            raise Rejected(ErrorCode.TOO_LARGE,
                           f"{name} {value} is over this daemon's limit of {limits.max_size} pixels")
    # The engine resizes style images to style_scale × the working size; bound that too.
    if params.style_scale * params.size > 2 * limits.max_size:
        raise Rejected(ErrorCode.TOO_LARGE,
                       f"style_scale {params.style_scale} at size {params.size} would process style images "
                       f"at {math.ceil(params.style_scale * params.size)} pixels; the limit is {2 * limits.max_size}")
    if len(message.styles) > limits.max_styles:
        raise Rejected(ErrorCode.TOO_LARGE,
                       f"{len(message.styles)} style images; this daemon accepts at most {limits.max_styles}")

    if message.content is not None:
        _check_image(message.content, "content", limits)
    for i, style in enumerate(message.styles):
        _check_image(style, f"styles[{i}]", limits)
    blend = tuple(message.style_blend) if message.style_blend is not None else None
    return StylizeRequest(params=params, content=message.content, styles=list(message.styles), style_blend=blend)
