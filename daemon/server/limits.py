"""This daemon's limits: the bounds its ``serve`` options put on what one request may ask.

Why a module of its own: the limits are one fact read in several places (the request
reader's per-message bounds, the admission checks, the socket's ``MAXMSGSIZE``, the queue's
length, ``pong``'s ``limits``), so they are declared once here and imported everywhere.

Two of them are budgets rather than refusals: ``max_memory`` and ``max_preview_size`` bound
what a job gets, and a request may ask for less (``job_bound``: the smaller of the two, 0
meaning "no bound of its own"), never for more.
"""

from __future__ import annotations

import argparse
import dataclasses
from dataclasses import dataclass
from typing import Any

from neural_style.daemon.engine.params import PARAM_SPECS
from neural_style.daemon.options import mebibytes, non_negative_int, positive_int

__all__ = ["Limits", "MiB", "add_limit_options", "job_bound", "limits_from_options"]

MiB = 1024 * 1024
_LIMIT = "neural_style.limit"  # the key of a limit's rules in its dataclasses metadata


def job_bound(requested: int, daemon: int) -> int:
    """The smaller of a request's and the daemon's bound, where 0 means "no bound of its own"."""
    if not requested or not daemon:
        return requested or daemon
    return min(requested, daemon)


@dataclass(frozen=True)
class LimitRule:
    """How a limit is given as a ``serve`` option, beside its default (the field's)."""

    help: str
    minimum: int = 1
    option: str = ""  # default: --max-… from the name
    scale: int = 1  # the option counts in these (max_message_bytes: MiB)
    memory: bool = False  # read as a memory size, "8G", "512M" (MiB)
    param: str = ""  # a budget within this request parameter's own range (0 included)
    metavar: str | None = None


def limit(default: int, help: str, **rules: Any) -> Any:
    """A Limits field: its default and how its ``serve`` option reads (``LimitRule``)."""
    return dataclasses.field(default=default, metadata={_LIMIT: LimitRule(help, **rules)})


def _rule(f: dataclasses.Field[Any]) -> LimitRule:
    rule: LimitRule = f.metadata[_LIMIT]
    return rule


def _option(f: dataclasses.Field[Any]) -> str:
    return _rule(f).option or "--" + f.name.replace("_", "-")


@dataclass(frozen=True)
class Limits:
    """Bounds on what one request may ask of the daemon, each declared once: its ``serve`` option, ``pong``'s
    ``limits`` key and PROTOCOL.md's row (a test checks) all derive from the field."""

    max_pixels: int = limit(25_000_000, "largest input image, width×height, and so the largest job at the "
                                        "content's own size")  # a 24-megapixel photo fits
    max_message_bytes: int = limit(256 * MiB, "largest request message in MiB, all frames together",
                                   option="--max-message-mb", scale=MiB)  # a 24 MP RGBA raw frame is 96 MB
    max_iterations: int = limit(5000, "most iterations one job may ask for")
    max_size: int = limit(2048, "largest scaled-down working size (size, width, height) in pixels; a job at the "
                                "content's own size (size 0) is bounded by --max-pixels instead")
    max_queue: int = limit(16, "jobs that may wait behind the running one before requests get 'busy'", minimum=0)
    max_styles: int = limit(8, "style images per request")
    max_earlier: int = limit(4, "earlier frames (long-term consistency) a sequence's request may carry besides "
                                "its previous frame", minimum=0)
    max_memory: int = limit(0, "memory one job may use, e.g. 8G or 512M: a request's max_memory is capped to it "
                               "and a request without one gets it; 0: what the device gives",
                            minimum=0, memory=True, param="max_memory", metavar="SIZE")
    max_preview_size: int = limit(2048, "longest side of the progress previews sent; a request's preview_size is "
                                        "capped to it; 0: no cap", minimum=0, param="preview_size", metavar="PX")
    max_connections: int = limit(64, "connections the network front (--front zmtp) accepts at once; with "
                                     "--max-message-mb it bounds what peers can make the daemon hold")
    handshake_timeout: int = limit(10, "seconds a connection to the network front has to finish its ZMTP "
                                       "(and CURVE) handshake before it is closed", metavar="SECONDS")
    # Five minutes: this protocol's clients send a ZMTP PING every 0.1 s and a peer with an unfinished job
    # gets a heartbeat every 0.5 s, so only a peer doing nothing at all is idle; five minutes still leaves
    # a hand-written client without heartbeats (a REPL, a script between files) its connection between
    # requests, and a max_message_bytes message (256 MiB) arriving at 1 MiB/s is one message.
    idle_timeout: int = limit(300, "seconds a connection to the network front may stay idle (no message or "
                                   "ZMTP PING from it, nothing to it) before it is closed and its place "
                                   "(--max-connections) freed; 0: never", minimum=0, metavar="SECONDS")

    def __post_init__(self) -> None:
        for f in dataclasses.fields(self):
            rule, value = _rule(f), getattr(self, f.name)
            if value < rule.minimum:
                raise ValueError(f"{f.name} must be at least {rule.minimum}")
            if rule.param:
                try:  # the request parameter's own range applies (0 included)
                    PARAM_SPECS[rule.param].coerce(value)
                except ValueError as exc:  # "max_preview_size must be…"
                    raise ValueError(f.name + str(exc).removeprefix(rule.param)) from None

    @property
    def max_request_frames(self) -> int:
        """A request is a header, a content image, a sequence's previous frame (two images), up to
        ``max_earlier`` earlier frames (two images each) and up to ``max_styles`` style images, each with its
        region mask and its source mask (issue 17)."""
        return 4 + 2 * self.max_earlier + 3 * self.max_styles

    def describe(self) -> dict[str, int]:
        """The limits as a map, for ``pong`` replies: every bound the daemon applies, so that a client
        (the GIMP plug-in) sizes its requests from these instead of restating them."""
        return dataclasses.asdict(self)


def add_limit_options(group: argparse._ActionsContainer) -> None:
    """One ``serve`` option per limit, from its declaration (name, type, default, help)."""
    defaults = Limits()
    for f in dataclasses.fields(Limits):
        rule = _rule(f)
        kind = mebibytes if rule.memory else positive_int if rule.minimum >= 1 else non_negative_int
        default = getattr(defaults, f.name) // rule.scale
        group.add_argument(_option(f), type=kind, default=default, metavar=rule.metavar,
                           help=f"{rule.help} (default {default})")


def limits_from_options(args: argparse.Namespace) -> Limits:
    """The Limits the options of ``add_limit_options`` give; ValueError for an inconsistent one."""
    return Limits(**{f.name: getattr(args, _option(f)[2:].replace("-", "_")) * _rule(f).scale
                     for f in dataclasses.fields(Limits)})
