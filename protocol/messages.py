"""Typed messages of protocol v1: one dataclass per message type, each field declared once.

A field's annotation is its wire type and ``wire(...)`` its default and rules; ``codec.py``
encodes and decodes every message from these declarations (adding a field is one line here
and one row in docs/PROTOCOL.md).  Requests are decoded strictly (unknown fields are a
``bad_request``), replies leniently (unknown fields ignored, so a newer daemon can add fields).
``params`` of a stylize request stays an opaque map here, ``style_blend`` a list of numbers and
the masks images: the daemon checks their values against the engine's schema and rules.

Client data reaches error messages only in bounded form (``errors.quote``, and every decoding
error's message is cut to ``MAX_ERROR_MESSAGE``), and a header may nest values at most
``MAX_NESTING`` levels deep, so a hostile header cannot flood a reply or exhaust the stack.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, ClassVar, Optional, TypeVar, Union

from .codec import Frames, Reader, encode_fields, from_record, wire
from .errors import ErrorCode, ProtocolError, quote
from .image_data import Buffer, ImageData, ImageRef
from .wire import MAX_HEADER_BYTES, PROTOCOL_VERSION, decode, encode, peek_id

JOB_STATES = ("queued", "running")
#: How deep a request header may nest maps and lists (the protocol itself needs 3: styles → image → field).
MAX_NESTING = 32
#: Longest message of a decoding error.
MAX_ERROR_MESSAGE = 300
M = TypeVar("M", bound="Message")


def _nesting_within(value: Any, limit: int) -> bool:
    """True when maps and lists in ``value`` nest at most ``limit`` deep (iterative: no recursion)."""
    stack = [(value, 0)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, dict):
            children: Any = item.values()
        elif isinstance(item, (list, tuple)):
            children = item
        else:
            continue
        if depth >= limit:
            return False
        stack.extend((child, depth + 1) for child in children)
    return True


@dataclass
class Message:
    """Base of every message: ``id`` is the client's request id, echoed in every reply."""

    TYPE: ClassVar[str] = ""
    id: str

    @classmethod
    def of(cls: type[M], request_id: str, record: Any, **given: Any) -> M:
        """This message from a record with attributes of its fields' names (the engine's ``EngineProgress``
        and ``StyleResult``: one vocabulary, so no field is copied by hand); ``given`` overrides some."""
        return cls(request_id, **from_record(cls, record, given))

    def to_frames(self) -> list[Buffer]:
        """Frames of this message, ready for ``send_multipart`` (prepend the routing id on a ROUTER)."""
        frames = Frames()
        header = {"type": self.TYPE, "id": self.id, **encode_fields(self, frames)}  # encode() adds "v"
        return encode(header, frames.payloads)


# ----------------------------------------------------------------------------- requests


@dataclass
class Ping(Message):
    TYPE: ClassVar[str] = "ping"


@dataclass
class Status(Message):
    TYPE: ClassVar[str] = "status"


@dataclass
class Previous:
    """A sequence's frame before this one: its content frame and its stylized result, so that the daemon
    stylizes this frame consistently with it (optical flow, warp, certainty) while each request stays
    stateless. Both images are required together; ``flow`` is the daemon's to check (its flow methods)."""

    content: Optional[ImageData] = wire(None, required=True, nullable=False)  # the same size as the request's
    stylized: Optional[ImageData] = wire(None, required=True, nullable=False)  # the content's shape
    flow: str = wire("dis", minimum=1)


@dataclass
class Earlier:
    """A sequence's frame further back than the previous one (long-term consistency): its content frame,
    its stylized result and how many frames back it is (``offset`` ≥ 2); the daemon flows it to this frame
    and holds each pixel by the closest frame (``previous`` first) where it is visible."""

    content: Optional[ImageData] = wire(None, required=True, nullable=False)  # the same size as the request's
    stylized: Optional[ImageData] = wire(None, required=True, nullable=False)  # the content's shape
    offset: int = wire(2, required=True, minimum=2)  # frames back; increasing along the list


@dataclass
class Stylize(Message):
    TYPE: ClassVar[str] = "stylize"
    content: Optional[ImageData] = wire(None, required=True)  # nil for texture synthesis, never by omission
    styles: list[ImageData] = wire(default_factory=list, required=True, min_items=1)
    params: dict[str, Any] = wire(default_factory=dict)
    style_blend: Optional[list[float]] = wire(None, omit_nil=True)  # its values are the daemon's to check
    previous: Optional[Previous] = wire(None, omit_nil=True)  # a sequence's previous frame (issue 15)
    # Regions (issue 17): one entry per style, in the order of ``styles``; nil = the whole image.
    style_masks: Optional[list[Optional[ImageData]]] = wire(None, omit_nil=True)  # each the content's size
    style_source_masks: Optional[list[Optional[ImageData]]] = wire(None, omit_nil=True)  # each its style's size
    earlier: Optional[list[Earlier]] = wire(None, omit_nil=True)  # frames further back (long-term), with previous


@dataclass
class Cancel(Message):
    """Cancel the unfinished stylize job ``target`` sent earlier on the same connection."""

    TYPE: ClassVar[str] = "cancel"
    target: str = wire("", required=True, minimum=1)


# ----------------------------------------------------------------------------- replies


@dataclass
class Loss:
    """Loss terms, already weighted: ``total = content + style + tv``."""

    total: float = 0.0
    content: float = 0.0
    style: float = 0.0
    tv: float = 0.0


@dataclass
class JobInfo:
    """One unfinished job in a ``status_reply``."""

    id: str = wire(required=True, minimum=None)
    state: str = wire(required=True, choices=JOB_STATES)
    position: int = 0  # jobs that run before this one; 0 for the running job
    iteration: int = 0
    iterations: int = 0
    elapsed: float = 0.0
    worker: Optional[str] = wire(None, omit_nil=True)  # the cluster worker running it (serve --ray only)

@dataclass
class Pong(Message):
    TYPE: ClassVar[str] = "pong"
    daemon_version: str = wire("", required=True)
    protocol: int = wire(PROTOCOL_VERSION, required=True)
    device: str = wire("", required=True)
    weights_loaded: bool = wire(False, required=True)
    weights: Optional[str] = None  # what was loaded, e.g. "vgg19 (caffe)"; nil when nothing
    queue_length: int = 0  # unfinished jobs, the running one included
    limits: dict[str, int] = wire(default_factory=dict)
    workers: Optional[int] = wire(None, omit_nil=True, minimum=1)  # jobs it runs at once (serve --ray); nil: one

    @property
    def slots(self) -> int:
        """How many jobs this daemon runs at once: what a client with many independent jobs keeps in flight."""
        return self.workers or 1


@dataclass
class StatusReply(Message):
    TYPE: ClassVar[str] = "status_reply"
    running: Optional[JobInfo] = None
    queued: list[JobInfo] = wire(default_factory=list)
    also_running: Optional[list[JobInfo]] = wire(None, omit_nil=True)  # a cluster's other running jobs (serve --ray)

    @property
    def queue_length(self) -> int:
        return len(self.queued) + (self.running is not None) + len(self.also_running or ())


@dataclass
class CancelAck(Message):
    """The daemon found ``target`` and is stopping it; its stream ends with error ``cancelled``."""

    TYPE: ClassVar[str] = "cancel_ack"
    target: str = wire("", required=True)
    state: str = "queued"  # what the job was doing when the cancel arrived


@dataclass
class Accepted(Message):
    TYPE: ClassVar[str] = "accepted"
    position: int = wire(0, required=True)  # jobs that will run before this one; 0 = starts now


@dataclass
class Heartbeat(Message):
    """Sent by the daemon for each unfinished job every HEARTBEAT_INTERVAL seconds."""

    TYPE: ClassVar[str] = "heartbeat"
    state: str = "queued"
    position: int = 0


@dataclass
class Progress(Message):
    TYPE: ClassVar[str] = "progress"
    iteration: int = wire(0, required=True)
    iterations: int = wire(0, required=True)
    loss: Loss = wire(default_factory=Loss, required=True)
    elapsed: float = wire(0.0, required=True)
    image: Optional[ImageData] = wire(None, omit_nil=True)  # preview, only when params.preview is true
    scale: int = wire(1, minimum=1)  # the size being optimised, 1 the coarsest, of ``scales``
    scales: int = wire(1, minimum=1)
    seconds_left: Optional[float] = None  # estimate from the measured rate; nil until one step was timed


@dataclass
class Result(Message):
    """Terminal success: the stylized image (raw, the content's channel count)."""

    TYPE: ClassVar[str] = "result"
    image: Optional[ImageData] = wire(None, required=True, nullable=False)
    loss: Loss = wire(default_factory=Loss, required=True)
    iterations: int = 0
    elapsed: float = wire(0.0, required=True)
    style_cache_hits: int = 0
    style_cache_misses: int = 0


@dataclass
class Error(Message):
    """Terminal failure of a request; ``code`` is one of errors.ErrorCode's values, ``field`` (when one is
    to blame) the request's field it is about: ``"styles[1]"``, ``"params.iterations"``."""

    TYPE: ClassVar[str] = "error"
    code: str = wire(ErrorCode.INTERNAL.value, required=True)
    message: str = ""
    field: Optional[str] = wire(None, omit_nil=True)

    def __post_init__(self) -> None:
        if isinstance(self.code, ErrorCode):
            self.code = self.code.value


@dataclass
class UnknownReply(Message):
    """A reply type this client does not know (sent by a newer daemon): to be ignored."""

    TYPE: ClassVar[str] = ""
    type: str = ""
    header: dict[str, Any] = wire(default_factory=dict)


Request = Union[Ping, Status, Stylize, Cancel]
Reply = Union[Pong, StatusReply, CancelAck, Accepted, Heartbeat, Progress, Result, Error, UnknownReply]
TERMINAL_TYPES = frozenset({Result.TYPE, Error.TYPE})

#: The classes of ``Request`` and of ``Reply`` (but ``UnknownReply``), to look a header's type up and to
#: check what was decoded.
REQUEST_CLASSES = (Ping, Status, Stylize, Cancel)
REPLY_CLASSES = (Pong, StatusReply, CancelAck, Accepted, Heartbeat, Progress, Result, Error)
REQUEST_TYPES: dict[str, type[Message]] = {c.TYPE: c for c in REQUEST_CLASSES}
REPLY_TYPES: dict[str, type[Message]] = {c.TYPE: c for c in REPLY_CLASSES}
_ENVELOPE_KEYS = frozenset({"v", "type", "id"})


def _decode_typed(frames: Sequence[Any], types: dict[str, type[Message]], strict: bool,
                  kind: str, **kwargs: Any) -> Message:
    """Decode one message; every ProtocolError leaves with a bounded message."""
    try:
        return _decode_checked(frames, types, strict, kind, **kwargs)
    except ProtocolError as exc:
        if len(exc.message) <= MAX_ERROR_MESSAGE:
            raise
        raise ProtocolError(exc.code, exc.message[: MAX_ERROR_MESSAGE - 1] + "…", exc.request_id,
                            exc.field) from None
    except RecursionError:  # formatting a value nested near msgpack's own limit, before the check below
        raise ProtocolError(ErrorCode.BAD_REQUEST, f"the header nests values more than {MAX_NESTING} levels deep",
                            peek_id(frames[0]) if frames else None) from None


def _decode_checked(frames: Sequence[Any], types: dict[str, type[Message]], strict: bool,
                    kind: str, **kwargs: Any) -> Message:
    env = decode(frames, **kwargs)
    if strict and not _nesting_within(env.header, MAX_NESTING):
        raise ProtocolError(ErrorCode.BAD_REQUEST, f"the header nests values more than {MAX_NESTING} levels deep",
                            env.id)
    cls = types.get(env.type)
    if cls is None and not strict:
        return UnknownReply(env.id, env.type, env.header)
    if cls is None:
        raise ProtocolError(ErrorCode.BAD_REQUEST,
                            f"unknown {kind} type {quote(env.type)} (expected one of {', '.join(sorted(types))})",
                            env.id)
    reader = Reader(env, strict)
    message = cls(env.id, **reader.fields(cls, env.header, known=_ENVELOPE_KEYS))
    reader.finish()
    return message


def decode_request(frames: Sequence[Any], *, max_header_bytes: int = MAX_HEADER_BYTES) -> Request:
    """Daemon side: frames (routing envelope stripped) to a validated request, or ProtocolError."""
    request = _decode_typed(frames, REQUEST_TYPES, True, "request", max_header_bytes=max_header_bytes)
    assert isinstance(request, REQUEST_CLASSES)  # strict decoding knows no other type
    return request


def decode_reply(frames: Sequence[Any]) -> Reply:
    """Client side: frames to a reply. Unknown fields are ignored and unknown types come back
    as UnknownReply, for forward compatibility; known fields are still type-checked."""
    reply = _decode_typed(frames, REPLY_TYPES, False, "reply", allow_empty_id=True)
    assert isinstance(reply, (*REPLY_CLASSES, UnknownReply))  # the known types, or UnknownReply for the others
    return reply


def error_frames(request_id: Optional[str], code: Union[ErrorCode, str], message: str,
                 field: Optional[str] = None) -> list[Buffer]:
    """Frames of an ``error`` reply; an unreadable request id becomes ``""``."""
    return Error(request_id or "", code if isinstance(code, str) else code.value, message, field).to_frames()


__all__ = [
    "Message", "Ping", "Status", "Stylize", "Cancel", "Pong", "StatusReply", "CancelAck", "Accepted",
    "Heartbeat", "Progress", "Result", "Error", "UnknownReply", "Loss", "Previous", "Earlier", "JobInfo", "ImageData",
    "ImageRef", "Request", "Reply", "REQUEST_TYPES", "REPLY_TYPES", "TERMINAL_TYPES", "decode_request", "decode_reply",
    "error_frames", "JOB_STATES", "MAX_NESTING",
]
