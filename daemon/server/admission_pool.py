"""The admission stage off the socket loop: requests whose pixels must be read before they are judged.

Why a thread pool of its own: a PNG or JPEG region mask is judged by its levels (an all-black one is
refused before ``accepted``, docs/PROTOCOL.md section 4, "Regions"), and inflating a 24 MP PNG takes
up to seconds (bench/mask_admission_bench.py) that the socket loop must spend answering pings,
heartbeats and other clients; a PNG picture's chunks are checked here too (``decode.verify_png``).
So the loop hands such a request here (``admission.needs_reading``), and sends ``accepted`` or the
refusal when ``admission.judge_pixels`` is done with it.

Bounded: ``decoders`` requests are decoded at once (each image within ``max_pixels``, so the memory
decoding holds is at most that many requests' worth), and the loop counts every request handed here
(``pending``, a cancelled one until its decoding ends) against its queue's length, so a client cannot
pile up work behind the pool.  Finished requests come back through a thread-safe queue; a byte on a
socket pair wakes the loop's poller (``fileno``), as the worker's PAIR socket does for its events.
"""

from __future__ import annotations

import logging
import queue
import socket
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

from neural_style.protocol.errors import CodedError, ErrorCode

from .jobs import StylizeRequest

__all__ = ["DECODERS", "Admitting", "AdmissionPool"]

log = logging.getLogger("neural_style.daemon.server")

#: Requests decoded at once.  Two: the daemon's two-core machines decode two PNGs side by side
#: (Pillow's inflate releases the GIL) while the worker's job and the loop share the rest; more would
#: only hold more decoded masks in memory at once.
DECODERS = 2


@dataclass(eq=False)
class Admitting:
    """One stylize between its arrival and its ``accepted`` or refusal: the loop reserves its id meanwhile
    (a duplicate is refused) and its queue place.  Written by the loop, but for ``outcome``, which the pool's
    thread sets once before handing it back."""

    client: bytes
    request_id: str
    request: StylizeRequest  # what the socket loop's admission admitted, its PNG/JPEG images not read yet
    received: float = field(default_factory=time.monotonic)  # when it arrived, for the job's log line
    cancelled: bool = False  # ended already (cancel, a vanished client, shutdown): its outcome is dropped
    outcome: StylizeRequest | CodedError | None = None

    @property
    def key(self) -> tuple[bytes, str]:
        return (self.client, self.request_id)


class AdmissionPool:
    """``decoders`` threads running ``judge`` on handed-over requests; the loop collects them with
    ``completed`` when ``fileno`` is readable.  Every method but the threads' own is the loop's."""

    def __init__(self, judge: Callable[[StylizeRequest], StylizeRequest], decoders: int = DECODERS) -> None:
        self._judge = judge
        self._executor = ThreadPoolExecutor(decoders, thread_name_prefix="neural-style-admission")
        self._done: queue.SimpleQueue[Admitting] = queue.SimpleQueue()
        self._wake_reader, self._wake_writer = socket.socketpair()
        self._wake_reader.setblocking(False)
        self._wake_writer.setblocking(False)
        self.pending = 0  # handed over and not collected yet, cancelled ones included

    def fileno(self) -> int:
        """Readable when a request is done (for the loop's ``zmq.Poller``)."""
        return self._wake_reader.fileno()

    def submit(self, item: Admitting) -> None:
        self.pending += 1
        self._executor.submit(self._run, item)

    def _run(self, item: Admitting) -> None:
        """On a pool thread: the outcome of ``item`` (never raises), then wake the loop."""
        if not item.cancelled:  # a request cancelled while it waited for a thread is not decoded at all
            try:
                item.outcome = self._judge(item.request)
            except CodedError as exc:
                item.outcome = exc
            except Exception:  # a bug must not lose the request: it is refused, and the daemon keeps serving
                log.exception("admitting request %r failed", item.request_id)
                item.outcome = CodedError(ErrorCode.INTERNAL, "the daemon failed to admit this request (see its log)")
        self._done.put(item)
        try:
            self._wake_writer.send(b"\0")
        except (BlockingIOError, OSError):  # the loop has unread wake-ups already, or the pool is closing
            pass

    def completed(self) -> list[Admitting]:
        """The requests done since the last call, each exactly once (cancelled ones too: the loop drops them)."""
        try:
            while self._wake_reader.recv(4096):
                pass
        except (BlockingIOError, OSError):
            pass
        done = []
        while True:
            try:
                done.append(self._done.get_nowait())
            except queue.Empty:
                break
        self.pending -= len(done)
        return done

    def close(self) -> None:
        """Stop taking work; requests still waiting for a thread are dropped, running ones finish unread."""
        self._executor.shutdown(wait=False, cancel_futures=True)
        self._wake_reader.close()
        self._wake_writer.close()
