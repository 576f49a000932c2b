#!/usr/bin/env python3
"""What reading a region mask at admission costs, and what the socket loop pays for it (issue 17).

Admission judges every mask before ``accepted`` (to refuse an all-black one): a raw grey8 one in the
socket loop, a PNG/JPEG one on the admission pool's threads (``daemon/server/admission_pool.py``), so
that the loop keeps answering every other client meanwhile.  Printed:

1. Per size, the cost of judging one mask: the baseline (``decode.probe`` of a PNG, the header only: what
   the loop does with a picture and with a PNG mask) beside reading a mask's levels and peak
   (``mask_images.mask_levels`` + ``mask_frame``) for a raw grey8 frame (what the loop does with one), a
   PNG grey8 and a PNG grey16 (what the pool does), each the median of ``--repeat`` runs. A mask is a soft
   two-region split with noise (a PNG of a real selection compresses better, so this errs on the dear side).
2. Per size, what the pool does with a PNG picture: ``decode.verify_png`` (its chunks and CRCs) beside
   decoding it whole as the worker does (``decode.decode_request_image``), the baseline.
3. ``--loop``: a real daemon (random weights, tcp, its own front).  A second client's ping round trips,
   idle (the baseline) and while a request with a large PNG mask is judged (a noisy one and an all-black
   one, so that it is refused), beside the time from that request's send to its refusal: how long a loop
   that inflated the mask itself would have held every client.

Usage: python bench/mask_admission_bench.py [--megapixels 1,6,24] [--repeat 5] [--loop] [--loop-megapixels 12]
"""
from __future__ import annotations

import argparse
import io
import statistics
import sys
import time
from pathlib import Path

import numpy as np
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parent))
from daemon_bench import machine

from neural_style.daemon.mask_images import mask_frame, mask_levels
from neural_style.daemon.server.decode import decode_request_image, probe, verify_png
from neural_style.protocol.image_data import ImageData


def _mask(width: int, height: int, dtype: type) -> np.ndarray:
    top = np.iinfo(dtype).max
    ramp = np.clip((np.arange(width) - width / 2) / (width / 20) + 0.5, 0, 1)
    noise = np.random.default_rng(0).normal(0, 0.02, (height, width))
    return (np.clip(ramp[None, :] + noise, 0, 1) * top).astype(dtype)


def _png(levels: np.ndarray) -> bytes:
    out = io.BytesIO()
    Image.fromarray(levels).save(out, format="PNG")
    return out.getvalue()


def _median(run, repeat: int) -> float:
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        run()
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def _size(megapixels: float) -> tuple[int, int]:
    width = int((megapixels * 1e6 * 3 / 2) ** 0.5)
    return width, int(width * 2 / 3)


def _picture(width: int, height: int) -> np.ndarray:
    """An RGB photo stand-in: the mask's ramp in every channel, with noise of its own in each."""
    return np.stack([_mask(width, height, np.uint8)] * 3, axis=-1)


def masks(megapixels: list[float], repeat: int) -> None:
    print(f"{'size':>12} {'probe (baseline)':>17} {'raw grey8':>10} {'PNG grey8':>10} {'PNG grey16':>11}  PNG bytes")
    for width, height in map(_size, megapixels):
        limit = width * height
        eight, sixteen = _mask(width, height, np.uint8), _mask(width, height, np.uint16)
        raw = ImageData.raw(eight.tobytes(), width, height, 1)
        png8, png16 = ImageData.png(_png(eight)), ImageData.png(_png(sixteen))
        times = [_median(lambda png=png8, bound=limit: probe(png.data, "png", bound), repeat)]
        times += [_median(lambda image=image, bound=limit: mask_frame(mask_levels(image, bound)), repeat)
                  for image in (raw, png8, png16)]
        print(f"{width:>5}x{height:<6} " + " ".join(f"{t * 1000:>{w}.1f}" for t, w in zip(times, (14, 8, 8, 9)))
              + f" ms  {len(png8.data) / 2**20:.1f}/{len(png16.data) / 2**20:.1f} MiB")


def pictures(megapixels: list[float], repeat: int) -> None:
    print(f"{'size':>12} {'decode (baseline)':>18} {'verify_png':>11}  PNG bytes")
    for width, height in map(_size, megapixels):
        png = ImageData.png(_png(_picture(width, height)))
        times = [_median(lambda png=png, bound=width * height: decode_request_image(png, bound), repeat),
                 _median(lambda png=png: verify_png(png.data), repeat)]
        print(f"{width:>5}x{height:<6} {times[0] * 1000:>15.1f} ms {times[1] * 1000:>8.1f} ms  "
              f"{len(png.data) / 2**20:.1f} MiB")


def loop(megapixels: float, repeat: int) -> None:
    import tempfile
    import threading

    import msgpack
    import zmq
    from daemon_bench import free_port, start_daemon

    width, height = _size(megapixels)
    noisy, black = _png(_mask(width, height, np.uint8)), _png(np.zeros((height, width), np.uint8))
    content = _png(np.full((height, width, 3), 128, np.uint8))
    style = np.random.default_rng(1).integers(0, 256, (24, 24, 3), dtype=np.uint8).tobytes()
    endpoint = f"tcp://127.0.0.1:{free_port()}"
    with tempfile.TemporaryDirectory() as tmp:
        daemon = start_daemon(endpoint, "random", Path(tmp) / "daemon.log")
        ctx = zmq.Context()
        try:
            def dealer() -> zmq.Socket:
                sock = ctx.socket(zmq.DEALER)
                sock.setsockopt(zmq.LINGER, 0)
                sock.connect(endpoint)
                return sock

            pinger, sender = dealer(), dealer()

            def pings(stop: threading.Event, out: list[float]) -> None:
                n = 0
                while not stop.is_set():
                    n += 1
                    started = time.perf_counter()
                    pinger.send(msgpack.packb({"v": 1, "type": "ping", "id": f"p{n}"}))
                    pinger.recv_multipart()
                    out.append(time.perf_counter() - started)
                    time.sleep(0.02)

            def during(seconds: float | None) -> tuple[list[float], list[float]]:
                """Ping round trips for ``seconds`` idle, or (None) while ``repeat`` requests are judged."""
                stop, out, judged = threading.Event(), [], []
                thread = threading.Thread(target=pings, args=(stop, out))
                thread.start()
                if seconds is not None:
                    time.sleep(seconds)
                for i in range(repeat if seconds is None else 0):
                    header = {"v": 1, "type": "stylize", "id": f"m{i}", "content": {"frame": 1, "encoding": "png"},
                              "styles": [{"frame": n, "encoding": "raw", "width": 24, "height": 24, "channels": 3}
                                         for n in (2, 3)],
                              "style_masks": [{"frame": 4, "encoding": "png"}, {"frame": 5, "encoding": "png"}],
                              "params": {"iterations": 1, "size": 32}}
                    started = time.perf_counter()
                    sender.send_multipart([msgpack.packb(header), content, style, style, noisy, black])
                    reply = msgpack.unpackb(sender.recv_multipart()[0])
                    assert reply["type"] == "error" and reply.get("field") == "style_masks[1]", reply
                    judged.append(time.perf_counter() - started)
                stop.set()
                thread.join()
                return out, judged

            idle, _ = during(2.0)
            busy, judged = during(None)
        finally:
            daemon.terminate()
            daemon.wait(30)
            ctx.destroy(0)
    print(f"{width}x{height} PNG mask ({len(noisy) / 2**20:.1f} MiB) beside an all-black one, {repeat} requests:")
    print(f"  another client's ping, idle (baseline):   median {statistics.median(idle) * 1000:.1f} ms, "
          f"worst {max(idle) * 1000:.1f} ms ({len(idle)} pings)")
    print(f"  the same, while the masks are judged:     median {statistics.median(busy) * 1000:.1f} ms, "
          f"worst {max(busy) * 1000:.1f} ms ({len(busy)} pings)")
    print(f"  the request, sent to refused (before accepted): median {statistics.median(judged):.2f} s, "
          f"worst {max(judged):.2f} s (what an inflating loop would have held every client for)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--megapixels", default="1,6,24")
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--loop", action="store_true", help="also measure a real daemon's loop (part 3)")
    parser.add_argument("--loop-megapixels", type=float, default=12.0)
    args = parser.parse_args()
    sizes = [float(m) for m in args.megapixels.split(",")]
    print(machine())
    masks(sizes, args.repeat)
    pictures(sizes, args.repeat)
    if args.loop:
        loop(args.loop_megapixels, args.repeat)


if __name__ == "__main__":
    main()
