"""Admission: a decoded ``stylize`` message becomes a ``StylizeRequest`` for a job, or is refused.

Why a module of its own: this is the daemon's request translator, the one place between
the wire and the job queue where a request is checked, as plain functions of (message,
limits) that raise ``CodedError`` with the protocol's error code.  What the engine's
parameters accept is the engine's schema (``StyleParams``, ``plan_inputs``); only this
daemon's own limits (``limits.py``) are applied here.  The socket loop calls ``admit_stylize``
and stays free of rules.

Two stages, both before ``accepted``.  ``admit_stylize`` runs in the socket loop and reads no
compressed pixels: PNG/JPEG headers are only probed (``decode.probe``), so that a decompression bomb is
refused before anything inflates it, and raw grey8 region masks, one byte per pixel within ``max_pixels``,
have their levels checked by the engine's rule (``check_masks``) and dropped.  A request with PNG/JPEG
masks or PNG pictures (``needs_reading``) then goes to ``judge_pixels`` on the admission pool's threads
(``admission_pool.py``), off the loop: a PNG picture's chunks are checked (structure and CRCs, no
inflating: a truncated or corrupted one is refused), a mask's levels are inflated, an all-black or
undecodable mask refused with the same code and field as a raw one, and an 8-bit mask handed on to the
worker as raw grey8 so that it is not inflated twice (within ``max_message_bytes``, the bound a
request's images already had).  A picture's pixels, and a JPEG picture's validity, are read by the
worker when the job starts: inflating every picture before ``accepted`` would cost each request the
decode a second time (or hold its decoded pixels while it waits in the queue).
"""

from __future__ import annotations

import dataclasses

import numpy as np

from neural_style.daemon.engine.engine_errors import ParamError
from neural_style.daemon.engine.params import StyleParams, plan_inputs
from neural_style.daemon.engine.region_masks import MaskFrame, check_masks
from neural_style.daemon.engine.sizes import output_size
from neural_style.daemon.mask_images import mask_frame
from neural_style.protocol.errors import CodedError, ErrorCode
from neural_style.protocol.image_data import GREY, ImageData
from neural_style.protocol.messages import Earlier, Previous, Stylize

from .decode import decode_mask_levels, probe, verify_png
from .jobs import StylizeRequest
from .limits import Limits, job_bound

__all__ = ["admit_stylize", "judge_pixels", "needs_reading", "wire_field"]


def wire_field(exc: ParamError) -> str | None:
    """The request's field a ParamError is about: ``style_blend`` is the request's own, every other
    name one of its ``params`` ("params.iterations", "params.style_layers[1]")."""
    if exc.field is None or exc.field.startswith(REQUEST_FIELDS):
        return exc.field
    return f"params.{exc.field}"


#: The request's own fields an engine ParamError may name, beside the params.
REQUEST_FIELDS = ("style_blend", "style_masks", "style_source_masks")


def _image_size(image: ImageData, what: str, limits: Limits) -> tuple[int, int]:
    """(width, height) of a request image within ``max_pixels``: a raw image's from its descriptor, a
    PNG/JPEG's from its header (probed, not decoded), which must agree with the descriptor's hint."""
    if image.width is not None and image.height is not None and image.width * image.height > limits.max_pixels:
        raise CodedError(ErrorCode.TOO_LARGE,
                         f"{what} is {image.width}x{image.height} = {image.width * image.height} pixels; "
                         f"this daemon accepts at most {limits.max_pixels} pixels per image", field=what)
    if image.encoding == "raw":
        assert image.width is not None and image.height is not None  # ImageData checks raw descriptors
        return image.width, image.height
    try:
        width, height = probe(image.data, image.encoding, limits.max_pixels)
    except CodedError as exc:
        raise CodedError(exc.code, f"{what}: {exc.message}", field=what) from None
    if (image.width is not None and image.width != width) or \
            (image.height is not None and image.height != height):
        raise CodedError(ErrorCode.BAD_REQUEST,
                         f"{what}: the header says {image.width}x{image.height} but the "
                         f"{image.encoding} data is {width}x{height}", field=what)
    return width, height


def _picture_size(image: ImageData, what: str, limits: Limits) -> tuple[int, int]:
    """``_image_size`` of a content, style or previous frame: a picture, so not a raw grey mask."""
    if image.channels == GREY and image.encoding == "raw":
        raise CodedError(ErrorCode.BAD_REQUEST, f"{what} is a raw image of one channel: pictures are RGB or RGBA "
                                                "(one grey channel is for style_masks)", field=what)
    return _image_size(image, what, limits)


def _mask_frames(masks: list[ImageData | None] | None, name: str, limits: Limits) -> list[MaskFrame | None] | None:
    """What the engine's rule needs of each mask: its size, and its peak where reading it is cheap (a raw
    grey8 frame: milliseconds at 24 MP).  A PNG's or JPEG's pixels are not inflated in the socket loop (a
    24 MP one takes a second or more, bench/mask_admission_bench.py): only its header is read here, and its
    peak is judged by ``judge_pixels`` on the admission pool's threads, still before ``accepted``."""
    if masks is None:
        return None
    frames: list[MaskFrame | None] = []
    for i, mask in enumerate(masks):
        if mask is None:
            frames.append(None)
            continue
        what = f"{name}[{i}]"
        width, height = _image_size(mask, what, limits)  # the pixel bound and a bomb, from the header alone
        frames.append(mask_frame(decode_mask_levels(mask, limits.max_pixels, what)) if mask.encoding == "raw"
                      else MaskFrame(height, width, peak=1.0))  # the peak not read yet: judge_pixels reads it
    return frames


def _judge_masks(masks: list[MaskFrame | None] | None, sources: list[MaskFrame | None] | None,
                 content: tuple[int, int] | None, styles: list[tuple[int, int]]) -> None:
    """The engine's region rule on mask frames, its ParamError coded as the wire's ``bad_request``."""
    try:
        check_masks(masks, sources, content_size=(content[1], content[0]) if content is not None else None,
                    style_sizes=[(height, width) for width, height in styles])
    except ParamError as exc:
        raise CodedError(ErrorCode.BAD_REQUEST, str(exc), field=wire_field(exc)) from None


def _check_masks(message: Stylize, content: tuple[int, int] | None, styles: list[tuple[int, int]],
                 limits: Limits) -> None:
    """The regions (docs/PROTOCOL.md, "Regions"): the engine's rule (a mask too many, the wrong size, all
    black, masks without a content) on what ``_mask_frames`` read; first the count, before any mask is read."""
    def frames(masks: list[ImageData | None] | None, name: str) -> list[MaskFrame | None] | None:
        if masks is not None and len(masks) > len(styles):  # the rule's count, before any pixel is read
            return [None] * len(masks)
        return _mask_frames(masks, name, limits)

    _judge_masks(frames(message.style_masks, "style_masks"), frames(message.style_source_masks, "style_source_masks"),
                 content, styles)


def _all_masks(request: StylizeRequest) -> list[ImageData | None]:
    return [*(request.style_masks or ()), *(request.style_source_masks or ())]


def _pictures(request: StylizeRequest) -> list[tuple[str, ImageData]]:
    """A request's pictures (not its masks), each with its field."""
    pictures = [("content", request.content)] if request.content is not None else []
    pictures += [(f"styles[{i}]", style) for i, style in enumerate(request.styles)]
    frames: list[tuple[str, Previous | Earlier]] = [("previous", request.previous)] if request.previous else []
    frames += [(f"earlier[{i}]", frame) for i, frame in enumerate(request.earlier or ())]
    for name, frame in frames:
        assert frame.content is not None and frame.stylized is not None  # the decoder requires both
        pictures += [(f"{name}.content", frame.content), (f"{name}.stylized", frame.stylized)]
    return pictures


def needs_reading(request: StylizeRequest) -> bool:
    """Whether an admitted request still has images to read before it is judged (``judge_pixels``): a
    PNG/JPEG mask's levels, a PNG picture's chunks."""
    return any(mask is not None and mask.encoding != "raw" for mask in _all_masks(request)) or \
        any(image.encoding == "png" for _, image in _pictures(request))


def _request_bytes(request: StylizeRequest) -> int:
    """The bytes of a request's images, as they count against ``max_message_bytes``."""
    images = [image for _, image in _pictures(request)] + [m for m in _all_masks(request) if m is not None]
    return sum(memoryview(image.data).nbytes for image in images)


def judge_pixels(request: StylizeRequest, limits: Limits) -> StylizeRequest:
    """The second stage of admission, off the socket loop (``admission_pool.py``): an admitted request's PNG
    pictures have their chunks checked (``verify_png``: a truncated or corrupted one is a ``bad_request``
    naming it), and its PNG/JPEG masks are inflated and judged by the engine's rule (all black: ``bad_request``
    naming the mask; one that does not inflate: ``bad_request``; past ``max_pixels``: ``too_large``).  The
    request is returned with each 8-bit mask as raw grey8, while the request's images stay within
    ``max_message_bytes`` (a 16-bit one keeps its PNG, and its precision; the worker inflates it again)."""
    for what, image in _pictures(request):
        if image.encoding == "png":
            try:
                verify_png(image.data)
            except CodedError as exc:
                raise CodedError(exc.code, f"{what}: {exc.message}", field=what) from None
    content = _picture_size(request.content, "content", limits) if request.content is not None else None
    styles = [_picture_size(style, f"styles[{i}]", limits) for i, style in enumerate(request.styles)]
    budget = limits.max_message_bytes - _request_bytes(request)

    def read(masks: list[ImageData | None] | None, name: str
             ) -> tuple[list[MaskFrame | None] | None, list[ImageData | None] | None]:
        nonlocal budget
        if masks is None:
            return None, None
        frames: list[MaskFrame | None] = []
        kept: list[ImageData | None] = []
        for i, mask in enumerate(masks):
            if mask is None or mask.encoding == "raw":  # judged whole in the loop already
                frames.append(None)
                kept.append(mask)
                continue
            levels = decode_mask_levels(mask, limits.max_pixels, f"{name}[{i}]")
            frames.append(mask_frame(levels))
            grown = levels.nbytes - memoryview(mask.data).nbytes
            if levels.dtype == np.uint8 and grown <= budget:
                budget -= grown
                height, width = levels.shape
                mask = ImageData.raw(levels.tobytes(), width, height, GREY)
            kept.append(mask)
        return frames, kept

    mask_frames, masks = read(request.style_masks, "style_masks")
    source_frames, sources = read(request.style_source_masks, "style_source_masks")
    _judge_masks(mask_frames, source_frames, content, styles)
    return dataclasses.replace(request, style_masks=masks, style_source_masks=sources)


def _check_working_size(params: StyleParams, content: tuple[int, int] | None, limits: Limits) -> None:
    """``max_size`` bounds a scaled-down working size: the content fitted to ``size`` where that is smaller
    than the content, and a texture's sides.  A job at the content's own resolution (``size`` 0, or a size
    the engine would not scale the content down to) is bounded by ``max_pixels`` instead, as its content
    is.  Which case a request is comes from the engine's own rule (``sizes.output_size``)."""
    if content is not None:
        width, height = content
        if output_size(params, (height, width)) == (height, width):
            return
        sides = [("size", params.size)]
        hint = f"; size 0 (the content's own {width}x{height}, within max_pixels) is accepted"
    else:
        out_height, out_width = output_size(params, None)
        sides = [("width" if params.width is not None else "size", out_width),
                 ("height" if params.height is not None else "size", out_height)]
        hint = ""
    for name, value in sides:
        if value > limits.max_size:
            raise CodedError(ErrorCode.TOO_LARGE, f"{name} {value} is over this daemon's max_size of {limits.max_size} "
                                                  f"pixels, which bounds every working size but a content's own{hint}",
                             field=f"params.{name}")


def _check_previous(previous: Previous, content: tuple[int, int] | None, limits: Limits) -> None:
    """A sequence's previous frame: its content frame of the content's size, its stylized frame of the
    content's shape (its size or the output's: within a pixel), a flow method the daemon has."""
    from neural_style.daemon.sequence.flow import FLOW_METHODS  # cv2: only for a sequence's request

    if content is None:
        raise CodedError(ErrorCode.BAD_REQUEST, "previous frames need a content frame (texture synthesis has none)",
                         field="previous")
    if previous.flow not in FLOW_METHODS:
        raise CodedError(ErrorCode.BAD_REQUEST, f"previous.flow must be one of {', '.join(FLOW_METHODS)}",
                         field="previous.flow")
    assert previous.content is not None and previous.stylized is not None  # the decoder requires both
    _check_frame(previous.content, previous.stylized, "previous", content, limits)


def _check_frame(before: ImageData, stylized: ImageData, name: str, content: tuple[int, int], limits: Limits) -> None:
    """An earlier frame (``name``: "previous", "earlier[1]"): its content frame of the content's size, its
    stylized frame of the content's shape (its size or the output's: within a pixel)."""
    width, height = content
    size = _picture_size(before, f"{name}.content", limits)
    if size != content:
        raise CodedError(ErrorCode.BAD_REQUEST, f"{name}.content is {size[0]}x{size[1]} but the content "
                                                f"frame is {width}x{height}: a sequence's frames have one size",
                         field=f"{name}.content")
    sw, sh = _picture_size(stylized, f"{name}.stylized", limits)
    if abs(sh * width / sw - height) > 1.0 or abs(sw * height / sh - width) > 1.0:
        raise CodedError(ErrorCode.BAD_REQUEST, f"{name}.stylized is {sw}x{sh}, not the content frame's shape "
                                                f"({width}x{height}, or that scaled)", field=f"{name}.stylized")


def _check_earlier(earlier: list[Earlier], previous: Previous | None, content: tuple[int, int] | None,
                   limits: Limits) -> None:
    """A sequence's long-term frames: only beside ``previous`` (frame t−1 holds first), at most
    ``max_earlier`` of them, offsets increasing from 2, each frame checked as ``previous`` is."""
    if previous is None or content is None:
        raise CodedError(ErrorCode.BAD_REQUEST, "earlier frames go with a previous frame (frame t−1), which this "
                                                "request does not carry", field="earlier")
    if len(earlier) > limits.max_earlier:
        raise CodedError(ErrorCode.TOO_LARGE, f"{len(earlier)} earlier frames; this daemon accepts at most "
                                              f"{limits.max_earlier}", field="earlier")
    last = 1  # previous is frame t−1
    for i, frame in enumerate(earlier):
        if frame.offset <= last:
            raise CodedError(ErrorCode.BAD_REQUEST, f"earlier[{i}].offset {frame.offset} must be over {last}: "
                                                    "offsets increase from 2 (previous is 1)",
                             field=f"earlier[{i}].offset")
        last = frame.offset
        assert frame.content is not None and frame.stylized is not None  # the decoder requires both
        _check_frame(frame.content, frame.stylized, f"earlier[{i}]", content, limits)


def admit_stylize(message: Stylize, limits: Limits) -> StylizeRequest:
    """The request a job runs for ``message`` (framing and field types already checked by the protocol
    module), after the engine's parameter checks and this daemon's ``limits``.

    Raises ``CodedError`` with ``bad_request`` (unknown params or layer names, wrong types or
    values, a style blend that does not fit the styles, nothing to optimise, undecodable
    images, a previous frame of another size or without a content) or ``too_large`` (pixels,
    decompression bombs, iterations, a scaled-down working size over ``max_size``, number of styles).
    The job's ``max_memory`` and ``preview_size`` are the request's capped by the daemon's (``job_bound``).
    """
    try:
        params = StyleParams.from_mapping(message.params or {})
    except ParamError as exc:
        raise CodedError(ErrorCode.BAD_REQUEST, f"params: {exc}", field=wire_field(exc)) from None
    try:
        plan_inputs(params, has_content=message.content is not None, style_count=len(message.styles),
                    style_blend=message.style_blend)
    except ParamError as exc:
        raise CodedError(ErrorCode.BAD_REQUEST, str(exc), field=wire_field(exc)) from None

    if params.iterations > limits.max_iterations:
        raise CodedError(ErrorCode.TOO_LARGE,
                         f"iterations {params.iterations} is over this daemon's limit of {limits.max_iterations}",
                         field="params.iterations")
    if len(message.styles) > limits.max_styles:
        raise CodedError(ErrorCode.TOO_LARGE,
                         f"{len(message.styles)} style images; this daemon accepts at most {limits.max_styles}",
                         field="styles")
    content = _picture_size(message.content, "content", limits) if message.content is not None else None
    # Style images are used at most at their own size (the engine never scales one up), so their
    # pixels bound their cost whatever style_scale says.
    styles = [_picture_size(style, f"styles[{i}]", limits) for i, style in enumerate(message.styles)]
    _check_working_size(params, content, limits)
    if message.previous is not None:
        _check_previous(message.previous, content, limits)
    if message.earlier is not None:
        _check_earlier(message.earlier, message.previous, content, limits)
    _check_masks(message, content, styles, limits)

    params = dataclasses.replace(params, max_memory=job_bound(params.max_memory, limits.max_memory),
                                 preview_size=job_bound(params.preview_size, limits.max_preview_size))
    blend = tuple(message.style_blend) if message.style_blend is not None else None
    return StylizeRequest(params=params, content=message.content, styles=list(message.styles), style_blend=blend,
                          previous=message.previous, earlier=message.earlier, style_masks=message.style_masks,
                          style_source_masks=message.style_source_masks)
