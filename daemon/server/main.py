"""Lifecycle of the warm daemon (``neural-style serve``): options, sockets, threads, signals.

Why: this is the only module that knows the whole picture.  It checks the
security of the bind address before anything listens, binds the ROUTER
(``bind.py``: the protocol's socket options, an exclusive ipc path), starts the
worker that loads the model once, serves until SIGINT, SIGTERM or SIGHUP (a
closing terminal), and then ends every job with ``cancelled`` before it exits.
"""

from __future__ import annotations

import argparse
import errno
import logging
import os
import signal
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import zmq

from neural_style.daemon.cluster.connect import LOCAL, ClusterSettings
from neural_style.daemon.exit_codes import EXIT_BAD_INPUT, EXIT_INTERNAL, EXIT_OK
from neural_style.daemon.options import non_negative_int, positive_int
from neural_style.protocol import PROTOCOL_VERSION, default_endpoint
from neural_style.protocol.connection import DEFAULT_ENDPOINT, ENDPOINT_ENV

from .bind import EndpointBusy, IpcLock, RouterSettings, bind_router, max_frame_bytes
from .front import FrontDoor, FrontSettings
from .jobs import JobQueue
from .limits import Limits, MiB, add_limit_options, limits_from_options
from .outbox import DEFAULT_OUTBOX_CAP
from .reader import MessageBounds
from .router import Router
from .security import CurveServer, SecurityError, SecuritySettings, check_bind_allowed, load_curve_keys
from .style_cache import StyleTargetCache
from .threads import THREAD_CHOICES, ThreadPolicy
from .worker import JobRunner, ModelSettings, Worker

__all__ = ["SERVE_HELP", "SERVE_DESCRIPTION", "ServerConfig", "add_serve_arguments", "config_from_args",
           "serve", "run_server", "daemon_version"]

log = logging.getLogger("neural_style.daemon.server")

STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)  # SIGHUP: the terminal that started us closed
#: What ``serve`` does, for ``--help`` (``neural-style serve`` and ``python -m neural_style.daemon.server``).
SERVE_HELP = (f"run the warm daemon (ZeroMQ) until {', '.join(s.name for s in STOP_SIGNALS[:-1])} or "
              f"{STOP_SIGNALS[-1].name} (a closing terminal), then cancel its jobs and exit cleanly")
SERVE_DESCRIPTION = SERVE_HELP[0].upper() + SERVE_HELP[1:] + "."


FRONT_AUTO, FRONT_ZMTP, FRONT_LIBZMQ = "auto", "zmtp", "libzmq"
FRONTS = (FRONT_AUTO, FRONT_ZMTP, FRONT_LIBZMQ)


@dataclass(frozen=True)
class ServerConfig:
    """Everything ``serve`` needs, independent of argparse (tests build it directly)."""

    bind: str
    model: ModelSettings = field(default_factory=ModelSettings)
    limits: Limits = field(default_factory=Limits)
    security: SecuritySettings = field(default_factory=SecuritySettings)
    cache_entries: int = 64
    cache_bytes: int = 512 * MiB
    shutdown_grace: float = 5.0  # seconds the running job gets to stop on SIGINT/SIGTERM/SIGHUP
    send_hwm: int = RouterSettings.send_hwm
    outbox_cap: int = DEFAULT_OUTBOX_CAP
    cluster: ClusterSettings | None = None  # serve --ray: jobs run on a pool of Ray workers
    front: str = FRONT_AUTO  # who speaks ZMTP on the endpoint (FRONTS): the daemon's own front or libzmq

    def __post_init__(self) -> None:
        if self.front not in FRONTS:
            raise ValueError(f"--front must be one of {', '.join(FRONTS)}")
        if self.front == FRONT_ZMTP and not self.bind.startswith("tcp://"):
            raise ValueError("--front zmtp serves tcp:// endpoints only (ipc keeps libzmq's listener)")

    @property
    def own_front(self) -> bool:
        """The daemon's own ZMTP front (``front.py``) listens: asked for, or ``auto`` on a tcp endpoint."""
        return self.front == FRONT_ZMTP or (self.front == FRONT_AUTO and self.bind.startswith("tcp://"))


def daemon_version() -> str:
    try:
        from importlib.metadata import version

        return version("neural-style-gimp")
    except Exception:  # not installed (running from a source tree)
        return "0.1.0"


def _positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be more than 0 (got {text})")
    return value


def _thread_policy(text: str) -> ThreadPolicy:
    try:
        return ThreadPolicy.parse(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def add_serve_arguments(parser: argparse.ArgumentParser) -> None:
    """The daemon's own options (``cli.add_serve_options`` adds the model's beside them)."""
    group = parser.add_argument_group("daemon")
    group.add_argument("--bind", metavar="ENDPOINT",
                       help="ZeroMQ endpoint to listen on, tcp://HOST:PORT or ipc://PATH "
                            f"(default: ${ENDPOINT_ENV} or {DEFAULT_ENDPOINT})")
    group.add_argument("--curve-dir", type=Path, metavar="DIR",
                       help="CURVE keys: DIR/server.key_secret and allowed client keys in DIR/clients/*.key "
                            "(required to bind a non-loopback address; create with "
                            "`python -m neural_style.daemon.server.security init DIR`)")
    group.add_argument("--insecure", action="store_true",
                       help="allow binding a non-loopback address WITHOUT encryption or authentication")
    group.add_argument("--front", choices=FRONTS, default=FRONT_AUTO,
                       help="who speaks ZeroMQ's wire protocol on --bind: 'zmtp', the daemon's own front, which "
                            "counts a message's frames and bytes as they arrive and so bounds what a peer can make "
                            "it hold (tcp only); 'libzmq', libzmq's listener, which holds a multipart message whole "
                            "before the daemon sees it (docs/PROTOCOL.md section 9); 'auto' (default): zmtp on tcp, "
                            "libzmq on ipc")
    add_limit_options(group)
    group.add_argument("--style-cache-entries", type=non_negative_int, default=64,
                       help="style targets (Gram matrices) kept between jobs; 0 turns the cache off (default 64)")
    group.add_argument("--style-cache-mb", type=non_negative_int, default=512,
                       help="memory the style-target cache may use, in MiB (default 512)")
    group.add_argument("--threads", type=_thread_policy, default=ThreadPolicy(),
                       metavar="N|" + "|".join(THREAD_CHOICES),
                       help="CPU threads for the model: auto (default: one per physical core, waiting passively, "
                            "as measured in docs/PERFORMANCE.md), torch (torch's defaults), load (fit to what "
                            "other processes leave idle, before each job) or a number")
    group.add_argument("--log-file", type=Path, metavar="PATH",
                       help="also append the daemon's log to this file")
    cluster = parser.add_argument_group("cluster (needs the [cluster] extra: Ray)")
    cluster.add_argument("--ray", metavar="ADDRESS",
                         help="run jobs on a pool of Ray workers, one job each at a time: 'auto' (the cluster "
                              "`ray start` made on this machine), HOST:PORT or ray://HOST:10001, or "
                              f"'{LOCAL}' (a cluster inside the daemon that ends with it)")
    cluster.add_argument("--workers", type=positive_int, default=ClusterSettings.workers,
                         help=f"with --ray: how many workers, each holding a warm model "
                              f"(default {ClusterSettings.workers})")
    cluster.add_argument("--ray-timeout", type=_positive_float, default=ClusterSettings.connect_timeout,
                         metavar="SECONDS",
                         help="with --ray: how long joining the cluster may take before jobs are refused with "
                              f"cluster_unavailable (retried meanwhile; default {ClusterSettings.connect_timeout:g})")
    cluster.add_argument("--worker-threads", type=positive_int, default=ClusterSettings.worker_threads,
                         help="with --ray: CPU threads per worker on a node without GPUs (one GPU each "
                              f"otherwise; default {ClusterSettings.worker_threads})")


def config_from_args(args: argparse.Namespace) -> ServerConfig:
    """Build a ServerConfig; raises ValueError for inconsistent options."""
    limits = limits_from_options(args)
    weights = getattr(args, "weights", None)
    model = ModelSettings(
        weights=str(weights) if weights is not None else None,
        weights_format=getattr(args, "weights_format", None) or ModelSettings.weights_format,
        device=getattr(args, "device", None) or ModelSettings.device,
        threads=getattr(args, "threads", None) or ThreadPolicy(),
    )
    return ServerConfig(
        bind=args.bind or default_endpoint(),
        model=model,
        limits=limits,
        security=SecuritySettings(curve_dir=args.curve_dir, insecure=bool(args.insecure)),
        cache_entries=args.style_cache_entries,
        cache_bytes=args.style_cache_mb * MiB,
        front=getattr(args, "front", None) or FRONT_AUTO,
        cluster=(ClusterSettings(args.ray, workers=args.workers, worker_threads=args.worker_threads,
                                 connect_timeout=args.ray_timeout)
                 if getattr(args, "ray", None) else None),
    )


def _configure_logging(log_file: Path | None) -> logging.Handler | None:
    """stderr always (unless the CLI already set it up), plus ``log_file`` when given (returned,
    so that ``serve`` can remove it again)."""
    root = logging.getLogger()
    fmt = logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s")
    if not root.handlers:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(fmt)
        root.addHandler(handler)
    if root.level == logging.NOTSET or root.level > logging.INFO:
        root.setLevel(logging.INFO)
    if log_file is not None:
        file_handler = logging.FileHandler(log_file, encoding="utf-8")
        file_handler.setFormatter(fmt)
        root.addHandler(file_handler)
        return file_handler
    return None


def serve(args: argparse.Namespace) -> int:
    """Entry point of ``neural-style serve``: run until SIGINT/SIGTERM/SIGHUP; return the exit code."""
    try:
        file_handler = _configure_logging(getattr(args, "log_file", None))
    except OSError as exc:
        log.error("cannot open the log file: %s", exc)
        return EXIT_BAD_INPUT
    try:
        return _serve(args)
    finally:
        if file_handler is not None:
            logging.getLogger().removeHandler(file_handler)
            file_handler.close()


def _serve(args: argparse.Namespace) -> int:
    try:
        config = config_from_args(args)
    except ValueError as exc:
        log.error("bad daemon options: %s", exc)
        return EXIT_BAD_INPUT
    config.model.threads.prepare_environment()  # before anything imports torch
    stop = threading.Event()
    if threading.current_thread() is not threading.main_thread():  # signals only reach the main thread
        return run_server(config, stop)

    def on_signal(signum: int, _frame: object) -> None:
        if stop.is_set():
            log.warning("second %s: exiting now, without waiting for jobs", signal.Signals(signum).name)
            logging.shutdown()
            os._exit(EXIT_INTERNAL)
        log.info("%s: cancelling jobs and shutting down", signal.Signals(signum).name)
        stop.set()

    previous = {sig: signal.signal(sig, on_signal) for sig in STOP_SIGNALS}
    try:
        return run_server(config, stop, exit_if_stuck=True)
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def run_server(config: ServerConfig, stop: threading.Event, *, exit_if_stuck: bool = False) -> int:
    """Serve ``config`` until ``stop`` is set; usable from a thread (no signal handling here).

    ``exit_if_stuck`` (the ``serve`` command): if the worker is still inside torch after the
    shutdown grace, end the process with ``os._exit`` rather than let the interpreter abort
    while tearing down under a running thread.
    """
    try:
        check_bind_allowed(config.bind, config.security)
    except SecurityError as exc:
        log.error("%s", exc)
        return EXIT_BAD_INPUT
    ctx = zmq.Context()
    try:
        sock, curve, lock, front = _listen(ctx, config)
    except SecurityError as exc:
        log.error("%s", exc)
        ctx.term()
        return EXIT_BAD_INPUT
    except EndpointBusy as exc:
        log.error("cannot listen on %s: another daemon is running there (%s)", config.bind, exc)
        ctx.term()
        return EXIT_INTERNAL
    except (zmq.ZMQError, OSError, ValueError) as exc:
        hint = " (is another daemon running there?)" if getattr(exc, "errno", None) in (zmq.EADDRINUSE,
                                                                                         errno.EADDRINUSE) else ""
        log.error("cannot listen on %s: %s%s", config.bind, exc, hint)
        ctx.term()
        return EXIT_INTERNAL

    wake_endpoint = f"inproc://neural-style-wake-{id(ctx):x}"
    wake = ctx.socket(zmq.PAIR)
    wake.setsockopt(zmq.LINGER, 0)
    wake.bind(wake_endpoint)

    worker = _job_runner(config, ctx, wake_endpoint)
    jobs = worker.jobs
    router = Router(sock, wake, jobs, worker, config.limits, daemon_version(),
                    config.model.device if config.cluster is None else "ray",
                    config.outbox_cap)
    log.info("neural-style daemon %s listening on %s%s%s (protocol %d); loading %s weights on %s",
             daemon_version(), config.bind, " with CURVE" if curve is not None or (front and front.settings.curve)
             else "", " (the daemon's own ZMTP front)" if front is not None else "", PROTOCOL_VERSION,
             config.model.weights or "default",
             config.model.device if config.cluster is None
             else f"{config.cluster.workers} Ray worker(s) at {config.cluster.address}")
    worker.start()
    if front is not None:
        front.start()
    code = EXIT_OK
    try:
        router.serve(stop)
    except Exception:
        log.exception("the socket loop failed")
        code = EXIT_INTERNAL
    finally:
        started = time.monotonic()
        router.shutdown(grace=config.shutdown_grace)
        # The worker stops between two iterations (or after loading the weights, which cannot be
        # interrupted). Wait for it: a thread left inside torch when the interpreter exits aborts it.
        # (a cluster's dispatcher also kills its workers and leaves the cluster, a local one stopping)
        worker.join(timeout=config.shutdown_grace + 10.0 + (config.cluster.cancel_timeout if config.cluster else 0))
        if front is not None:
            front.stop()  # after the router's shutdown: the peers' last replies (cancelled) go out first
        sock.close(linger=1000)
        wake.close()
        if curve is not None:
            curve.close()
        stuck = worker.is_alive()
        if not stuck:
            ctx.term()
        lock.release()  # after the listener is closed: the next daemon may bind the path now
        log.info("daemon stopped after %d job(s) (shutdown took %.2fs)", router.jobs_done,
                 time.monotonic() - started)
        if stuck:
            log.warning("the worker is still busy; exiting without waiting for it")
            if exit_if_stuck:
                logging.shutdown()
                os._exit(code)
    return code


def _listen(ctx: zmq.Context, config: ServerConfig) -> tuple[zmq.Socket, CurveServer | None, IpcLock,
                                                            FrontDoor | None]:
    """The bound ROUTER, and with the daemon's own front (``front.py``) the front's listener before it:
    then the ROUTER binds an inproc endpoint only, one message deep per peer, and CURVE is the front's."""
    if not config.own_front:
        return (*bind_router(ctx, config.bind, RouterSettings(config.limits.max_message_bytes, config.send_hwm),
                             config.security.curve_dir), None)
    limits = config.limits
    keys = load_curve_keys(config.security.curve_dir) if config.security.curve_dir is not None else None
    backend = f"inproc://neural-style-front-{id(ctx):x}"
    front = FrontDoor(ctx, FrontSettings(
        config.bind, backend, MessageBounds(limits.max_request_frames, limits.max_message_bytes),
        max_frame_bytes(limits.max_message_bytes), limits.max_connections, float(limits.handshake_timeout), keys,
        idle_timeout=float(limits.idle_timeout)))
    try:
        sock, curve, lock = bind_router(ctx, backend, RouterSettings(limits.max_message_bytes, config.send_hwm,
                                                                     receive_hwm=1), None)
    except BaseException:
        front.listener.close()
        raise
    return sock, curve, lock, front


def _job_runner(config: ServerConfig, ctx: zmq.Context, wake_endpoint: str) -> JobRunner:
    """The local worker thread, or (``--ray``) the cluster's dispatcher, with the queue it takes from:
    ``max_queue`` waiting jobs plus one per slot about to be taken."""
    if config.cluster is None:
        jobs = JobQueue(config.limits.max_queue + 1)
        cache = StyleTargetCache(config.cache_entries, config.cache_bytes)
        return Worker(ctx, wake_endpoint, jobs, config.model, cache, config.limits.max_pixels)
    from neural_style.daemon.cluster.actor import WorkerSpec
    from neural_style.daemon.cluster.dispatcher import ClusterDispatcher

    spec = WorkerSpec(config.model, config.limits.max_pixels, config.cache_entries, config.cache_bytes,
                      threads=config.cluster.worker_threads)
    return ClusterDispatcher(ctx, wake_endpoint, JobQueue(config.limits.max_queue + config.cluster.workers),
                             config.cluster, spec)
