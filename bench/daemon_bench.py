#!/usr/bin/env python3
"""Benchmark of the warm daemon, printing the baseline beside it from one run on one machine.

1. Warm daemon vs a fresh ``--local`` run: the same stylize request (content + style from
   ../shared/images, random weights unless --weights is given) timed to the first progress
   report and to the result:
     * ``neural-style stylize --local`` in a fresh process (the baseline: what every run costs
       without a daemon: interpreter, torch import, model, style targets, warm-up);
     * the same request sent twice to a daemon that was started and loaded beforehand
       (request 1 fills the style-target cache, request 2 hits it), measured from a client in
       this process;
     * ``neural-style stylize`` (through the daemon) as a fresh process: what a user at a shell
       sees, client start-up included.
2. Protocol overhead of a 4096×4096 RGBA image (64 MiB raw) on loopback TCP:
     * plain pyzmq echo of one 64 MiB frame (ROUTER echoes to DEALER): the transport floor;
     * protocol framing alone (encode + strict decode of the stylize message, in-process);
     * the daemon: a 4096² RGBA stylize with 1 iteration at size 16 minus the same request with a
       16×16 content: what the big image adds (transfer, checks, raw → float tensor, downscale);
     * converting a 4096² RGBA float tensor to raw bytes and back (what a 4096² result costs the
       daemon to send, since results come back at the working size).

Usage: python bench/daemon_bench.py [--size 128] [--iterations 20] [--weights random] [--repeat 3]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
import zmq

ROOT = Path(__file__).resolve().parents[1]
IMAGES = ROOT.parent / "shared" / "images"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def machine() -> str:
    model = platform.processor() or "unknown CPU"
    try:
        for line in subprocess.run(["lscpu"], capture_output=True, text=True).stdout.splitlines():
            if line.startswith("Model name:"):
                model = line.split(":", 1)[1].strip()
    except OSError:
        pass
    import torch

    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "no GPU"
    return f"{model}, {os.cpu_count()} cores, {gpu}, torch {torch.__version__}, libzmq {zmq.zmq_version()}"


def timed_cli(command: list[str]) -> tuple[float, float]:
    """(seconds to the first progress line on stderr, seconds to exit) of a fresh process."""
    started = time.perf_counter()
    first = None
    proc = subprocess.Popen(command, stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True)
    assert proc.stderr is not None
    lines = []
    for line in proc.stderr:
        lines.append(line)
        if first is None and "iteration" in line:
            first = time.perf_counter() - started
    code = proc.wait()
    total = time.perf_counter() - started
    if code != 0:
        raise RuntimeError(f"{' '.join(command)} failed ({code}):\n{''.join(lines)}")
    return (first if first is not None else float("nan")), total


def timed_request(client, content, styles, params) -> tuple[float, float, int]:
    """(seconds to the first progress, seconds to the result, style cache hits) through the client."""
    from neural_style.protocol import Progress, Result

    started = time.perf_counter()
    first = None
    for event in client.stylize(content, styles, params):
        if isinstance(event, Progress) and first is None:
            first = time.perf_counter() - started
        if isinstance(event, Result):
            return (first if first is not None else float("nan")), time.perf_counter() - started, event.style_cache_hits
    raise RuntimeError("no result")


def start_daemon(endpoint: str, weights: str, log_path: Path) -> subprocess.Popen:
    from neural_style.protocol import Client, DaemonUnavailable

    log = open(log_path, "wb")
    proc = subprocess.Popen([sys.executable, "-m", "neural_style.daemon.cli", "serve", "--bind", endpoint,
                             "--weights", weights, "--device", "cpu" if not has_cuda() else "auto"],
                            stdout=log, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        try:
            with Client(endpoint, timeout=1.0) as client:
                if client.ping().weights_loaded:
                    return proc
        except DaemonUnavailable:
            pass
        if proc.poll() is not None:
            raise RuntimeError(f"daemon exited: {log_path.read_text()}")
        time.sleep(0.2)
    raise RuntimeError("daemon did not start")


def has_cuda() -> bool:
    import torch

    return torch.cuda.is_available()


def warm_vs_local(args: argparse.Namespace, endpoint: str, tmp: Path) -> dict:
    from neural_style.protocol import Client, ImageData

    content_path, style_path = IMAGES / "tubingen.jpg", IMAGES / "starry_night.jpg"
    common = ["--weights", args.weights, "--size", str(args.size), "--iterations", str(args.iterations),
              "--progress-every", str(args.progress_every)]
    cli = [sys.executable, "-m", "neural_style.daemon.cli", "stylize", str(content_path), str(style_path)]
    out = {}
    local = [timed_cli([*cli, "-o", str(tmp / "local.png"), "--local", *common])
             for _ in range(args.repeat)]
    out["local_fresh_process"] = local

    content = ImageData.jpeg(content_path.read_bytes())
    styles = [ImageData.jpeg(style_path.read_bytes())]
    params = {"size": args.size, "iterations": args.iterations, "progress_every": args.progress_every,
              "preview": True}
    with Client(endpoint, timeout=60) as client:
        first = timed_request(client, content, styles, params)   # warm model, cold style cache
        second = timed_request(client, content, styles, params)  # same request again: cache hit
        more = [timed_request(client, content, styles, params) for _ in range(args.repeat - 1)]
    out["daemon_request_1"] = [first]
    out["daemon_request_2"] = [second, *more]
    remote = [timed_cli([*cli, "-o", str(tmp / "remote.png"), "--endpoint", endpoint, "--no-autostart", *common])
              for _ in range(args.repeat)]
    out["cli_through_daemon_fresh_process"] = remote
    return out


def zmq_echo(payload: bytes, repeat: int) -> list[float]:
    """Round trips of one frame through a plain ROUTER that echoes it (copy=False both ways)."""
    ctx = zmq.Context()
    router = ctx.socket(zmq.ROUTER)
    port = router.bind_to_random_port("tcp://127.0.0.1")
    stop = threading.Event()

    def echo() -> None:
        poller = zmq.Poller()
        poller.register(router, zmq.POLLIN)
        while not stop.is_set():
            if poller.poll(100):
                frames = router.recv_multipart(copy=False)
                router.send_multipart(frames, copy=False)

    thread = threading.Thread(target=echo, daemon=True)
    thread.start()
    dealer = ctx.socket(zmq.DEALER)
    dealer.connect(f"tcp://127.0.0.1:{port}")
    times = []
    for _ in range(repeat + 1):
        started = time.perf_counter()
        dealer.send(payload, copy=False)
        dealer.recv(copy=False)
        times.append(time.perf_counter() - started)
    stop.set()
    thread.join()
    dealer.close(0)
    router.close(0)
    ctx.term()
    return times[1:]  # the first includes connection set-up


def big_image(args: argparse.Namespace, endpoint: str) -> dict:
    import torch

    from neural_style.daemon.image_files import tensor_from_bytes, tensor_to_bytes
    from neural_style.protocol import Client, ImageData
    from neural_style.protocol.messages import Stylize, decode_request

    side = 4096
    raw = np.random.default_rng(0).integers(0, 256, (side, side, 4), dtype=np.uint8).tobytes()
    tiny = np.random.default_rng(1).integers(0, 256, (16, 16, 4), dtype=np.uint8).tobytes()
    style = ImageData.raw(np.full((16, 16, 3), 90, np.uint8).tobytes(), 16, 16, 3)
    out: dict = {"image_bytes": len(raw)}
    out["zmq_echo_round_trip"] = zmq_echo(raw, args.repeat)

    framing = []
    for _ in range(args.repeat):
        started = time.perf_counter()
        frames = Stylize("x", ImageData.raw(raw, side, side, 4), [style], {"iterations": 1}).to_frames()
        decode_request(frames)
        framing.append(time.perf_counter() - started)
    out["protocol_encode_decode"] = framing

    params = {"iterations": 1, "size": 16, "content_layers": ["relu1_1"], "style_layers": ["relu1_1"]}
    big, small = [], []
    with Client(endpoint, timeout=60) as client:
        for _ in range(args.repeat + 1):
            started = time.perf_counter()
            client.stylize_blocking(ImageData.raw(raw, side, side, 4), [style], params)
            big.append(time.perf_counter() - started)
            started = time.perf_counter()
            client.stylize_blocking(ImageData.raw(tiny, 16, 16, 4), [style], params)
            small.append(time.perf_counter() - started)
    out["daemon_4096_rgba_job"] = big[1:]
    out["daemon_16_rgba_job"] = small[1:]

    to_tensor, to_raw = [], []
    for _ in range(args.repeat):
        started = time.perf_counter()
        tensor = tensor_from_bytes(raw, side, side, 4)
        to_tensor.append(time.perf_counter() - started)
        started = time.perf_counter()
        tensor_to_bytes(tensor)
        to_raw.append(time.perf_counter() - started)
    out["raw_to_tensor_4096_rgba"] = to_tensor
    out["tensor_to_raw_4096_rgba"] = to_raw
    del torch
    return out


def med(values) -> float:
    return statistics.median(values)


def load() -> str:
    try:
        return " ".join(f"{x:.2f}" for x in os.getloadavg())
    except OSError:
        return "n/a"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--size", type=int, default=128)
    parser.add_argument("--iterations", type=int, default=20)
    parser.add_argument("--progress-every", type=int, default=5)
    parser.add_argument("--weights", default="random")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--part", choices=("all", "warm", "big"), default="all", help="run one half only")
    parser.add_argument("--json", type=Path, help="also write the raw timings here")
    args = parser.parse_args()

    print(f"machine: {machine()}; load average at start {load()}")
    print(f"request: tubingen.jpg + starry_night.jpg, size {args.size}, {args.iterations} iterations, "
          f"progress every {args.progress_every}, weights {args.weights}; median of {args.repeat}")
    endpoint = f"tcp://127.0.0.1:{free_port()}"
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        daemon = start_daemon(endpoint, args.weights, tmp / "daemon.log")
        try:
            warm = warm_vs_local(args, endpoint, tmp) if args.part in ("all", "warm") else {}
            big = big_image(args, endpoint) if args.part in ("all", "big") else {}
        finally:
            daemon.terminate()
            daemon.wait(30)

    print(f"load average at the end {load()} (other work on the machine shows up as noise: compare the minima)")
    if warm:
        report_warm(warm)
    if big:
        report_big(big)
    if args.json:
        args.json.write_text(json.dumps({"machine": machine(), "warm": warm, "big": big}, indent=1))
    return 0


def report_warm(warm: dict) -> None:
    print("\n1. time to first progress / to result (seconds): median [min] of the runs")
    for name, runs in warm.items():
        firsts, results = [r[0] for r in runs], [r[1] for r in runs]
        print(f"   {name:36s} first {med(firsts):6.2f} [{min(firsts):6.2f}]   "
              f"result {med(results):6.2f} [{min(results):6.2f}]")
    base = min(r[1] for r in warm["local_fresh_process"])
    hot = min(r[1] for r in warm["daemon_request_2"])
    print(f"   repeated request to the warm daemon vs a fresh --local run, time to result (minima): "
          f"{base / hot:.1f}x faster")


def report_big(big: dict) -> None:
    mib = big["image_bytes"] / 2**20
    print(f"\n2. a 4096x4096 RGBA image ({mib:.0f} MiB raw) on loopback TCP (seconds, median)")
    echo = med(big["zmq_echo_round_trip"])
    print(f"   plain pyzmq echo round trip (64 MiB up + 64 MiB down)  {echo:7.3f}  ({2 * mib / echo:.0f} MiB/s)")
    print(f"   protocol encode + strict decode of the request        {med(big['protocol_encode_decode']):7.4f}")
    b, s = med(big["daemon_4096_rgba_job"]), med(big["daemon_16_rgba_job"])
    print(f"   daemon job with 4096^2 content / with 16^2 content    {b:7.3f} / {s:.3f}  -> extra {b - s:.3f}")
    print(f"   raw -> float tensor, 4096^2 RGBA (in-process)          {med(big['raw_to_tensor_4096_rgba']):7.3f}")
    print(f"   float tensor -> raw, 4096^2 RGBA (what a result costs)  {med(big['tensor_to_raw_4096_rgba']):7.3f}")


if __name__ == "__main__":
    sys.exit(main())
