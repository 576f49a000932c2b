"""``WorkerEvent``: the one type that crosses from the worker thread to the socket loop.

Why the worker encodes: it builds each message of a job (``progress``, ``result``,
``error``) and encodes it to frames where the data is, as LitServe's inference loop
hands its server finished responses, so the socket loop only routes: it sends the frames
to the job's connection (or queues them in its outbox) and writes the job's log line,
and never rebuilds a protocol message from a job's fields.  A 96 MB result is framed
(without a copy) off the loop's thread too.

The loop still builds the messages it originates itself: ``accepted``, heartbeats, the
replies to ``ping``/``status``/``cancel``, and the ``cancelled`` error of a job that never
reached the worker.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Union

from neural_style.protocol.messages import Error, Progress, Result

from .jobs import Job
from .outbox import Outgoing

__all__ = ["ModelState", "WorkerEvent", "JobMessage"]

JobMessage = Union[Progress, Result, Error]


@dataclass(frozen=True)
class ModelState:
    """What the loop knows about the worker's model (for ``pong``). The local worker looks for missing
    weights again at every job, so the loop queues its jobs whatever this says; a cluster front that
    reaches no cluster sets ``refuse_at_admission``, and the loop refuses them with ``refusal``."""

    loaded: bool = False
    failed: str | None = None  # the loader's message when there are no weights
    device: str = ""
    description: str | None = None
    refusal: str = "no_weights"  # the code of the jobs refused while ``failed`` (cluster_unavailable on a cluster)
    refuse_at_admission: bool = False  # while ``failed``, refuse new jobs before ``accepted`` instead of queueing them


@dataclass(frozen=True)
class WorkerEvent:
    """One report of the worker: a job's message ready to route, or the model's new state.

    ``message`` goes to ``job.client`` as it is.  A terminal one (``result`` or ``error``) also
    carries ``outcome`` ("result" or the error code) and ``detail`` for the job's one log line.
    """

    job: Job | None = None
    message: Outgoing | None = None
    model: ModelState | None = None
    outcome: str = ""
    detail: str = ""

    @classmethod
    def for_job(cls, job: Job, message: JobMessage, detail: str = "") -> WorkerEvent:
        """``message`` of ``job`` encoded; a terminal message is essential (the outbox never drops it)."""
        terminal = isinstance(message, (Result, Error))
        outcome = message.code if isinstance(message, Error) else message.TYPE if terminal else ""
        return cls(job, Outgoing.of(message, essential=terminal), outcome=outcome, detail=detail)

    @classmethod
    def model_changed(cls, state: ModelState) -> WorkerEvent:
        return cls(model=state)
