"""Liveness constants and socket options (docs/PROTOCOL.md, "Heartbeats and liveness").

The daemon proves it is alive by sending a ``heartbeat`` for every unfinished job every
HEARTBEAT_INTERVAL seconds; a failed send (ROUTER_MANDATORY: EHOSTUNREACH) proves the
client's connection is closed and its jobs are cancelled.

ZMTP heartbeats tell "not reading" from "gone".  Both ends send a ZMTP PING every
ZMTP_HEARTBEAT_IVL_MS from libzmq's I/O thread, whether or not the application reads.
Only the daemon times a connection out (ZMTP_DAEMON_TIMEOUT_MS of nothing at all from
the peer: a stopped, hung or unplugged client).  A client never does (timeout 0): once
its receive queue is full its I/O thread stops reading, sees no PONG, and with a timeout
would drop a healthy connection just because its application paused.  That drop, with
a full queue, is also what made libzmq abort in ``_input_stopped`` (libzmq #3937, #3596)
when the socket reconnected; CLIENT_SOCKET_OPTIONS adds ``IMMEDIATE`` so that a
reconnect always starts on a fresh queue.  No TTL is sent either way: a paused peer
must never be told to drop us.
"""

from __future__ import annotations

from typing import Any

HEARTBEAT_INTERVAL = 0.5  # seconds between daemon heartbeats for one unfinished job
CLIENT_LIVENESS_TIMEOUT = 5.0  # a client waiting on a job gives up after this much silence
ZMTP_HEARTBEAT_IVL_MS = 500  # ZMQ_HEARTBEAT_IVL, both ends: a ZMTP PING every 0.5 s
ZMTP_DAEMON_TIMEOUT_MS = 1500  # ZMQ_HEARTBEAT_TIMEOUT, daemon only: drop a peer silent for 1.5 s
CLIENT_RCVHWM = 64  # messages a client's libzmq queues before the daemon coalesces the rest


def configure_zmtp_heartbeat(socket: Any, *, daemon: bool = False) -> None:
    """ZMTP heartbeat options, before connect/bind: PINGs both ways, a timeout on the daemon only."""
    import zmq

    socket.setsockopt(zmq.HEARTBEAT_IVL, ZMTP_HEARTBEAT_IVL_MS)
    socket.setsockopt(zmq.HEARTBEAT_TIMEOUT, ZMTP_DAEMON_TIMEOUT_MS if daemon else 0)
    socket.setsockopt(zmq.HEARTBEAT_TTL, 0)


def configure_client_socket(socket: Any) -> None:
    """Everything a client DEALER needs before connect (section 7 of the protocol).

    ``IMMEDIATE``: after a reconnect the socket gets a new receive queue instead of the old,
    possibly full one, so a stale "resume reading" from libzmq's application thread can no
    longer reach the new connection's engine (the assertion of libzmq #3937).
    ``RCVHWM``: a paused client holds at most this many messages; the daemon keeps the newest
    preview and heartbeat of each job meanwhile (coalescing) instead of a backlog.
    """
    import zmq

    socket.setsockopt(zmq.LINGER, 0)
    socket.setsockopt(zmq.IMMEDIATE, 1)
    socket.setsockopt(zmq.RCVHWM, CLIENT_RCVHWM)
    configure_zmtp_heartbeat(socket)
