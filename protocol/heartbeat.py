"""Liveness constants and socket options (docs/PROTOCOL.md, "Heartbeats and liveness").

The daemon proves it is alive by sending a ``heartbeat`` message for every unfinished job
every HEARTBEAT_INTERVAL seconds; a failed send (ROUTER_MANDATORY: EHOSTUNREACH) means
the client's connection is closed, and its jobs are cancelled.

ZMTP heartbeats tell "not reading" from "gone", and only clients send them: libzmq's I/O
thread PINGs the daemon every ZMTP_HEARTBEAT_IVL_MS whether or not the application reads,
with a TTL that asks the daemon to close the connection after ZMTP_HEARTBEAT_TTL_MS of
silence (a stopped, hung or unplugged client; one stopped before its first PING, within
ZMTP_HEARTBEAT_IVL_MS of connecting, arms no TTL and keeps its jobs until they end).  These choices avoid libzmq 4.3.5's
aborts, all reachable when an engine has stopped reading because its receive queue is
full:

* ``_input_stopped`` (libzmq #3937, #3596): a client with a ZMTP timeout of its own drops
  the connection while paused, reconnects, and aborts when it reads again;
* ``!_io_error`` in ``out_event`` (libzmq #4841): the peer's connection closes while the
  queue is full; the next ZMTP PING the engine sends (its heartbeat timer) or answers
  aborts the process.  The daemon hit this when a client flooded it with requests and
  exited; a paused client hit it when the daemon went away.

So a client's receive queue is unbounded (``RCVHWM`` 0: its engine never stops reading,
whatever the application does), a client never times the daemon out at the ZMTP level
(it notices a dead daemon by CLIENT_LIVENESS_TIMEOUT of silence), and the daemon sends no
PINGs at all (its bounded receive queue may fill under a flood).
"""

from __future__ import annotations

from typing import Any

HEARTBEAT_INTERVAL = 0.5  # seconds between daemon heartbeats for one unfinished job
CLIENT_LIVENESS_TIMEOUT = 5.0  # a client waiting on a job gives up after this much silence
#: The slowest link a client allows for, in bytes per second (a 100 Mbit/s network or a weak Wi-Fi): a
#: message arrives only once all of it has, so a client's waits grow by the time its request and the
#: job's full-size result take at this rate (a 96 MB raw 24-megapixel RGBA layer: about 10 s).
MIN_TRANSFER_RATE = 10_000_000
#: The slowest a daemon judges an encoded (PNG/JPEG) region mask before ``accepted``, in pixels per second: it
#: inflates the mask to refuse an all-black one (docs/PROTOCOL.md, Regions). A 24-megapixel 16-bit PNG took
#: 2.5–7.2 s on a loaded 2-core CPU (docs/PERFORMANCE.md); at this rate a client allows it 12 s.
MIN_JUDGE_RATE = 2_000_000
ZMTP_HEARTBEAT_IVL_MS = 100  # ZMQ_HEARTBEAT_IVL of a client: a ZMTP PING every 0.1 s (a few bytes)
ZMTP_HEARTBEAT_TTL_MS = 2000  # ZMQ_HEARTBEAT_TTL of a client: the daemon drops it after 2 s of silence


def configure_zmtp_heartbeat(socket: Any, *, daemon: bool = False) -> None:
    """ZMTP heartbeat options, before connect/bind: a client PINGs with a TTL; the daemon sends none."""
    import zmq

    socket.setsockopt(zmq.HEARTBEAT_IVL, 0 if daemon else ZMTP_HEARTBEAT_IVL_MS)
    socket.setsockopt(zmq.HEARTBEAT_TIMEOUT, 0)
    socket.setsockopt(zmq.HEARTBEAT_TTL, 0 if daemon else ZMTP_HEARTBEAT_TTL_MS)


def configure_client_socket(socket: Any) -> None:
    """Everything a client DEALER needs before connect (section 7 of the protocol): LINGER 0,
    an unbounded receive queue (``RCVHWM`` 0, see above) and the client's ZMTP heartbeats."""
    import zmq

    socket.setsockopt(zmq.LINGER, 0)
    socket.setsockopt(zmq.RCVHWM, 0)
    configure_zmtp_heartbeat(socket)
