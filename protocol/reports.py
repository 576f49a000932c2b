"""How a front end reads a job's reports: the one progress vocabulary and the one duration formatter.

A progress report has the same attribute names wherever it is: the engine's ``EngineProgress``, the
wire's ``Progress`` (messages.py; ``Message.of`` builds one from the engine's record by these names),
and what the CLI's bar and the plug-in's status text read (``ProgressReport``).  The names are
documented once, in docs/PROTOCOL.md's ``progress`` table.  Stdlib only: the plug-in imports it.
"""

from __future__ import annotations

from typing import Optional, Protocol


class LossReport(Protocol):
    @property
    def total(self) -> float: ...


class ProgressReport(Protocol):
    """What a front end reads from a progress report (``iteration`` of ``iterations``, ``scale`` of ``scales``)."""

    @property
    def iteration(self) -> int: ...

    @property
    def iterations(self) -> int: ...

    @property
    def loss(self) -> LossReport: ...

    @property
    def elapsed(self) -> float: ...

    @property
    def scale(self) -> int: ...

    @property
    def scales(self) -> int: ...

    @property
    def seconds_left(self) -> Optional[float]: ...


def duration(seconds: float, *, rough: bool = False) -> str:
    """A time as a person reads an estimate: "42 s", "3 min 05 s", "2 h 07 min"; ``rough`` for a status line
    that must not look precise: "about 25 s", "about 3 min", "about 1 h 20 min" (never "about 0 s")."""
    whole = max(0, round(seconds))
    about = "about " if rough else ""
    if whole < 60:
        return f"{about}{max(1, whole) if rough else whole} s"
    minutes, rest = divmod(whole, 60)
    if rough:
        minutes = round(whole / 60)
    if minutes < 60:
        return f"about {minutes} min" if rough else f"{minutes} min {rest:02d} s"
    hours, minutes = divmod(minutes, 60)
    return f"{about}{hours} h {minutes:02d} min"
