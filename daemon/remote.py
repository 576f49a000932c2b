"""The CLI's daemon side: ``neural-style status`` and ``neural-style stylize`` through the warm daemon.

Why a module apart from ``cli.py``: the CLI parses options and runs jobs
in-process (``--local``); everything that talks to a daemon (finding or
autostarting it, sending images, streaming progress into the progress bar,
turning protocol errors into one clear line and an exit code) lives here.
Every failure ends in one message on stderr and a non-zero exit, never a traceback.
"""

from __future__ import annotations

import argparse
import sys
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

from neural_style.daemon.concurrent_jobs import Stopped
from neural_style.daemon.exit_codes import (
    EXIT_BAD_INPUT,
    EXIT_DAEMON_ERROR,
    EXIT_INTERRUPTED,
    EXIT_NO_DAEMON,
    EXIT_NO_WEIGHTS,
    EXIT_OK,
)
from neural_style.daemon.local_errors import ImageError
from neural_style.daemon.progress_bar import ProgressBar
from neural_style.protocol import (
    Accepted,
    Client,
    DaemonError,
    DaemonUnavailable,
    Heartbeat,
    ImageData,
    NoDaemon,
    Pong,
    Progress,
    Result,
    connect_or_start,
    resolve_endpoint,
)
from neural_style.protocol.connection import serve_command

if TYPE_CHECKING:
    from neural_style.daemon.engine.params import StyleParams
    from neural_style.protocol.client import StylizeStream
    from neural_style.protocol.messages import Earlier, Previous

__all__ = ["status", "stylize_with_daemon", "stylize_all_with_daemon", "daemon_command", "request_params",
           "image_for_request", "daemon_failure", "RunRequest", "DaemonFrames", "video_with_daemon"]


#: Seconds each request/reply exchange with the daemon may take (and the wait for a job's ``accepted``).
CLIENT_TIMEOUT = 30.0


def _say(message: str, stream: TextIO | None = None) -> None:
    print(message, file=stream or sys.stderr)


def daemon_command(args: argparse.Namespace, endpoint: str) -> list[str]:
    """The command that autostarts a daemon with this invocation's model options."""
    return serve_command([sys.executable, "-m", "neural_style.daemon.cli", "serve"], bind=endpoint,
                         weights=getattr(args, "weights", None), weights_format=getattr(args, "weights_format", None),
                         device=getattr(args, "device", None))


def request_params(params: StyleParams) -> dict[str, Any]:
    """The ``params`` map of a request: only the values that differ from the defaults.

    Sending only what the user changed keeps the request small and lets a daemon with newer
    defaults apply them.
    """
    from neural_style.daemon.engine.params import StyleParams

    defaults = StyleParams().to_mapping()
    return {name: value for name, value in params.to_mapping().items() if value != defaults[name]}


def image_for_request(path: Path) -> ImageData:
    """A file as a request image: PNG/JPEG bytes as they are (the daemon decodes them with its limits) with
    their size from the header (the client then allows for a full-size result's transfer, and the daemon
    checks it), any other format decoded here and sent raw."""
    encoded = ImageData.from_file_bytes(Path(path).read_bytes())
    if encoded is not None:
        import dataclasses

        from neural_style.daemon.server.decode import probe  # the daemon's own header read (torch-free)

        width, height = probe(encoded.data, encoded.encoding, sys.maxsize)  # the daemon applies its limit
        return dataclasses.replace(encoded, width=width, height=height)
    from neural_style.daemon.image_files import load_image, tensor_to_bytes

    raw, width, height, channels = tensor_to_bytes(load_image(path))
    return ImageData.raw(raw, width, height, channels)


@dataclass(frozen=True)
class RunRequest:
    """What every request of one run carries unchanged: a photo's (each photo of a folder) or every frame's of a
    sequence. Why one record: the photo path and the frames path send the same fields, so a new request field
    is one edit here (a field and its keyword in ``send``), not another positional argument through each call."""

    styles: list[ImageData]
    params: dict[str, Any]  #: the wire's ``params`` map (``request_params``)
    blend: list[float] | None = None
    style_masks: list[ImageData | None] | None = None
    style_source_masks: list[ImageData | None] | None = None

    def send(self, client: Client, content: ImageData | None, *, heartbeats: bool,
             previous: Previous | None = None, earlier: Sequence[Earlier] | None = None) -> StylizeStream:
        """This run's request for ``content`` (and a frame's ``previous``/``earlier``) on ``client``: its stream."""
        return client.stylize(content, self.styles, self.params, self.blend, heartbeats=heartbeats,
                              previous=previous, earlier=earlier, style_masks=self.style_masks,
                              style_source_masks=self.style_source_masks)


def _connect(args: argparse.Namespace, endpoint: str) -> tuple[Client, Pong]:
    """A client of the daemon at ``endpoint`` (started first unless --no-autostart) and its first ``pong``
    (the weights it reports, how many jobs it runs at once).

    Raises DaemonUnavailable (NoDaemon when nothing answers and nothing may be started).
    """
    try:
        client, handle = connect_or_start(endpoint, daemon_command(args, endpoint),
                                          autostart=not getattr(args, "no_autostart", False), timeout=CLIENT_TIMEOUT)
    except NoDaemon:
        raise NoDaemon(f"no daemon answered at {endpoint} (start one with `neural-style serve`, "
                       f"or drop --no-autostart, or use --local)") from None
    if handle.started:
        _say(f"started a daemon at {endpoint} (pid {handle.pid}, log {handle.log_path})")
    return client, handle.pong


def _more_clients(endpoint: str, count: int) -> list[Client]:
    """``count`` more clients of the daemon the first one reached: one per thread that keeps a job in flight."""
    return [Client(endpoint, timeout=CLIENT_TIMEOUT) for _ in range(count)]


def status(args: argparse.Namespace) -> int:
    """``neural-style status``: what the daemon at ``args.endpoint`` is doing (never autostarts)."""
    endpoint = resolve_endpoint(getattr(args, "endpoint", None))
    try:
        with Client(endpoint, timeout=3.0) as client:
            pong = client.ping()
            state = client.status()
    except DaemonUnavailable:
        _say(f"no daemon answered at {endpoint} (start one with `neural-style serve`)")
        return EXIT_NO_DAEMON
    except DaemonError as exc:
        _say(f"the daemon at {endpoint} refused: {exc}")
        return EXIT_DAEMON_ERROR
    except ValueError as exc:  # an endpoint ZeroMQ cannot parse
        _say(f"error: {exc}")
        return EXIT_BAD_INPUT
    out = sys.stdout
    weights = pong.weights if pong.weights_loaded else "NONE yet (it looks for them again at every stylize)"
    print(f"daemon {pong.daemon_version} at {endpoint} (protocol {pong.protocol})", file=out)
    print(f"device:  {pong.device}", file=out)
    print(f"weights: {weights}", file=out)
    if pong.limits:  # what a request may ask (docs/PROTOCOL.md, section 9)
        print("limits:  " + ", ".join(f"{name} {value}" for name, value in pong.limits.items()), file=out)
    if pong.workers is not None:
        print(f"workers: {pong.workers} (jobs at once)", file=out)
    running = [job for job in (state.running, *(state.also_running or ())) if job is not None]
    if not running:
        print("running: nothing", file=out)
    for job in running:  # a cluster's other running jobs (also_running), each on its worker
        where = f" on {job.worker}" if job.worker else ""
        print(f"running: {job.id or '(another client)'}{where} iteration {job.iteration}/{job.iterations}, "
              f"{job.elapsed:.1f}s", file=out)
    print(f"queued:  {len(state.queued)}", file=out)
    for job in state.queued:
        print(f"  {job.position}. {job.id} ({job.iterations} iterations)", file=out)
    return EXIT_OK


def stylize_with_daemon(args: argparse.Namespace, content: Path | None, styles: list[Path], params: StyleParams,
            output: Path, style_blend: Sequence[float] | None = None) -> int:
    """``neural-style stylize`` through the daemon; returns the exit code."""
    return stylize_all_with_daemon(args, [(content, output)], styles, params, style_blend)


def stylize_all_with_daemon(args: argparse.Namespace, jobs: Sequence[tuple[Path | None, Path]], styles: list[Path],
                            params: StyleParams, style_blend: Sequence[float] | None = None) -> int:
    """``neural-style stylize`` of one or several (content, output) pairs through one connection to the
    daemon: independent photos, one warm model, the style's targets computed once (the daemon's cache).

    What the inputs need (a blend weight per style…) is checked here, where the request enters this
    process, with the daemon's own check (``plan_inputs``): a mistake is exit 2 before any connection.
    """
    from neural_style.daemon.engine.engine_errors import ParamError
    from neural_style.daemon.engine.params import plan_inputs

    try:
        plan_inputs(params, has_content=jobs[0][0] is not None, style_count=len(styles), style_blend=style_blend)
    except ParamError as exc:
        _say(f"error: {exc}")
        return EXIT_BAD_INPUT
    endpoint = resolve_endpoint(getattr(args, "endpoint", None))
    try:
        style_images = [image_for_request(p) for p in styles]
    except Exception as exc:  # unreadable file, not an image (non-PNG/JPEG decoded here)
        _say(f"error: {exc}")
        return EXIT_BAD_INPUT
    blend = list(style_blend) if style_blend is not None else None
    try:
        masks, source_masks = (_request_masks(getattr(args, name, None))
                               for name in ("style_masks", "style_source_masks"))
    except Exception as exc:  # unreadable file, not an image
        _say(f"error: {exc}")
        return EXIT_BAD_INPUT
    run = RunRequest(style_images, request_params(params), blend, masks, source_masks)

    def one_photo(client: Client, content: Path | None, output: Path, stop: threading.Event | None) -> int:
        try:
            content_image = image_for_request(content) if content is not None else None
        except Exception as exc:  # unreadable file, not an image (non-PNG/JPEG decoded here)
            _say(f"error: {exc}")
            return EXIT_BAD_INPUT
        result = _stream_job(client, endpoint, run, content_image, params.iterations, stop)
        if result is None or result.image is None:  # pragma: no cover - the client raises instead
            _say(f"error: the daemon at {endpoint} ended the job without a result")
            return EXIT_DAEMON_ERROR
        return _write_result(result, output, weights, params, blend)

    try:
        client, pong = _connect(args, endpoint)
        weights = pong.weights
        with client:
            slots = min(pong.slots, len(jobs))
            if slots > 1:
                return _photos_concurrently(client, endpoint, jobs, slots, one_photo)
            for content, output in jobs:
                code = one_photo(client, content, output, None)
                if code != EXIT_OK:
                    return code
    except KeyboardInterrupt:  # the client's stream cancels the job when it is abandoned
        _say("interrupted (the job was cancelled)")
        return EXIT_INTERRUPTED
    except _PhotoFailed as exc:  # its message is already said
        return exc.code
    except (DaemonError, DaemonUnavailable, ValueError) as exc:
        return daemon_failure(exc, endpoint)
    return EXIT_OK


class _PhotoFailed(Exception):
    """One photo of a concurrent run ended with this exit code (its message already said): the run stops."""

    def __init__(self, code: int) -> None:
        super().__init__(code)
        self.code = code


def _photos_concurrently(client: Client, endpoint: str, jobs: Sequence[tuple[Path | None, Path]], slots: int,
                         one_photo: Callable[[Client, Path | None, Path, threading.Event | None], int]) -> int:
    """Independent photos over a daemon that runs ``slots`` jobs at once (a cluster front): as many jobs in
    flight, each on a thread with its own client, every result written as it arrives; the first failure
    cancels the others' jobs."""
    from collections import deque

    from .concurrent_jobs import run_concurrently

    pending = deque(jobs)
    _say(f"{len(jobs)} photos, {slots} at a time (the daemon at {endpoint} runs {slots} jobs at once)")

    def worker(own: Client) -> Callable[[threading.Event], int]:
        def run(stop: threading.Event) -> int:
            with own:
                while not stop.is_set():
                    try:
                        content, output = pending.popleft()
                    except IndexError:
                        return EXIT_OK
                    code = one_photo(own, content, output, stop)
                    if code != EXIT_OK:
                        raise _PhotoFailed(code)
            return EXIT_OK
        return run

    clients = [client, *_more_clients(endpoint, slots - 1)]
    try:
        run_concurrently([worker(own) for own in clients])
    finally:
        for own in clients[1:]:
            own.close()
    return EXIT_OK


def _request_masks(paths: Sequence[Path | None] | None) -> list[ImageData | None] | None:
    """``--style-mask``/``--style-source-mask`` files as request images (None: that style has none)."""
    from neural_style.daemon.mask_images import load_mask

    return [None if path is None else load_mask(path) for path in paths] if paths else None


def _stream_job(client: Client, endpoint: str, run: RunRequest, content: ImageData | None, iterations: int,
                stop: threading.Event | None = None) -> Result | None:
    """One job's events into a progress bar of ``iterations`` (started when the job starts running); its Result.

    With ``stop`` (one of several jobs in flight): no bar (several would garble one terminal line), and the
    job is cancelled at its next event (a heartbeat at least every 0.5 s) once ``stop`` is set."""
    bar: ProgressBar | None = None
    result: Result | None = None
    stream = run.send(client, content, heartbeats=True)
    try:
        for event in stream:
            if isinstance(event, Result):
                result = event
            elif stop is not None:
                if stop.is_set():
                    raise Stopped("another photo failed, or Ctrl+C")
            elif isinstance(event, Accepted):
                if event.position > 0:
                    _say(f"queued behind {event.position} job(s) at {endpoint}")
                else:  # starts now: start the bar's clock now, so its rate is right
                    bar = ProgressBar(iterations)
            elif isinstance(event, Heartbeat):
                if bar is None and event.state == "running":
                    bar = ProgressBar(iterations)
            elif isinstance(event, Progress):
                if bar is None:
                    bar = ProgressBar(event.iterations)
                bar.report(event)
    finally:
        stream.close()  # abandoned (Ctrl+C, stop): the job is cancelled now, not when the traceback is freed
        if bar is not None:
            bar.close()
    return result


def daemon_failure(exc: Exception, endpoint: str) -> int:
    """One line for what went wrong talking to the daemon at ``endpoint``, and its exit code."""
    if isinstance(exc, DaemonError):
        _say(f"error from the daemon at {endpoint}: {exc.code}: {exc.message}")
        return EXIT_NO_WEIGHTS if exc.code == "no_weights" else EXIT_DAEMON_ERROR
    _say(f"error: {exc}")  # DaemonUnavailable, or a ValueError: an endpoint ZeroMQ cannot parse
    return EXIT_NO_DAEMON if isinstance(exc, DaemonUnavailable) else EXIT_BAD_INPUT


class DaemonFrames:
    """A sequence's frames stylized through one connection to the daemon (``neural-style video``): each
    request carries its previous frame (``Previous``) and its long-term frames (``Earlier``), so the daemon
    keeps nothing between frames, and the style's Gram targets come from the daemon's cache after the first
    frame; ``run`` is what every frame's request shares."""

    def __init__(self, client: Client, run: RunRequest, flow: str) -> None:
        self.client, self.run, self.flow = client, run, flow

    def __call__(self, content: Any, previous: Any, on_progress: Any, *, stop: threading.Event | None = None,
                 earlier: Sequence[Any] = ()) -> Any:
        import numpy as np

        from neural_style.protocol.messages import Earlier, Previous

        def raw(array: Any) -> ImageData:
            height, width, channels = array.shape
            return ImageData.raw(np.ascontiguousarray(array).tobytes(), width, height, channels)

        before = Previous(raw(previous.content), raw(previous.stylized), self.flow) if previous is not None else None
        far = [Earlier(raw(frame.content), raw(frame.stylized), frame.offset) for frame in earlier]
        result: Result | None = None
        stream = self.run.send(self.client, raw(content), heartbeats=stop is not None, previous=before,
                               earlier=far or None)
        try:
            for event in stream:
                if isinstance(event, Progress):
                    on_progress(event)
                elif isinstance(event, Result):
                    result = event
                if result is None and stop is not None and stop.is_set():
                    raise Stopped("the run is stopping")  # the stream's close below cancels the frame's job
        finally:  # Ctrl+C: closing the stream cancels the frame's job now, not when the traceback is freed
            stream.close()
        image = result.image if result is not None else None
        assert image is not None and image.width and image.height and image.channels  # else the client raised
        pixels = np.frombuffer(bytes(image.data), np.uint8).reshape(image.height, image.width, image.channels)
        return pixels[..., :3].copy()


def video_with_daemon(args: argparse.Namespace, styles: list[Path], params: StyleParams,
                      style_blend: Sequence[float] | None, flow: str,
                      run: Callable[[list[DaemonFrames]], int]) -> int:
    """``neural-style video`` through the daemon: one connection (autostarted like stylize's) for every frame,
    or one per job the daemon runs at once (a cluster front: the frames then go in chunks, one per worker);
    ``run`` is the sequence's loop given the frame stylizers. Returns the exit code."""
    endpoint = resolve_endpoint(getattr(args, "endpoint", None))
    try:
        style_images = [image_for_request(p) for p in styles]
    except Exception as exc:  # unreadable file, not an image
        _say(f"error: {exc}")
        return EXIT_BAD_INPUT
    clients: list[Client] = []
    try:
        client, pong = _connect(args, endpoint)
        clients = [client]
        most, asked = (pong.limits or {}).get("max_earlier"), len(getattr(args, "long_term", ()))
        if most is not None and asked > most:  # refused before the first frame, not at frame most + 2
            _say(f"error: --long-term gives {asked} earlier frames; this daemon accepts at most {most} "
                 "(serve --max-earlier)")
            return EXIT_BAD_INPUT
        clients += _more_clients(endpoint, pong.slots - 1)
        request = RunRequest(style_images, request_params(params),
                             list(style_blend) if style_blend is not None else None)
        return run([DaemonFrames(own, request, flow) for own in clients])
    except (DaemonError, DaemonUnavailable) as exc:
        return daemon_failure(exc, endpoint)
    except ValueError as exc:
        if isinstance(exc, ImageError):  # the sequence's own (SequenceError): the command's user error
            raise
        return daemon_failure(exc, endpoint)  # an endpoint ZeroMQ cannot parse
    finally:
        for own in clients:
            own.close()


def _write_result(result: Result, output: Path, weights: str | None, params: StyleParams,
                  style_blend: Sequence[float] | None) -> int:
    from neural_style.daemon.cli import recorded_settings
    from neural_style.daemon.local_errors import ImageError
    from neural_style.daemon.png_output import output_metadata, pil_from_raw, save_pil

    image = result.image
    assert image is not None and image.width and image.height and image.channels
    metadata = output_metadata(weights or "unknown", recorded_settings(params, style_blend))
    try:
        save_pil(pil_from_raw(bytes(image.data), image.width, image.height, image.channels), output, metadata)
    except ImageError as exc:
        _say(f"error: {exc}")
        return EXIT_BAD_INPUT
    _say(f"wrote {output} ({image.width}x{image.height}, {result.iterations} iterations in {result.elapsed:.1f}s, "
         f"loss {result.loss.total:.4g}, style cache {result.style_cache_hits} hit(s))")
    return EXIT_OK
