"""Per-connection send queues with coalescing, so a slow client never builds a backlog.

Why: the ROUTER is sent to without blocking (``ROUTER_MANDATORY`` + ``NOBLOCK``).
A client that reads slowly fills its ZeroMQ pipe (``EAGAIN``); the daemon must
not stall for it, and must not pile previews up either.  So each connection
has an ordered queue where a newer ``progress`` or ``heartbeat`` of a job
replaces the one still waiting, while replies and terminal messages wait their
turn and are never dropped (docs/PROTOCOL.md, sections 5–7).
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from typing import Any, Iterator, Sequence

__all__ = ["Outgoing", "Outbox", "COALESCED_TYPES"]

COALESCED_TYPES = frozenset({"progress", "heartbeat"})


@dataclass
class Outgoing:
    """One message waiting to be sent to a connection."""

    kind: str  # the message type ("progress", "result", ...)
    request_id: str
    frames: Sequence[Any]

    @property
    def coalesced(self) -> bool:
        return self.kind in COALESCED_TYPES


class Outbox:
    """The ordered unsent messages of one connection."""

    def __init__(self) -> None:
        self._items: deque[Outgoing] = deque()
        self.replaced = 0  # coalesced away, for the logs

    def add(self, item: Outgoing) -> None:
        """Queue ``item``; an unsent message of the same coalesced kind and job is dropped.

        The replaced message is older than ``item`` and of the same kind, so taking it out
        and appending ``item`` keeps every job's progress in increasing order.  It is never
        moved past a reply of its own job that must follow it (a terminal message).
        """
        if item.coalesced:
            for index in range(len(self._items) - 1, -1, -1):
                old = self._items[index]
                if old.request_id != item.request_id:
                    continue
                if old.kind == item.kind:
                    del self._items[index]
                    self.replaced += 1
                    break
                if not old.coalesced:  # e.g. the job's result: nothing before it may move after it
                    break
        self._items.append(item)

    def peek(self) -> Outgoing | None:
        return self._items[0] if self._items else None

    def pop(self) -> Outgoing:
        return self._items.popleft()

    def __len__(self) -> int:
        return len(self._items)

    def __bool__(self) -> bool:
        return bool(self._items)

    def __iter__(self) -> Iterator[Outgoing]:
        return iter(self._items)
