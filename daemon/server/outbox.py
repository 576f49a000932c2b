"""Per-connection send queues: coalescing, and a cap, so a client that does not read never
builds a backlog in the daemon.

Why: the ROUTER is sent to without blocking (``ROUTER_MANDATORY`` + ``NOBLOCK``).  A
client that reads slowly, or not at all, fills its ZeroMQ pipe (``EAGAIN``); the daemon
must not stall for it and must not pile messages up either.  Each connection has an
ordered queue holding three kinds of message:

* coalesced (``progress``, ``heartbeat``): a newer one of a job replaces the one still
  waiting, so there is at most one of each per job;
* essential (a job's ``accepted`` and its one terminal ``result``/``error``): never dropped,
  so every accepted job ends in exactly one terminal message for a client that reads again.
  The socket loop refuses new jobs from a connection while one of these waits, or ``cap``
  messages of any kind (``Outbox.refuses_jobs``), which bounds them too;
* droppable (every other reply: ``pong``, ``status_reply``, ``cancel_ack``, refusals): at
  most ``cap`` of them wait; beyond that the oldest is dropped (a client sending pings in a
  loop without reading grows nothing).

See docs/PROTOCOL.md, sections 6, 7 and 9.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from neural_style.protocol.messages import TERMINAL_TYPES, Message

__all__ = ["Outgoing", "Outbox", "COALESCED_TYPES", "DEFAULT_OUTBOX_CAP"]

COALESCED_TYPES = frozenset({"progress", "heartbeat"})
DEFAULT_OUTBOX_CAP = 32  # droppable replies waiting per connection; also the length that refuses new jobs


@dataclass
class Outgoing:
    """One encoded message for a connection: its frames, and what the outbox needs to know of them."""

    kind: str  # the message type ("progress", "result", ...)
    request_id: str
    frames: Sequence[Any]
    essential: bool = False  # a job's accepted or terminal message: never dropped

    @classmethod
    def of(cls, message: Message, essential: bool = False) -> Outgoing:
        """``message`` encoded, ready to send (images stay uncopied in the frames)."""
        return cls(message.TYPE, message.id, message.to_frames(), essential)

    @property
    def terminal(self) -> bool:
        """A ``result`` or ``error``: the last message of its request."""
        return self.kind in TERMINAL_TYPES

    @property
    def coalesced(self) -> bool:
        return self.kind in COALESCED_TYPES

    @property
    def droppable(self) -> bool:
        return not self.essential and not self.coalesced


class Outbox:
    """The ordered unsent messages of one connection."""

    def __init__(self, cap: int = DEFAULT_OUTBOX_CAP) -> None:
        if cap < 1:
            raise ValueError("an outbox cap must be at least 1")
        self.cap = cap
        self._items: deque[Outgoing] = deque()
        self._droppable = 0
        self._essential = 0
        self.replaced = 0  # coalesced away, for the logs
        self.dropped = 0  # droppable replies dropped since the client last caught up

    @property
    def refuses_jobs(self) -> bool:
        """The client has not read a job's accepted or terminal message, or ``cap`` messages: accept
        no more jobs from it until it does (this bounds what waits for it)."""
        return self._essential > 0 or len(self._items) >= self.cap

    def add(self, item: Outgoing) -> None:
        """Queue ``item``: a coalesced one replaces its job's waiting one of the same kind; a droppable
        one over the cap pushes the oldest droppable one out."""
        if item.coalesced:
            self._replace_older(item)
        elif item.droppable:
            if self._droppable >= self.cap:
                self._drop_oldest_droppable()
            self._droppable += 1
        else:
            self._essential += 1
        self._items.append(item)

    def _replace_older(self, item: Outgoing) -> None:
        """Drop the waiting message of ``item``'s job and kind.  It is older than ``item``, so taking it
        out and appending ``item`` keeps every job's progress in increasing order; it is never moved
        past a message of its own job that must follow it (a terminal message)."""
        for index in range(len(self._items) - 1, -1, -1):
            old = self._items[index]
            if old.request_id != item.request_id:
                continue
            if old.kind == item.kind:
                del self._items[index]
                self.replaced += 1
                return
            if not old.coalesced:  # e.g. the job's result: nothing before it may move after it
                return

    def _drop_oldest_droppable(self) -> None:
        for index, old in enumerate(self._items):
            if old.droppable:
                del self._items[index]
                self._droppable -= 1
                self.dropped += 1
                return

    def peek(self) -> Outgoing | None:
        return self._items[0] if self._items else None

    def pop(self) -> Outgoing:
        item = self._items.popleft()
        if item.droppable:
            self._droppable -= 1
        elif item.essential:
            self._essential -= 1
        return item

    def __len__(self) -> int:
        return len(self._items)

    def __bool__(self) -> bool:
        return bool(self._items)

    def __iter__(self) -> Iterator[Outgoing]:
        return iter(self._items)
