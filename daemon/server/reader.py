"""Reading requests off the ROUTER frame by frame, within the per-message bounds.

Why not ``recv_multipart``: it turns every frame of a message into a Python object
before anyone can count them, so one message of a million empty frames used to
stall the socket loop for seconds and grow the daemon by hundreds of MB.  Here the
frames are counted and their bytes summed as they are read; once a message is over
a bound the rest of it is read and dropped one frame at a time (nothing is kept,
no memoryview is made), and the message comes out as a refusal that still knows
the request's id when its header is readable.  Reading stops after a budget of
frames per call, in the middle of a message if need be, so the socket loop gets
to send heartbeats and replies between two slices of a huge message.

libzmq delivers a multipart message only once all of it has arrived; what it holds
meanwhile is bounded per frame by ``MAXMSGSIZE`` (see ``bind.py``), not per message.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import zmq

from neural_style.protocol.errors import ErrorCode
from neural_style.protocol.wire import peek_id

__all__ = ["MessageBounds", "Incoming", "RequestReader"]


@dataclass(frozen=True)
class MessageBounds:
    """What one request may be: ``max_frames`` frames (the header included) of ``max_bytes`` in all."""

    max_frames: int
    max_bytes: int


@dataclass
class Incoming:
    """One complete message: its frames (header first), or the reason it was refused."""

    client: bytes
    frames: list[Any] = field(default_factory=list)  # zmq.Frame objects, zero-copy
    frame_count: int = 0
    size: int = 0
    header: Any = None  # frame 0, kept even when the rest is dropped, to read the id
    refused_code: str | None = None
    refused_message: str = ""

    @property
    def request_id(self) -> str | None:
        return peek_id(self.header) if self.header is not None else None

    def add(self, frame: Any, bounds: MessageBounds) -> None:
        self.frame_count += 1
        self.size += len(frame)
        if self.frame_count == 1:
            self.header = frame
        if self.refused_code is not None:
            return  # over a bound already: count it, keep nothing
        if self.frame_count > bounds.max_frames or self.size > bounds.max_bytes:
            self.refused_code = ErrorCode.TOO_LARGE.value
            self.frames = []  # free what was kept; the header stays for the id
            return
        self.frames.append(frame)

    def finish(self, bounds: MessageBounds) -> None:
        if self.refused_code is None:
            return
        if self.frame_count > bounds.max_frames:
            self.refused_message = (
                f"the message has {self.frame_count} frames; a request has at most {bounds.max_frames} "
                "(a header, a content image, a sequence's previous and earlier frames with two each, and the "
                "style images with two masks each: see pong's limits)")
        else:
            self.refused_message = (f"the message is {self.size} bytes; this daemon accepts at most "
                                    f"{bounds.max_bytes} bytes per message")


class RequestReader:
    """Reads one ROUTER's messages within ``bounds``; ``read`` may stop in the middle of one."""

    def __init__(self, sock: zmq.Socket, bounds: MessageBounds) -> None:
        self.sock = sock
        self.bounds = bounds
        self._current: Incoming | None = None

    @property
    def mid_message(self) -> bool:
        """True when a message has been partly read: its remaining frames are ready at once."""
        return self._current is not None

    def read(self, frame_budget: int, message_budget: int) -> list[Incoming]:
        """Complete messages read within about ``frame_budget`` frames and ``message_budget`` messages.

        A routing id with nothing after it is skipped.  ``zmq.Again`` only ever comes before the
        first frame of a message: libzmq hands a multipart message over whole.
        """
        done: list[Incoming] = []
        recv = self.sock.recv
        while frame_budget > 0 and len(done) < message_budget:
            current = self._current
            if current is None:
                try:
                    routing = recv(zmq.NOBLOCK, copy=False)
                except zmq.Again:
                    break
                frame_budget -= 1
                if not routing.more:
                    continue
                current = self._current = Incoming(routing.bytes)
            bounds, add = self.bounds, current.add
            more = True
            while frame_budget > 0:
                frame = recv(zmq.NOBLOCK, copy=False)
                frame_budget -= 1
                add(frame, bounds)
                more = frame.more
                del frame  # a dropped frame's memory goes back to libzmq now
                if not more:
                    break
            if more:
                break  # budget spent in the middle of a message: the caller resumes it later
            current.finish(bounds)
            self._current = None
            done.append(current)
        return done
