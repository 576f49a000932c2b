"""One job, from "contacting the daemon" to the result: the plug-in's event loop and its error mapping.

No GIMP here: the GIMP side passes a ``View`` (progress text and bar, painting into the
layer), so this loop is unit-tested with a scripted fake client (tests/test_plugin_job.py)
and run for real by the GIMP tests.  Every failure becomes one ``JobFailed`` whose message
says what to do, in the dialog's words.
"""
from __future__ import annotations

import contextlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Optional, Protocol

from neural_style.protocol import (
    Accepted,
    ClientConfig,
    DaemonClient,
    DaemonError,
    DaemonStartFailed,
    DaemonUnavailable,
    Heartbeat,
    ImageData,
    NoDaemon,
    Previous,
    Progress,
    Result,
    connect_or_start,
    resolve_endpoint,
    service_start_command,
)

from . import advice
from .progress import ProgressText
from .settings import Settings, label, over_limits


class View(Protocol):
    """What the GIMP side shows: ``fraction`` None means "busy, no known fraction" (pulse)."""

    def show(self, text: str, fraction: Optional[float]) -> None: ...

    def paint(self, image: ImageData, final: bool) -> None: ...


class JobFailed(Exception):
    """A failure worded for the user; ``argument`` names the setting to change, when one is to blame."""

    def __init__(self, message: str, argument: Optional[str] = None) -> None:
        super().__init__(message)
        self.argument = argument


@dataclass
class Connection:
    client: DaemonClient  # the protocol's Client (or the tests' scripted fake)
    endpoint: str
    started: bool  # this run started the daemon


# The job being streamed, so that GIMP's quit message (sent 10 ms before it kills the plug-in
# on Cancel) can still tell the daemon to stop: see NeuralStyle.do_quit.
_abandon_current: Optional[Callable[[], None]] = None


def abandon_current_job() -> None:
    """Send ``cancel`` for the job being streamed, if any (best effort, never raises)."""
    global _abandon_current
    abandon, _abandon_current = _abandon_current, None
    if abandon is not None:
        with contextlib.suppress(Exception):
            abandon()


def connect(settings: Settings, config: ClientConfig, view: View, *, sandbox: Optional[str] = None,
            region: Optional[tuple[int, int]] = None, connect_fn: Callable[..., Any] = connect_or_start
            ) -> Connection:
    """A client of a daemon that answered, started when allowed; checks the settings (and the ``region``
    to send, width × height) against the limits it reported."""
    endpoint = resolve_endpoint(settings.endpoint or config.endpoint)
    command = list(config.daemon_command)
    view.show(*ProgressText.contacting(endpoint))
    may_start = settings.autostart and bool(command) and sandbox is None
    try:
        client, handle = connect_fn(endpoint, command, autostart=may_start, timeout=float(settings.timeout),
                                    on_start=lambda _command: view.show(*ProgressText.starting_daemon()))
    except NoDaemon:
        raise JobFailed(advice.no_daemon_text(
            endpoint, command=command, autostart=settings.autostart, sandbox=sandbox, service=config.service,
            service_command=service_start_command(config.service) if config.service else "")) from None
    except DaemonStartFailed as exc:
        raise JobFailed(advice.start_failed_text(endpoint, command, str(exc))) from None
    except DaemonUnavailable as exc:
        raise JobFailed(advice.lost_text(endpoint, str(exc))) from None
    except ValueError as exc:  # an address ZeroMQ cannot use
        raise JobFailed(f"{advice.PREFIX}'{label('endpoint')}' {endpoint!r} is not usable ({exc}). Give an address "
                        "as tcp://HOST:PORT or ipc://PATH, or leave it empty.", "endpoint") from None
    problem = over_limits(settings, handle.pong.limits, region)
    if problem is not None:
        client.close()
        raise JobFailed(f"{advice.PREFIX}{problem}", problem.argument)
    return Connection(client, endpoint, handle.started)


def run_job(connection: Connection, settings: Settings, content: Optional[ImageData], styles: Sequence[ImageData],
            view: View, style_masks: Optional[Sequence[Optional[ImageData]]] = None, *,
            previous: Optional[Previous] = None, text: Optional[ProgressText] = None) -> Result:
    """Stream one job: progress text and previews into ``view``; the Result, or JobFailed.

    ``style_masks``: each style's region as a grey frame of the content's size (None: the whole layer),
    or None for no regions at all (the request then carries none, as before regions existed). An animation's
    frame carries the frame before it (``previous``) and words its progress as frame i of n (``text``:
    nsgimp/frames.py)."""
    global _abandon_current
    text = text if text is not None else ProgressText(settings.iterations)
    view.show(*ProgressText.sending())
    events = connection.client.stylize(content, list(styles), settings.params(), settings.style_blend,
                                       heartbeats=True, previous=previous,
                                       style_masks=list(style_masks) if style_masks is not None else None)
    _abandon_current = events.close  # closing the stream sends the daemon a cancel
    progressed = False
    try:
        for event in events:
            if isinstance(event, Result):
                return event
            if isinstance(event, Progress):
                progressed = True
                view.show(*text.report(event))
                # A preview is stale when a newer one has already arrived: painting it would fall behind.
                if event.image is not None and not connection.client.newer_preview_waiting():
                    view.paint(event.image, False)
            elif isinstance(event, Accepted) and not progressed:
                view.show(*text.waiting("queued" if event.position > 0 else "running", event.position))
            elif isinstance(event, Heartbeat) and not progressed:
                view.show(*text.waiting(event.state, event.position))
    except DaemonError as exc:
        raise JobFailed(advice.daemon_error_text(exc.code, exc.message, settings.style_paths, exc.field),
                        advice.blamed_argument(exc.code, exc.field, settings.full_resolution)) from None
    except DaemonUnavailable as exc:
        raise JobFailed(advice.lost_text(connection.endpoint, str(exc))) from None
    finally:
        _abandon_current = None
        events.close()
    raise JobFailed(f"{advice.PREFIX}the daemon ended the job without a result. Try again.")
