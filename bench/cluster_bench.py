#!/usr/bin/env python3
"""The cluster front's cost against the single-device daemon, and its throughput, from one run.

1. Overhead: the same stylize request (content + style from ../shared/images, random weights,
   previews on) sent to
     * the single-device daemon (``neural-style serve``, one worker thread): the baseline;
     * ``neural-style serve --ray local --workers 1``: the same front, the job on one Ray actor;
   timed from a client in this process to ``accepted``, to the first preview and to the result,
   alternating the two daemons request by request so that load from other work hits both alike.
   Also the bytes of one preview (what crosses the object store and then ZeroMQ).
2. Throughput: ``--jobs`` of those requests submitted at once from as many clients, to the
   single-device daemon and to ``--ray local`` with 1 and with 2 workers (``--worker-threads`` CPU
   threads each; the single daemon gets as many threads in all as the two workers): jobs per minute.

Usage: python bench/cluster_bench.py [--size 96] [--iterations 30] [--repeat 3] [--jobs 4] [--threads 1]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from daemon_bench import IMAGES, free_port, load, machine


def start(tmp: Path, name: str, *extra: str, threads: int) -> tuple[subprocess.Popen, str]:
    """A daemon (``extra``: its cluster options), returned once its model (or pool) is ready."""
    from neural_style.protocol import Client, DaemonUnavailable

    endpoint = f"tcp://127.0.0.1:{free_port()}"
    log = open(tmp / f"{name}.log", "wb")
    env = dict(os.environ, OMP_NUM_THREADS=str(threads))
    proc = subprocess.Popen([sys.executable, "-m", "neural_style.daemon.cli", "serve", "--bind", endpoint,
                             "--weights", "random", "--device", "cpu", "--threads", str(threads), *extra],
                            stdout=log, stderr=subprocess.STDOUT, env=env)
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline:
        try:
            with Client(endpoint, timeout=1.0) as client:
                pong = client.ping()
                workers = int(dict(zip(extra[::2], extra[1::2])).get("--workers", "1"))
                if pong.weights_loaded and (not extra or pong.device.startswith(f"ray: {workers} ")):
                    return proc, endpoint
        except DaemonUnavailable:
            pass
        if proc.poll() is not None:
            raise RuntimeError(f"{name} exited: {(tmp / f'{name}.log').read_text()}")
        time.sleep(0.3)
    proc.terminate()
    raise RuntimeError(f"{name} did not start")


def stop(proc: subprocess.Popen) -> None:
    proc.terminate()
    proc.wait(90)


def images() -> tuple:
    from neural_style.protocol import ImageData

    return (ImageData.jpeg((IMAGES / "tubingen.jpg").read_bytes()),
            [ImageData.jpeg((IMAGES / "starry_night.jpg").read_bytes())])


def timed(endpoint: str, content, styles, params) -> tuple[float, float, float, int]:
    """(s to accepted, s to the first preview, s to the result, bytes of one preview)."""
    from neural_style.protocol import Accepted, Client, Progress, Result

    with Client(endpoint, timeout=30.0) as client:
        started = time.perf_counter()
        accepted = first = float("nan")
        preview_bytes = 0
        for event in client.stylize(content, styles, params):
            now = time.perf_counter() - started
            if isinstance(event, Accepted):
                accepted = now
            elif isinstance(event, Progress) and event.image is not None and first != first:
                first, preview_bytes = now, memoryview(event.image.data).nbytes
            elif isinstance(event, Result):
                return accepted, first, now, preview_bytes
    raise RuntimeError("no result")


def throughput(endpoint: str, content, styles, params, jobs: int) -> float:
    """Jobs per minute for ``jobs`` requests submitted at once from as many clients."""
    errors: list[BaseException] = []

    def one() -> None:
        try:
            timed(endpoint, content, styles, params)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=one) for _ in range(jobs)]
    started = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if errors:
        raise errors[0]
    return jobs / (time.perf_counter() - started) * 60


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=96)
    parser.add_argument("--iterations", type=int, default=30)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--jobs", type=int, default=4)
    parser.add_argument("--threads", type=int, default=1, help="CPU threads per worker")
    args = parser.parse_args()
    params = {"size": args.size, "iterations": args.iterations, "progress_every": 5, "preview": True}
    content, styles = images()
    print(f"machine: {machine()}; load before: {load()}")
    print(f"job: {args.iterations} iterations at size {args.size}, previews every 5, random weights")
    with tempfile.TemporaryDirectory() as name:
        tmp = Path(name)
        single, single_ep = start(tmp, "single", threads=args.threads)
        one, one_ep = start(tmp, "ray1", "--ray", "local", "--workers", "1", "--worker-threads", str(args.threads),
                            threads=args.threads)
        try:
            rows: dict[str, list[tuple[float, float, float, int]]] = {"single": [], "ray1": []}
            for ep in (single_ep, one_ep):  # one untimed request each: the style targets cached alike
                timed(ep, content, styles, params)
            for _ in range(args.repeat):
                rows["single"].append(timed(single_ep, content, styles, params))
                rows["ray1"].append(timed(one_ep, content, styles, params))
            print("\n1. overhead (median of", args.repeat, "alternating requests, style targets cached)")
            print(f"{'':22}{'accepted':>10}{'1st preview':>13}{'result':>10}{'preview B':>11}")
            med = {k: [statistics.median(r[i] for r in v) for i in range(3)] for k, v in rows.items()}
            for key, label in (("single", "single-device daemon"), ("ray1", "--ray local, 1 worker")):
                print(f"{label:22}{med[key][0]:>10.3f}{med[key][1]:>13.3f}{med[key][2]:>10.3f}"
                      f"{rows[key][0][3]:>11}")
            print(f"{'cluster − single':22}{med['ray1'][0] - med['single'][0]:>+10.3f}"
                  f"{med['ray1'][1] - med['single'][1]:>+13.3f}{med['ray1'][2] - med['single'][2]:>+10.3f}"
                  f"   ({(med['ray1'][2] / med['single'][2] - 1) * 100:+.1f} % to the result)")
            print(f"\n2. throughput: {args.jobs} jobs submitted at once")
            single_rate = throughput(single_ep, content, styles, params, args.jobs)
            one_rate = throughput(one_ep, content, styles, params, args.jobs)
        finally:
            stop(one)
            stop(single)
        two, two_ep = start(tmp, "ray2", "--ray", "local", "--workers", "2", "--worker-threads", str(args.threads),
                            threads=args.threads)
        try:
            timed(two_ep, content, styles, params)
            two_rate = throughput(two_ep, content, styles, params, args.jobs)
        finally:
            stop(two)
    print(f"single-device daemon ({args.threads} thread(s)): {single_rate:6.1f} jobs/min")
    print(f"--ray local, 1 worker:               {one_rate:6.1f} jobs/min")
    print(f"--ray local, 2 workers:              {two_rate:6.1f} jobs/min ({two_rate / one_rate:.2f}× one worker)")
    print(f"load after: {load()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
