"""A small typed client of the daemon: one DEALER socket, replies demultiplexed by id.

A Client and its socket belong to the thread that uses them (ZeroMQ sockets are not
thread-safe); use one Client per thread. Nothing here blocks without a deadline: every
wait ends in a reply, a DaemonError, or DaemonUnavailable.
"""

from __future__ import annotations

import time
import uuid
from collections import deque
from collections.abc import Callable, Generator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Optional, Protocol, TypeVar, Union

import zmq

from .connection import resolve_endpoint
from .errors import DaemonError, DaemonUnavailable, ErrorCode
from .heartbeat import CLIENT_LIVENESS_TIMEOUT, MIN_JUDGE_RATE, MIN_TRANSFER_RATE, configure_client_socket
from .image_data import Encoding, ImageData
from .messages import (
    Accepted,
    Cancel,
    CancelAck,
    Earlier,
    Error,
    Heartbeat,
    Message,
    Ping,
    Pong,
    Previous,
    Progress,
    Reply,
    Result,
    Status,
    StatusReply,
    Stylize,
    UnknownReply,
    decode_reply,
)

DEFAULT_TIMEOUT = 5.0
StylizeEvent = Union[Accepted, Progress, Heartbeat, Result]
#: The events of one job, as ``Client.stylize`` yields them; closing it early cancels the job.
StylizeStream = Generator[StylizeEvent, None, None]
ReplyType = TypeVar("ReplyType", Pong, StatusReply, CancelAck)


class DaemonClient(Protocol):
    """What a client of the daemon offers: ``Client`` (one DEALER socket) and the tests' scripted fake
    (tests/fake_client.py) both implement it, checked by mypy; the plug-in holds its client by this type."""

    def ping(self, timeout: Optional[float] = None) -> Pong: ...

    def status(self, timeout: Optional[float] = None) -> StatusReply: ...

    def cancel(self, request_id: str, timeout: Optional[float] = None) -> CancelAck: ...

    def stylize(self, content: Optional[ImageData], styles: Sequence[ImageData],
                params: Optional[Mapping[str, Any]] = None, style_blend: Optional[Sequence[float]] = None,
                *, request_id: Optional[str] = None, heartbeats: bool = False,
                previous: Optional[Previous] = None, style_masks: Optional[Sequence[Optional[ImageData]]] = None,
                style_source_masks: Optional[Sequence[Optional[ImageData]]] = None,
                earlier: Optional[Sequence[Earlier]] = None) -> StylizeStream:
        """A job's events (Accepted, Progress…, Result; Heartbeat with ``heartbeats``); an ``error`` reply raises
        DaemonError, and closing the stream early cancels the job. ``style_masks``: a region per style."""
        ...

    def newer_preview_waiting(self) -> bool:
        """Whether a later preview has already arrived (a slow painter skips this one)."""
        ...

    def close(self) -> None: ...


@dataclass(frozen=True)
class CurveKeys:
    """CURVE keys (Z85 bytes) for a daemon bound beyond loopback (docs/PROTOCOL.md, Security)."""

    server_public: bytes
    public: bytes
    secret: bytes


def new_request_id() -> str:
    return uuid.uuid4().hex


def _judged_pixels(masks: Sequence[Optional[ImageData]], content: Optional[ImageData]) -> int:
    """The pixels of the encoded masks a daemon inflates before ``accepted`` (raw ones it reads as they are):
    each mask's own size from its header, else the content's (a style mask has the content's size)."""
    fallback = content.pixels() if content is not None else None
    return sum(mask.pixels() or fallback or 0 for mask in masks
               if mask is not None and mask.encoding != Encoding.RAW.value)


def _result_bytes(content: Optional[ImageData]) -> int:
    """The most a job's result can weigh: the content's pixels, raw RGBA (a result is never larger than its
    content); 0 where the content's size is not known (an encoded image without its size, a texture)."""
    if content is None or content.width is None or content.height is None:
        return 0
    return content.width * content.height * 4


class Client:
    """Talks protocol v1 to one daemon endpoint.

    ``timeout`` bounds each request/reply exchange (and the wait for ``accepted``);
    ``liveness_timeout`` is how long a running job may stay silent before the daemon is
    declared gone (the daemon sends heartbeats every 0.5 s, so this only fires when it is).
    A job's waits grow by the time its request (for ``accepted``) and its result (while it runs)
    take to travel at ``transfer_rate`` bytes per second: nothing of a message arrives before all
    of it has, so a full-resolution image on a slow link must not look like a dead daemon. The wait
    for ``accepted`` grows too by the time the daemon may take to judge encoded region masks
    (``heartbeat.MIN_JUDGE_RATE``), which it inflates before it accepts.
    """

    def __init__(self, endpoint: Optional[str] = None, timeout: float = DEFAULT_TIMEOUT, *,
                 liveness_timeout: float = CLIENT_LIVENESS_TIMEOUT, transfer_rate: float = MIN_TRANSFER_RATE,
                 context: Optional[zmq.Context[Any]] = None, curve: Optional[CurveKeys] = None) -> None:
        self.endpoint = resolve_endpoint(endpoint)
        self.timeout = timeout
        self.liveness_timeout = liveness_timeout
        self.transfer_rate = transfer_rate
        self._context = context or zmq.Context.instance()
        self._socket: Optional[zmq.Socket[Any]] = self._context.socket(zmq.DEALER)
        configure_client_socket(self._socket)  # a paused caller is neither dropped nor crashed (heartbeat.py)
        if curve is not None:
            self._socket.curve_serverkey = curve.server_public
            self._socket.curve_publickey = curve.public
            self._socket.curve_secretkey = curve.secret
        try:
            self._socket.connect(self.endpoint)
        except zmq.ZMQError as exc:
            self._socket.close(0)
            self._socket = None
            raise ValueError(f"cannot connect to endpoint {self.endpoint!r}: {exc}") from None
        self._inbox: dict[str, deque[Reply]] = {}
        self._connection_error: Optional[Error] = None

    # ------------------------------------------------------------------ lifecycle
    def close(self) -> None:
        """Close the socket at once (LINGER 0): unsent requests are dropped."""
        if self._socket is not None:
            self._socket.close(0)
            self._socket = None
        self._inbox.clear()

    @property
    def closed(self) -> bool:
        return self._socket is None

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    # ------------------------------------------------------------------ requests
    def ping(self, timeout: Optional[float] = None) -> Pong:
        """Is a daemon there? Raises DaemonUnavailable when nothing answers in time."""
        return self._request(Ping(new_request_id()), Pong, timeout)

    def status(self, timeout: Optional[float] = None) -> StatusReply:
        return self._request(Status(new_request_id()), StatusReply, timeout)

    def cancel(self, request_id: str, timeout: Optional[float] = None) -> CancelAck:
        """Ask the daemon to stop stylize job ``request_id`` (sent by this client).

        The job's own stream then ends with DaemonError ``cancelled``; an unknown or
        finished id raises DaemonError ``not_found``.
        """
        return self._request(Cancel(new_request_id(), request_id), CancelAck, timeout)

    def newer_preview_waiting(self) -> bool:
        """Whether a progress report with a preview has already arrived and waits to be read.

        Replies that reached the socket are read into the inbox first, without waiting, so a burst that
        came in while the caller painted the last preview counts: a caller that paints slowly skips to the
        newest preview."""
        if self._socket is not None:
            self._receive_arrived()
        return any(isinstance(reply, Progress) and reply.image is not None
                   for queue in self._inbox.values() for reply in queue)

    def stylize(self, content: Optional[ImageData], styles: Sequence[ImageData],
                params: Optional[Mapping[str, Any]] = None, style_blend: Optional[Sequence[float]] = None,
                *, request_id: Optional[str] = None, heartbeats: bool = False,
                previous: Optional[Previous] = None, style_masks: Optional[Sequence[Optional[ImageData]]] = None,
                style_source_masks: Optional[Sequence[Optional[ImageData]]] = None,
                earlier: Optional[Sequence[Earlier]] = None) -> StylizeStream:
        """Submit a job and yield its events: Accepted, Progress…, and finally Result.

        An ``error`` reply raises DaemonError. Heartbeats are consumed silently unless
        ``heartbeats`` is true. The request is sent when iteration starts; abandoning the
        iterator before the end (``close()``, ``break``) sends a ``cancel`` for the job.
        """
        message = Stylize(request_id or new_request_id(), content, list(styles), dict(params or {}),
                          list(style_blend) if style_blend is not None else None, previous,
                          list(style_masks) if style_masks is not None else None,
                          list(style_source_masks) if style_source_masks is not None else None,
                          list(earlier) if earlier else None)
        frames = message.to_frames()  # validate before anything is sent
        request_bytes = sum(memoryview(frame).nbytes for frame in frames)
        judged = _judged_pixels([*(style_masks or ()), *(style_source_masks or ())], content)
        return self._stream(message.id, frames, heartbeats,
                            request_bytes / self.transfer_rate + judged / MIN_JUDGE_RATE,
                            _result_bytes(content) / self.transfer_rate)

    def stylize_blocking(self, content: Optional[ImageData], styles: Sequence[ImageData],
                         params: Optional[Mapping[str, Any]] = None,
                         style_blend: Optional[Sequence[float]] = None, *,
                         on_progress: Optional[Callable[[Progress], None]] = None,
                         on_event: Optional[Callable[[StylizeEvent], None]] = None,
                         request_id: Optional[str] = None) -> Result:
        """Run a job to the end and return its Result; ``on_progress`` sees each Progress.

        ``on_event`` sees every event (heartbeats included), e.g. to keep a UI alive; an
        exception raised by a callback cancels the job and propagates.
        """
        events = self.stylize(content, styles, params, style_blend, request_id=request_id,
                              heartbeats=on_event is not None)
        try:
            for event in events:
                if on_event is not None:
                    on_event(event)
                if isinstance(event, Progress) and on_progress is not None:
                    on_progress(event)
                if isinstance(event, Result):
                    return event
        finally:
            events.close()
        raise DaemonUnavailable("the job's stream ended without a result")  # pragma: no cover

    # ------------------------------------------------------------------ internals
    def _sock(self) -> zmq.Socket[Any]:
        if self._socket is None:
            raise RuntimeError("client is closed")
        return self._socket

    def _send(self, message_id: str, frames: Sequence[Any]) -> None:
        sock = self._sock()
        self._inbox[message_id] = deque()
        try:
            if not sock.poll(int(self.timeout * 1000), zmq.POLLOUT):
                raise zmq.Again()
            sock.send_multipart(frames, copy=False)
        except zmq.Again:
            self._inbox.pop(message_id, None)
            raise DaemonUnavailable(f"cannot send to the daemon at {self.endpoint}: nothing accepts messages") from None

    def _request(self, message: Message, expected: type[ReplyType], timeout: Optional[float]) -> ReplyType:
        self._send(message.id, message.to_frames())
        wait = self.timeout if timeout is None else timeout
        deadline = time.monotonic() + wait
        why = f"no daemon answered {message.TYPE} at {self.endpoint} within {wait:g} s"
        try:
            while True:
                reply = self._next(message.id, deadline - time.monotonic(), why)
                if isinstance(reply, Error):
                    raise DaemonError(reply.code, reply.message, message.id, reply.field)
                if isinstance(reply, expected):
                    return reply
                if not isinstance(reply, UnknownReply):
                    raise DaemonError(ErrorCode.INTERNAL, f"daemon answered {message.TYPE} with {reply.TYPE}",
                                      message.id)
        finally:
            self._inbox.pop(message.id, None)

    def _stream(self, job_id: str, frames: Sequence[Any], heartbeats: bool, request_transfer: float,
                result_transfer: float) -> StylizeStream:
        """The job's events; ``request_transfer`` and ``result_transfer`` are the seconds its request and
        its result may take to travel, added to the wait for ``accepted`` and to the liveness timeout."""
        self._send(job_id, frames)
        finished = False
        accepted = False
        try:
            while True:
                if accepted:
                    wait = self.liveness_timeout + result_transfer
                    why = (f"lost contact with the daemon at {self.endpoint}: no message for job {job_id} "
                           f"in {wait:g} s")
                else:
                    wait = self.timeout + request_transfer
                    why = f"no daemon accepted the job at {self.endpoint} within {wait:g} s"

                reply = self._next(job_id, wait, why)
                if isinstance(reply, Error):
                    finished = True
                    raise DaemonError(reply.code, reply.message, job_id, reply.field)
                if isinstance(reply, Result):
                    finished = True
                    yield reply
                    return
                if isinstance(reply, (Accepted, Progress)):
                    accepted = True
                    yield reply
                elif isinstance(reply, Heartbeat):
                    accepted = True
                    if heartbeats:
                        yield reply
                # any other reply type for this id is ignored (forward compatibility)
        finally:
            self._inbox.pop(job_id, None)
            if not finished and self._socket is not None:
                self._abandon(job_id)

    def _abandon(self, job_id: str) -> None:
        """Best-effort cancel of a job whose caller stopped listening; the ack is dropped."""
        try:
            self._sock().send_multipart(Cancel(new_request_id(), job_id).to_frames(), zmq.NOBLOCK)
        except zmq.ZMQError:
            pass

    def _next(self, message_id: str, wait: float, why: str) -> Reply:
        """The next reply for ``message_id``, buffering replies to other pending requests."""
        queue = self._inbox[message_id]
        deadline = time.monotonic() + wait
        sock = self._sock()
        while not queue:
            if self._connection_error is not None:
                error, self._connection_error = self._connection_error, None
                raise DaemonError(error.code, error.message, message_id, error.field)
            remaining = deadline - time.monotonic()
            if remaining <= 0 or not sock.poll(max(1, int(remaining * 1000))):
                if queue:
                    break
                raise DaemonUnavailable(why)
            self._receive_arrived()
        return queue.popleft()

    def _receive_arrived(self) -> None:
        """Move every reply that has reached the socket into its request's inbox, without waiting.

        An error addressed to no request (id "") concerns the connection: the next read raises it."""
        sock = self._sock()
        while True:
            try:
                frames = sock.recv_multipart(zmq.NOBLOCK, copy=False)  # images stay in zmq buffers
            except zmq.Again:
                return
            reply = decode_reply(frames)
            if reply.id == "" and isinstance(reply, Error):
                self._connection_error = reply
                return
            pending = self._inbox.get(reply.id)
            if pending is not None:
                pending.append(reply)
            # replies to requests nobody waits for any more are dropped


_IMPLEMENTS: type[DaemonClient] = Client  # mypy: the real client offers the whole interface
