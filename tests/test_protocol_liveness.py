"""The heartbeat design of docs/PROTOCOL.md section 7, checked against real libzmq.

A ROUTER with ROUTER_MANDATORY and ZMTP heartbeats must see sends to a vanished client
fail with EHOSTUNREACH within the documented bounds: at once for a killed process, within
about 2 s for a stopped (hung) one. The daemon relies on exactly this.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pytest
import zmq

from neural_style.protocol import HEARTBEAT_INTERVAL, configure_zmtp_heartbeat
from neural_style.protocol.messages import Heartbeat

CLIENT = """
import sys, zmq
from neural_style.protocol import configure_zmtp_heartbeat
from neural_style.protocol.messages import Ping
sock = zmq.Context().socket(zmq.DEALER)
configure_zmtp_heartbeat(sock)
sock.connect(sys.argv[1])
sock.send_multipart(Ping("hello").to_frames())
import time; time.sleep(60)  # stay alive until killed
"""


def _router() -> tuple[zmq.Socket, str]:
    sock = zmq.Context.instance().socket(zmq.ROUTER)
    sock.setsockopt(zmq.ROUTER_MANDATORY, 1)
    sock.setsockopt(zmq.LINGER, 0)
    configure_zmtp_heartbeat(sock)
    port = sock.bind_to_random_port("tcp://127.0.0.1")
    return sock, f"tcp://127.0.0.1:{port}"


def _seconds_until_unreachable(sock: zmq.Socket, peer: bytes, limit: float) -> float:
    started = time.monotonic()
    while time.monotonic() - started < limit:
        try:
            sock.send_multipart([peer, *Heartbeat("job", "running").to_frames()], zmq.NOBLOCK)
        except zmq.Again:
            pass  # alive but not reading: not a disconnect (see PROTOCOL.md)
        except zmq.ZMQError as exc:
            assert exc.errno == zmq.EHOSTUNREACH
            return time.monotonic() - started
        time.sleep(0.05)
    raise AssertionError(f"sends still succeed {limit} s after the client vanished")


@pytest.mark.parametrize("how, bound", [("kill", 2.0), ("stop", 4.0)])  # "within a couple of seconds"
def test_router_mandatory_sees_a_vanished_client(how: str, bound: float) -> None:
    if how == "stop" and not hasattr(signal, "SIGSTOP"):
        pytest.skip("no SIGSTOP on this platform")
    sock, endpoint = _router()
    proc = subprocess.Popen([sys.executable, "-c", CLIENT, endpoint])
    try:
        assert sock.poll(10000), "the client process never said hello"
        peer, *frames = sock.recv_multipart()
        sock.send_multipart([peer, *Heartbeat("job", "queued").to_frames()])  # reachable while alive
        os.kill(proc.pid, signal.SIGKILL if how == "kill" else signal.SIGSTOP)
        assert _seconds_until_unreachable(sock, peer, bound) < bound
    finally:
        proc.kill()
        proc.wait()
        sock.close(0)


def test_documented_heartbeat_settings_are_applied() -> None:
    sock = zmq.Context.instance().socket(zmq.DEALER)
    try:
        configure_zmtp_heartbeat(sock)
        assert sock.getsockopt(zmq.HEARTBEAT_IVL) == 500
        assert sock.getsockopt(zmq.HEARTBEAT_TIMEOUT) == 1500
    finally:
        sock.close(0)
    assert 0 < HEARTBEAT_INTERVAL <= 1.0  # "within a couple of seconds" needs sub-second heartbeats
