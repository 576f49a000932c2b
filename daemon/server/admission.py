"""Admission: a decoded ``stylize`` message becomes a ``StylizeRequest`` for a job, or is refused.

Why a module of its own: this is the daemon's request translator, the one place between
the wire and the job queue where a request is checked, as plain functions of (message,
limits) that raise ``CodedError`` with the protocol's error code.  What the engine's
parameters accept is the engine's schema (``StyleParams``, ``plan_inputs``); only this
daemon's own limits (``limits.py``) are applied here.  The socket loop calls ``admit_stylize``
and stays free of rules.

Nothing here decodes pixels: PNG/JPEG headers are only probed (``decode.probe``) so that a
decompression bomb is refused before the worker ever inflates it.
"""

from __future__ import annotations

import math

from neural_style.daemon.engine.engine_errors import ParamError
from neural_style.daemon.engine.params import StyleParams, plan_inputs
from neural_style.protocol.errors import CodedError, ErrorCode
from neural_style.protocol.image_data import ImageData
from neural_style.protocol.messages import Stylize

from .decode import probe
from .limits import Limits
from .stylize_request import StylizeRequest

__all__ = ["admit_stylize"]


def _check_image(image: ImageData, what: str, limits: Limits) -> None:
    if image.width is not None and image.height is not None and image.width * image.height > limits.max_pixels:
        raise CodedError(ErrorCode.TOO_LARGE,
                         f"{what} is {image.width}x{image.height} = {image.width * image.height} pixels; "
                         f"this daemon accepts at most {limits.max_pixels} pixels per image")
    if image.encoding != "raw":
        try:
            width, height = probe(image.data, image.encoding, limits.max_pixels)
        except CodedError as exc:
            raise CodedError(exc.code, f"{what}: {exc.message}") from None
        if (image.width is not None and image.width != width) or \
                (image.height is not None and image.height != height):
            raise CodedError(ErrorCode.BAD_REQUEST,
                             f"{what}: the header says {image.width}x{image.height} but the "
                             f"{image.encoding} data is {width}x{height}")


def admit_stylize(message: Stylize, limits: Limits) -> StylizeRequest:
    """The request a job runs for ``message`` (framing and field types already checked by the protocol
    module), after the engine's parameter checks and this daemon's ``limits``.

    Raises ``CodedError`` with ``bad_request`` (unknown params or layer names, wrong types or
    values, a style blend that does not fit the styles, nothing to optimise, undecodable
    images) or ``too_large`` (pixels, decompression bombs, iterations, processing size,
    number of styles).
    """
    try:
        params = StyleParams.from_mapping(message.params or {})
    except ParamError as exc:
        raise CodedError(ErrorCode.BAD_REQUEST, f"params: {exc}") from None
    try:
        plan_inputs(params, has_content=message.content is not None, style_count=len(message.styles),
                    style_blend=message.style_blend)
    except ParamError as exc:
        raise CodedError(ErrorCode.BAD_REQUEST, str(exc)) from None

    if params.iterations > limits.max_iterations:
        raise CodedError(ErrorCode.TOO_LARGE,
                         f"iterations {params.iterations} is over this daemon's limit of {limits.max_iterations}")
    for name in ("size", "width", "height"):
        value = getattr(params, name)
        if value is not None and value > limits.max_size:
            raise CodedError(ErrorCode.TOO_LARGE,
                             f"{name} {value} is over this daemon's limit of {limits.max_size} pixels")
    # The engine resizes style images to style_scale × the working size; bound that too.
    if params.style_scale * params.size > 2 * limits.max_size:
        raise CodedError(ErrorCode.TOO_LARGE,
                         f"style_scale {params.style_scale} at size {params.size} would process style images "
                         f"at {math.ceil(params.style_scale * params.size)} pixels; the limit is {2 * limits.max_size}")
    if len(message.styles) > limits.max_styles:
        raise CodedError(ErrorCode.TOO_LARGE,
                         f"{len(message.styles)} style images; this daemon accepts at most {limits.max_styles}")

    if message.content is not None:
        _check_image(message.content, "content", limits)
    for i, style in enumerate(message.styles):
        _check_image(style, f"styles[{i}]", limits)
    blend = tuple(message.style_blend) if message.style_blend is not None else None
    return StylizeRequest(params=params, content=message.content, styles=list(message.styles), style_blend=blend)
