"""Typed messages of protocol v1 and their conversion to and from frames.

Requests are decoded strictly (unknown fields are a ``bad_request``: the daemon must not
silently ignore a knob the user set); replies are decoded leniently (unknown fields are
ignored, so a newer daemon can add fields without breaking older clients).
``params`` of a stylize request stays an opaque map here, and ``style_blend`` a list of
numbers: the daemon checks their values against the engine's schema.

Client data reaches error messages only in bounded form (``errors.quote``, and every decoding
error's message is cut to ``MAX_ERROR_MESSAGE``), and a header may nest values at most
``MAX_NESTING`` levels deep, so a hostile header cannot flood a reply or exhaust the stack.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar, Optional, Union

from .errors import ErrorCode, ProtocolError, quote
from .image_data import Buffer, ImageData, ImageRef
from .wire import MAX_HEADER_BYTES, PROTOCOL_VERSION, Envelope, decode, encode, peek_id

JOB_STATES = ("queued", "running")
#: How deep a request header may nest maps and lists (the protocol itself needs 3: styles → image → field).
MAX_NESTING = 32
#: Longest message of a decoding error.
MAX_ERROR_MESSAGE = 300


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


class _Fields:
    """Typed reads of one header, remembering which keys and frames were used."""

    def __init__(self, env: Envelope, strict: bool) -> None:
        self.env = env
        self.header = env.header
        self.strict = strict
        self.id: str = env.header["id"]
        self.used = {"v", "type", "id"}
        self.frames_used: set[int] = set()

    def fail(self, message: str) -> ProtocolError:
        return ProtocolError(ErrorCode.BAD_REQUEST, f"{self.header['type']}: {message}", self.id)

    def raw(self, key: str, required: bool) -> Any:
        self.used.add(key)
        if key not in self.header:
            if required:
                raise self.fail(f"missing field '{key}'")
            return None
        return self.header[key]

    def str(self, key: str, required: bool = True, default: Optional[str] = None) -> Optional[str]:
        value = self.raw(key, required)
        if value is None and not required:
            return default
        if not isinstance(value, str):
            raise self.fail(f"'{key}' must be a string")
        return value

    def int(self, key: str, required: bool = True, default: int = 0, minimum: int = 0) -> int:
        value = self.raw(key, required)
        if value is None and not required:
            return default
        if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
            raise self.fail(f"'{key}' must be an integer >= {minimum}")
        return value

    def number(self, key: str, required: bool = True, default: float = 0.0) -> float:
        return _number(self.raw(key, required), key, self) if key in self.header or required else default

    def bool(self, key: str, required: bool = True, default: bool = False) -> bool:
        value = self.raw(key, required)
        if value is None and not required:
            return default
        if not isinstance(value, bool):
            raise self.fail(f"'{key}' must be a boolean")
        return value

    def map(self, key: str, required: bool = True) -> Optional[dict[str, Any]]:
        value = self.raw(key, required)
        if value is None:
            if required:
                raise self.fail(f"'{key}' must be a map")
            return None
        if not isinstance(value, dict):
            raise self.fail(f"'{key}' must be a map")
        return value

    def image(self, key: str, required: bool = True) -> Optional[ImageData]:
        value = self.raw(key, required)
        if value is None:
            if required:
                raise self.fail(f"'{key}' must be an image")
            return None
        return self.image_value(value)

    def image_value(self, value: Any) -> ImageData:
        ref = ImageRef.from_map(value, frame_count=len(self.env.payloads), request_id=self.id,
                                strict=self.strict)
        if ref.frame in self.frames_used:
            raise self.fail(f"frame {ref.frame} is referenced by more than one image")
        self.frames_used.add(ref.frame)
        payload = self.env.frame(ref.frame)
        ref.check_payload(payload, self.id)
        return ImageData(payload, ref.width, ref.height, ref.channels, ref.encoding)

    def finish(self) -> None:
        if not self.strict:
            return
        unknown = sorted(k for k in self.header if k not in self.used)
        if unknown:
            more = f" and {len(unknown) - 5} more" if len(unknown) > 5 else ""
            raise self.fail(f"unknown field(s): {', '.join(quote(k) for k in unknown[:5])}{more}")
        unused = sorted(set(range(1, len(self.env.payloads) + 1)) - self.frames_used)
        if unused:
            raise self.fail(f"payload frame(s) {unused} are not referenced by any image")


def _number(value: Any, key: str, fields: _Fields) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise fields.fail(f"'{key}' must be a finite number")
    return float(value)


class _Frames:
    """Collects payload frames while a header is built, handing out their indices."""

    def __init__(self) -> None:
        self.payloads: list[Buffer] = []

    def attach(self, image: ImageData) -> dict[str, Any]:
        self.payloads.append(image.data)
        return image.ref(len(self.payloads)).to_map()


@dataclass
class Message:
    """Base of every message: ``id`` is the client's request id, echoed in every reply."""

    TYPE: ClassVar[str] = ""
    id: str

    def _fields(self, frames: _Frames) -> dict[str, Any]:
        return {}

    @classmethod
    def _read(cls, f: _Fields) -> Message:
        return cls(f.id)

    def to_frames(self) -> list[Buffer]:
        frames = _Frames()
        header = {"type": self.TYPE, "id": self.id, **self._fields(frames)}  # encode() adds "v"
        return encode(header, frames.payloads)


# ----------------------------------------------------------------------------- requests


@dataclass
class Ping(Message):
    TYPE: ClassVar[str] = "ping"


@dataclass
class Status(Message):
    TYPE: ClassVar[str] = "status"


@dataclass
class Stylize(Message):
    TYPE: ClassVar[str] = "stylize"
    content: Optional[ImageData] = None
    styles: list[ImageData] = field(default_factory=list)
    params: dict[str, Any] = field(default_factory=dict)
    style_blend: Optional[list[float]] = None

    def _fields(self, frames: _Frames) -> dict[str, Any]:
        out: dict[str, Any] = {
            "content": frames.attach(self.content) if self.content is not None else None,
            "styles": [frames.attach(s) for s in self.styles],
            "params": dict(self.params),
        }
        if self.style_blend is not None:
            out["style_blend"] = [float(w) for w in self.style_blend]
        return out

    @classmethod
    def _read(cls, f: _Fields) -> Stylize:
        content_raw = f.raw("content", True)  # required, nil for texture synthesis: never by omission
        content = f.image_value(content_raw) if content_raw is not None else None
        styles_raw = f.raw("styles", True)
        if not isinstance(styles_raw, list) or not styles_raw:
            raise f.fail("'styles' must be a non-empty list of images")
        styles = [f.image_value(s) for s in styles_raw]
        params = f.map("params", required=False) or {}
        blend_raw = f.raw("style_blend", False)
        blend = None
        if blend_raw is not None:  # its values (one per style, >= 0, finite...) are the daemon's to check
            if not isinstance(blend_raw, list) or \
                    not all(isinstance(w, (int, float)) and not isinstance(w, bool) for w in blend_raw):
                raise f.fail("'style_blend' must be a list of numbers")
            blend = [float(w) for w in blend_raw]
        return cls(f.id, content, styles, params, blend)


@dataclass
class Cancel(Message):
    """Cancel the unfinished stylize job ``target`` sent earlier on the same connection."""

    TYPE: ClassVar[str] = "cancel"
    target: str = ""

    def _fields(self, frames: _Frames) -> dict[str, Any]:
        return {"target": self.target}

    @classmethod
    def _read(cls, f: _Fields) -> Cancel:
        target = f.str("target")
        if not target:
            raise f.fail("'target' must be the non-empty id of a stylize request")
        return cls(f.id, target)


# ----------------------------------------------------------------------------- replies


@dataclass
class Loss:
    """Loss terms, already weighted: ``total = content + style + tv``."""

    total: float = 0.0
    content: float = 0.0
    style: float = 0.0
    tv: float = 0.0

    def to_map(self) -> dict[str, float]:
        return {"total": float(self.total), "content": float(self.content),
                "style": float(self.style), "tv": float(self.tv)}

    @classmethod
    def read(cls, f: _Fields, key: str = "loss") -> Loss:
        value = f.map(key)
        assert value is not None
        terms = {}
        for name in ("total", "content", "style", "tv"):
            terms[name] = _number(value.get(name, 0.0), f"{key}.{name}", f)
        return cls(**terms)


@dataclass
class JobInfo:
    """One unfinished job in a ``status_reply``."""

    id: str
    state: str  # "queued" | "running"
    position: int = 0  # jobs that run before this one; 0 for the running job
    iteration: int = 0
    iterations: int = 0
    elapsed: float = 0.0

    def to_map(self) -> dict[str, Any]:
        return {"id": self.id, "state": self.state, "position": self.position,
                "iteration": self.iteration, "iterations": self.iterations, "elapsed": float(self.elapsed)}

    @classmethod
    def from_value(cls, value: Any, f: _Fields) -> JobInfo:
        if not isinstance(value, dict) or not isinstance(value.get("id"), str) \
                or value.get("state") not in JOB_STATES:
            raise f.fail("a job must be a map with a string 'id' and a 'state' of queued|running")
        ints = {}
        for key in ("position", "iteration", "iterations"):
            v = value.get(key, 0)
            if isinstance(v, bool) or not isinstance(v, int):
                raise f.fail(f"job '{key}' must be an integer")
            ints[key] = v
        return cls(value["id"], value["state"], elapsed=_number(value.get("elapsed", 0.0), "elapsed", f), **ints)


@dataclass
class Pong(Message):
    TYPE: ClassVar[str] = "pong"
    daemon_version: str = ""
    protocol: int = PROTOCOL_VERSION
    device: str = ""
    weights_loaded: bool = False
    weights: Optional[str] = None  # what was loaded, e.g. "vgg19 (caffe)"; nil when nothing
    queue_length: int = 0  # unfinished jobs, the running one included
    limits: dict[str, int] = field(default_factory=dict)

    def _fields(self, frames: _Frames) -> dict[str, Any]:
        return {"daemon_version": self.daemon_version, "protocol": self.protocol, "device": self.device,
                "weights_loaded": self.weights_loaded, "weights": self.weights,
                "queue_length": self.queue_length, "limits": dict(self.limits)}

    @classmethod
    def _read(cls, f: _Fields) -> Pong:
        limits = {k: v for k, v in (f.map("limits", required=False) or {}).items()
                  if isinstance(v, int) and not isinstance(v, bool)}  # unknown kinds of limit: skipped
        return cls(f.id, f.str("daemon_version"), f.int("protocol"), f.str("device"),
                   f.bool("weights_loaded"), f.str("weights", required=False),
                   f.int("queue_length", required=False), limits)


@dataclass
class StatusReply(Message):
    TYPE: ClassVar[str] = "status_reply"
    running: Optional[JobInfo] = None
    queued: list[JobInfo] = field(default_factory=list)

    @property
    def queue_length(self) -> int:
        return len(self.queued) + (self.running is not None)

    def _fields(self, frames: _Frames) -> dict[str, Any]:
        return {"running": self.running.to_map() if self.running else None,
                "queued": [j.to_map() for j in self.queued]}

    @classmethod
    def _read(cls, f: _Fields) -> StatusReply:
        running = f.raw("running", False)
        queued = f.raw("queued", False) or []
        if not isinstance(queued, list):
            raise f.fail("'queued' must be a list")
        return cls(f.id, JobInfo.from_value(running, f) if running is not None else None,
                   [JobInfo.from_value(j, f) for j in queued])


@dataclass
class CancelAck(Message):
    """The daemon found ``target`` and is stopping it; its stream ends with error ``cancelled``."""

    TYPE: ClassVar[str] = "cancel_ack"
    target: str = ""
    state: str = "queued"  # what the job was doing when the cancel arrived

    def _fields(self, frames: _Frames) -> dict[str, Any]:
        return {"target": self.target, "state": self.state}

    @classmethod
    def _read(cls, f: _Fields) -> CancelAck:
        return cls(f.id, f.str("target"), f.str("state", required=False, default="queued"))


@dataclass
class Accepted(Message):
    TYPE: ClassVar[str] = "accepted"
    position: int = 0  # jobs that will run before this one; 0 = starts now

    def _fields(self, frames: _Frames) -> dict[str, Any]:
        return {"position": self.position}

    @classmethod
    def _read(cls, f: _Fields) -> Accepted:
        return cls(f.id, f.int("position"))


@dataclass
class Heartbeat(Message):
    """Sent by the daemon for each unfinished job every HEARTBEAT_INTERVAL seconds."""

    TYPE: ClassVar[str] = "heartbeat"
    state: str = "queued"
    position: int = 0

    def _fields(self, frames: _Frames) -> dict[str, Any]:
        return {"state": self.state, "position": self.position}

    @classmethod
    def _read(cls, f: _Fields) -> Heartbeat:
        return cls(f.id, f.str("state", required=False, default="queued"), f.int("position", required=False))


@dataclass
class Progress(Message):
    TYPE: ClassVar[str] = "progress"
    iteration: int = 0
    iterations: int = 0
    loss: Loss = field(default_factory=Loss)
    elapsed: float = 0.0
    image: Optional[ImageData] = None  # preview, only when params.preview is true
    scale: int = 1  # the size being optimised, 1 the coarsest, of ``scales``
    scales: int = 1
    seconds_left: Optional[float] = None  # estimate from the measured rate; nil until one step was timed

    def _fields(self, frames: _Frames) -> dict[str, Any]:
        out: dict[str, Any] = {"iteration": self.iteration, "iterations": self.iterations,
                               "loss": self.loss.to_map(), "elapsed": float(self.elapsed),
                               "scale": self.scale, "scales": self.scales,
                               "seconds_left": None if self.seconds_left is None else float(self.seconds_left)}
        if self.image is not None:
            out["image"] = frames.attach(self.image)
        return out

    @classmethod
    def _read(cls, f: _Fields) -> Progress:
        seconds_left = None if f.raw("seconds_left", False) is None else f.number("seconds_left")
        return cls(f.id, f.int("iteration"), f.int("iterations"), Loss.read(f), f.number("elapsed"),
                   f.image("image", required=False), f.int("scale", required=False, default=1, minimum=1),
                   f.int("scales", required=False, default=1, minimum=1), seconds_left)


@dataclass
class Result(Message):
    """Terminal success: the stylized image (raw, the content's channel count)."""

    TYPE: ClassVar[str] = "result"
    image: Optional[ImageData] = None
    loss: Loss = field(default_factory=Loss)
    iterations: int = 0
    elapsed: float = 0.0
    style_cache_hits: int = 0
    style_cache_misses: int = 0

    def _fields(self, frames: _Frames) -> dict[str, Any]:
        if self.image is None:
            raise ValueError("a result needs an image")
        return {"image": frames.attach(self.image), "loss": self.loss.to_map(), "iterations": self.iterations,
                "elapsed": float(self.elapsed), "style_cache_hits": self.style_cache_hits,
                "style_cache_misses": self.style_cache_misses}

    @classmethod
    def _read(cls, f: _Fields) -> Result:
        return cls(f.id, f.image("image"), Loss.read(f), f.int("iterations", required=False),
                   f.number("elapsed"), f.int("style_cache_hits", required=False),
                   f.int("style_cache_misses", required=False))


@dataclass
class Error(Message):
    """Terminal failure of a request; ``code`` is one of errors.ErrorCode's values."""

    TYPE: ClassVar[str] = "error"
    code: str = ErrorCode.INTERNAL.value
    message: str = ""

    def __post_init__(self) -> None:
        if isinstance(self.code, ErrorCode):
            self.code = self.code.value

    def _fields(self, frames: _Frames) -> dict[str, Any]:
        return {"code": self.code, "message": self.message}

    @classmethod
    def _read(cls, f: _Fields) -> Error:
        return cls(f.id, f.str("code"), f.str("message", required=False, default=""))


@dataclass
class UnknownReply(Message):
    """A reply type this client does not know (sent by a newer daemon): to be ignored."""

    TYPE: ClassVar[str] = ""
    type: str = ""
    header: dict[str, Any] = field(default_factory=dict)


Request = Union[Ping, Status, Stylize, Cancel]
Reply = Union[Pong, StatusReply, CancelAck, Accepted, Heartbeat, Progress, Result, Error, UnknownReply]
TERMINAL_TYPES = frozenset({Result.TYPE, Error.TYPE})

REQUEST_TYPES: dict[str, type[Message]] = {c.TYPE: c for c in (Ping, Status, Stylize, Cancel)}
REPLY_TYPES: dict[str, type[Message]] = {
    c.TYPE: c for c in (Pong, StatusReply, CancelAck, Accepted, Heartbeat, Progress, Result, Error)}


def _decode_typed(frames: Sequence[Any], types: dict[str, type[Message]], strict: bool,
                  kind: str, **kwargs: Any) -> Message:
    """Decode one message; every ProtocolError leaves with a bounded message."""
    try:
        return _decode_checked(frames, types, strict, kind, **kwargs)
    except ProtocolError as exc:
        if len(exc.message) <= MAX_ERROR_MESSAGE:
            raise
        raise ProtocolError(exc.code, exc.message[: MAX_ERROR_MESSAGE - 1] + "…", exc.request_id) from None
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
    fields = _Fields(env, strict)
    message = cls._read(fields)
    fields.finish()
    return message


def decode_request(frames: Sequence[Any], *, max_header_bytes: int = MAX_HEADER_BYTES) -> Request:
    """Daemon side: frames (routing envelope stripped) to a validated request, or ProtocolError."""
    return _decode_typed(frames, REQUEST_TYPES, True, "request", max_header_bytes=max_header_bytes)  # type: ignore[return-value]


def decode_reply(frames: Sequence[Any]) -> Reply:
    """Client side: frames to a reply. Unknown fields are ignored and unknown types come back
    as UnknownReply, for forward compatibility; known fields are still type-checked."""
    return _decode_typed(frames, REPLY_TYPES, False, "reply", allow_empty_id=True)  # type: ignore[return-value]


def encode_message(message: Message) -> list[Buffer]:
    """Frames of a message, ready for ``send_multipart`` (prepend the routing id on a ROUTER)."""
    return message.to_frames()


def error_frames(request_id: Optional[str], code: Union[ErrorCode, str], message: str) -> list[Buffer]:
    """Frames of an ``error`` reply; an unreadable request id becomes ``""``."""
    return Error(request_id or "", code if isinstance(code, str) else code.value, message).to_frames()


__all__ = [
    "Message", "Ping", "Status", "Stylize", "Cancel", "Pong", "StatusReply", "CancelAck", "Accepted",
    "Heartbeat", "Progress", "Result", "Error", "UnknownReply", "Loss", "JobInfo", "ImageData", "ImageRef", "Request",
    "Reply", "REQUEST_TYPES", "REPLY_TYPES", "TERMINAL_TYPES", "decode_request", "decode_reply",
    "encode_message", "error_frames", "JOB_STATES", "MAX_NESTING",
]
