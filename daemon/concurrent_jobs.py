"""Several client-side tasks at once, one thread each, stopped together: how the CLI fills a cluster's workers.

Why a module of its own: ``neural-style stylize DIR`` (one photo after another on each thread) and a chunked
``neural-style video`` (one chunk of frames on each thread) both keep as many jobs in flight as the daemon
runs at once (``pong.workers``), each thread with its own ``Client`` (a ZeroMQ socket belongs to one
thread). Both need the same rules, kept here once: the first task that fails stops the others (they see
``stop`` set, cancel their job and end), Ctrl+C does the same, and nothing returns before every thread
has ended, so no job is left running and no half-written file is left behind by a thread still at work.
"""
from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from typing import Generic, TypeVar

__all__ = ["Stopped", "run_concurrently", "JOIN_WAIT"]

T = TypeVar("T")

#: Seconds the caller waits for the threads to end once stopped: each notices ``stop`` at its job's next
#: event (a heartbeat every 0.5 s) and cancels it; a thread still busy after that is abandoned (daemon thread).
JOIN_WAIT = 30.0


class Stopped(Exception):
    """This task ended early because another one failed or the user pressed Ctrl+C (its job was cancelled)."""


class _Outcome(Generic[T]):
    def __init__(self) -> None:
        self.value: T | None = None
        self.error: BaseException | None = None


def run_concurrently(tasks: Sequence[Callable[[threading.Event], T]]) -> list[T]:
    """Run every task on a thread of its own, each given the shared ``stop`` event; their results in order.

    The first exception (other than ``Stopped``) sets ``stop`` and is raised here once every thread has
    ended (within ``JOIN_WAIT``). A KeyboardInterrupt in the caller sets ``stop`` too and is re-raised.
    A single task runs on the caller's thread: nothing to overlap.
    """
    stop = threading.Event()
    if len(tasks) == 1:
        return [tasks[0](stop)]
    outcomes: list[_Outcome[T]] = [_Outcome() for _ in tasks]

    def body(task: Callable[[threading.Event], T], outcome: _Outcome[T]) -> None:
        try:
            outcome.value = task(stop)
        except BaseException as exc:  # handed to the caller's thread, which raises it
            outcome.error = exc
            if not isinstance(exc, Stopped):
                stop.set()

    threads = [threading.Thread(target=body, args=(task, outcome), name=f"neural-style-task-{i}", daemon=True)
               for i, (task, outcome) in enumerate(zip(tasks, outcomes))]
    for thread in threads:
        thread.start()
    try:
        for thread in threads:
            while thread.is_alive():
                thread.join(0.2)  # short joins: the caller's Ctrl+C arrives between them
    except KeyboardInterrupt:
        stop.set()
        for thread in threads:
            thread.join(JOIN_WAIT)
        raise
    errors = [o.error for o in outcomes if o.error is not None and not isinstance(o.error, Stopped)]
    if errors:
        raise errors[0]
    if any(o.error is not None for o in outcomes):  # pragma: no cover - Stopped only follows another's error
        raise Stopped("stopped")
    return [o.value for o in outcomes]  # type: ignore[misc]  # every outcome has its value here
