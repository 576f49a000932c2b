"""Liveness constants and socket options (docs/PROTOCOL.md, "Heartbeats and liveness").

The daemon proves it is alive by sending a ``heartbeat`` for every unfinished job every
HEARTBEAT_INTERVAL seconds; a failed send (ROUTER_MANDATORY: EHOSTUNREACH) proves the
client is gone and its job is cancelled. ZMTP heartbeats make a hung or unplugged peer
look gone within ZMTP_HEARTBEAT_TIMEOUT_MS, so the whole chain stays within ~2 s.
Clients need not send anything: GIMP may kill the plug-in at any moment.
"""

from __future__ import annotations

from typing import Any

HEARTBEAT_INTERVAL = 0.5  # seconds between daemon heartbeats for one unfinished job
CLIENT_LIVENESS_TIMEOUT = 5.0  # a client waiting on a job gives up after this much silence
ZMTP_HEARTBEAT_IVL_MS = 500  # ZMQ_HEARTBEAT_IVL: ZMTP PING every 0.5 s
ZMTP_HEARTBEAT_TIMEOUT_MS = 1500  # ZMQ_HEARTBEAT_TIMEOUT: drop a connection silent for 1.5 s
ZMTP_HEARTBEAT_TTL_MS = 2000  # ZMQ_HEARTBEAT_TTL: asks the peer to drop us after 2 s of silence


def configure_zmtp_heartbeat(socket: Any) -> None:
    """Enable ZMTP heartbeats on a socket before connect/bind (both ends should)."""
    import zmq

    socket.setsockopt(zmq.HEARTBEAT_IVL, ZMTP_HEARTBEAT_IVL_MS)
    socket.setsockopt(zmq.HEARTBEAT_TIMEOUT, ZMTP_HEARTBEAT_TIMEOUT_MS)
    socket.setsockopt(zmq.HEARTBEAT_TTL, ZMTP_HEARTBEAT_TTL_MS)
