"""Joining (or starting) the Ray cluster, bounded in time, with Ray's privacy and security defaults.

Why its own module: it is the only place that imports Ray at the top of a function, sets the
environment Ray reads at import (usage statistics off), and knows what each ``--ray`` ADDRESS
means: ``local`` starts a cluster inside this process that ends with it (``ray.shutdown``);
anything else (``auto``, ``HOST:PORT``, ``ray://HOST:10001``) is what ``ray.init(address=…)`` takes.
The dashboard stays off; Ray 2.60's token authentication is left as Ray configures it.
"""

from __future__ import annotations

import logging
import os
import threading
from dataclasses import dataclass
from typing import Any

__all__ = ["LOCAL", "ClusterSettings", "ClusterUnavailable", "ray_available", "import_ray", "connect",
           "disconnect"]

log = logging.getLogger("neural_style.daemon.cluster")

LOCAL = "local"
GCS_RECONNECT_S = 86400  # a day: Ray's driver-side GCS reconnection deadline (in ms inside Ray: keep it within 32 bits)
_pending: threading.Thread | None = None  # a join still waiting on an unreachable address


class ClusterUnavailable(Exception):
    """The cluster cannot be reached (or Ray is not installed): jobs are refused with ``cluster_unavailable``."""


@dataclass(frozen=True)
class ClusterSettings:
    """The ``--ray ADDRESS``, ``--workers N`` and ``--worker-threads N`` options."""

    address: str
    workers: int = 2
    worker_threads: int = 1  # CPU threads per worker on a node without GPUs
    connect_timeout: float = 30.0  # seconds ray.init may take before the cluster counts as unreachable
    ready_timeout: float = 120.0  # seconds a new worker may take to load its model
    poll_timeout: float = 30.0  # seconds a worker's poll may take before the worker counts as lost
    cancel_timeout: float = 10.0  # seconds a cancelled job may take to stop before its worker is killed

    @property
    def local(self) -> bool:
        return self.address == LOCAL


def ray_available() -> bool:
    try:
        import_ray()
    except ClusterUnavailable:
        return False
    return True


def import_ray() -> Any:
    """``ray``, imported with usage statistics off; ClusterUnavailable when it is not installed."""
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    # Ray's C++ handler would re-raise SIGTERM and end the front before it cancels its jobs and
    # stops its workers (``serve``'s own handlers do that)
    os.environ.setdefault("RAY_DISABLE_FAILURE_SIGNAL_HANDLER", "1")
    # Ray's driver ends its whole process 60 s after it loses the cluster's GCS (a head node lost);
    # the front must outlive that and keep answering ``ping`` (its own waits are bounded instead)
    os.environ.setdefault("RAY_gcs_rpc_server_reconnect_timeout_s", str(GCS_RECONNECT_S))
    try:
        import ray
    except ImportError as exc:
        raise ClusterUnavailable("Ray is not installed: pip install 'neural-style-gimp[cluster]' "
                                 "(or python3 install.py --cluster)") from exc
    return ray


def connect(settings: ClusterSettings) -> Any:
    """Join or start the cluster within ``settings.connect_timeout`` s; returns the ``ray`` module."""
    ray = import_ray()
    kwargs: dict[str, Any] = {"include_dashboard": False, "log_to_driver": False,
                              "ignore_reinit_error": True, "configure_logging": False}
    if settings.local:
        # the cluster lives in this process: its CPUs are the workers' threads, nothing more
        kwargs["address"] = "local"  # a new cluster, even where `ray start` left one (or RAY_ADDRESS names one)
        kwargs["num_cpus"] = settings.workers * settings.worker_threads
        kwargs["num_gpus"] = None  # Ray counts this machine's GPUs itself
    else:
        kwargs["address"] = settings.address
        kwargs.pop("include_dashboard")  # a dashboard belongs to the head, not to a driver joining it
    outcome: dict[str, Any] = {}

    def init() -> None:
        try:
            outcome["context"] = ray.init(**kwargs)
        except Exception as exc:  # ConnectionError, a wrong address, a token mismatch…
            outcome["error"] = exc

    if settings.local:
        # in the calling (the dispatcher's) thread: the processes of a local cluster die with the
        # thread that started them (Linux's parent-death signal is per thread), and no network is
        # waited on
        init()
        thread = None
    else:
        global _pending
        if _pending is None or not _pending.is_alive():  # never two joins at once: wait for the last one
            _pending = threading.Thread(target=init, name="neural-style-ray-init", daemon=True)
            _pending.start()
        thread = _pending
        thread.join(settings.connect_timeout)
    if thread is not None and thread.is_alive():
        raise ClusterUnavailable(f"the Ray cluster at {settings.address!r} did not answer within "
                                 f"{settings.connect_timeout:.0f}s")
    if not outcome:  # an earlier join's thread answered now: ask again on the next round
        raise ClusterUnavailable(f"the Ray cluster at {settings.address!r} did not answer yet")
    if "error" in outcome:
        error = outcome["error"]
        raise ClusterUnavailable(f"cannot join the Ray cluster at {settings.address!r}: "
                                 f"{type(error).__name__}: {error}")
    resources = ray.cluster_resources()
    log.info("joined the Ray cluster at %s: %s", settings.address,
             ", ".join(f"{k} {v:g}" for k, v in sorted(resources.items()) if k in ("CPU", "GPU", "memory")))
    return ray


def disconnect(ray: Any) -> None:
    """Leave the cluster; a local one started by ``connect`` stops with it."""
    try:
        ray.shutdown()
    except Exception:
        log.warning("ray.shutdown failed", exc_info=True)
