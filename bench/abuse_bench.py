#!/usr/bin/env python3
"""What one abusive client costs the daemon, and everyone else: issue 10's numbers, before and after.

Each scenario runs against a fresh ``neural-style serve --weights random --device cpu`` of this
checkout and, with ``--baseline-ref REF`` (e.g. ``main``), of that git revision too, alternating the
two within each repetition.  While the bad client does its worst, a well-behaved client pings every
20 ms; the daemon's resident memory is sampled from /proc every 10 ms.

1. ``frames``: one ping of 1,000,000 empty frames (a ~2 MB message).
2. ``big-frames``: 80 frames of 1.5 MiB with ``--max-message-mb 1`` (under the per-frame ceiling of
   this checkout, so libzmq buffers them all), 1,600 frames of 64,000 B (each under any chunk size a
   chunked transport would allow), four peers doing that at once, and 80 frames of 2.5 MiB (over
   the ceiling).
3. ``no-reader``: 6 s of pings sent as fast as possible by a client that never reads.

Printed per scenario and daemon: the worst and median ping latency of the good client (a ping
unanswered after 10 s counts as lost), the daemon's growth in resident memory (peak during the
scenario minus before it, and what it still holds 1 s after the bad client is done), what the bad
client got back, and whether the daemon survived.

``--libzmq``: what libzmq itself holds, beneath any daemon (issue 16's design question). A bare
ROUTER process with a given ``MAXMSGSIZE`` and ``RCVHWM`` that never reads, and a sender process
that sends the same bytes as one multipart message or as single-frame messages; the holder's
resident growth once the sender is done.  Each case is printed beside its single-frame twin.  Then
the ZMTP flags of one multipart message's frames on the wire, without CURVE and with it (what a relay
in front of the socket could see of where a message ends).
Usage: python bench/abuse_bench.py [--baseline-ref main] [--repeat 3] [--libzmq]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tarfile
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path

import msgpack
import zmq

sys.path.insert(0, str(Path(__file__).resolve().parent))
from daemon_bench import free_port, machine

ROOT = Path(__file__).resolve().parents[1]
MiB = 1 << 20
CREDENTIALS: list[str] = []  # the CURVE scenarios' allowed client (curve_keys): the good one and the bad one


def baseline_tree(ref: str, where: Path) -> Path:
    """``git archive REF`` laid out as an importable ``neural_style`` namespace (PYTHONPATH wins over
    this checkout's editable install)."""
    archive = where / "baseline.tar"
    subprocess.run(["git", "-C", str(ROOT), "archive", "-o", str(archive), ref], check=True)
    src = where / "src"
    with tarfile.open(archive) as tar:
        tar.extractall(src, filter="data")
    package = where / "path" / "neural_style"
    package.mkdir(parents=True)
    for name in ("daemon", "protocol"):
        (package / name).symlink_to(src / name)
    return where / "path"


class Daemon:
    """``python -m neural_style.daemon.server --weights random --device cpu EXTRA``, up and loaded."""

    def __init__(self, label: str, python_path: Path | None, extra: list[str], tmp: Path,
                 env: dict[str, str] | None = None) -> None:
        self.label = label
        self.endpoint = f"tcp://127.0.0.1:{free_port()}"
        self.curve = CREDENTIALS if "--curve-dir" in extra else None
        env = dict(os.environ, **(env if env is not None else {"OMP_NUM_THREADS": "1"}))
        if python_path is not None:
            env["PYTHONPATH"] = str(python_path)
        self.log = open(tmp / f"{label}-{time.monotonic_ns()}.log", "wb")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "neural_style.daemon.server", "--bind", self.endpoint, "--weights", "random",
             "--device", "cpu", *extra], stdout=self.log, stderr=subprocess.STDOUT, env=env, cwd=tmp)
        with Raw(self.endpoint, curve=self.curve) as client:
            deadline = time.monotonic() + 120
            while time.monotonic() < deadline:
                client.send({"type": "ping", "id": "up"})
                reply = client.reply(1.0)
                if reply is not None and reply.get("weights_loaded"):
                    return
            raise RuntimeError(f"{label} daemon did not come up")

    def rss(self) -> int:
        with open(f"/proc/{self.process.pid}/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")

    def last_line(self) -> str:
        self.log.flush()
        lines = Path(self.log.name).read_text(errors="replace").strip().splitlines()
        return lines[-1][-100:] if lines else ""

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
        self.process.wait(30)
        self.log.close()


class Raw:
    """A bare DEALER: the project's client would be too polite to misbehave."""

    def __init__(self, endpoint: str, rcvhwm: int | None = None, curve: list[str] | None = None) -> None:
        self.ctx = zmq.Context()
        self.sock = self.ctx.socket(zmq.DEALER)
        self.sock.setsockopt(zmq.LINGER, 0)
        if curve is not None:  # server public, client public, client secret (Z85)
            self.sock.curve_serverkey, self.sock.curve_publickey, self.sock.curve_secretkey = (
                key.encode() for key in curve)
        self.sock.setsockopt(zmq.HEARTBEAT_IVL, 500)  # PINGs keep a non-reader's connection (section 7)
        if rcvhwm is not None:
            self.sock.setsockopt(zmq.RCVHWM, rcvhwm)
        self.sock.connect(endpoint)

    def __enter__(self) -> Raw:
        return self

    def __exit__(self, *exc: object) -> None:
        self.sock.close(0)
        self.ctx.term()

    def send(self, header: dict, *payloads: bytes) -> None:
        self.sock.send_multipart([msgpack.packb({"v": 1, **header}), *payloads], copy=False)

    def reply(self, timeout: float) -> dict | None:
        if not self.sock.poll(int(timeout * 1000)):
            return None
        return msgpack.unpackb(self.sock.recv_multipart()[0])


def measure(daemon: Daemon, attack: Callable[[Daemon], str]) -> dict:
    """Run ``attack`` while a good client pings and the daemon's memory is sampled."""
    stop = threading.Event()
    latencies: list[float] = []
    lost = [0]
    peak = [daemon.rss()]
    before = peak[0]

    def ping() -> None:
        with Raw(daemon.endpoint, curve=daemon.curve) as good:
            n = 0
            while not stop.is_set():
                n += 1
                started = time.perf_counter()
                good.send({"type": "ping", "id": f"g{n}"})
                while True:
                    reply = good.reply(10)
                    if reply is None or reply["id"] == f"g{n}":
                        break
                if reply is None:
                    lost[0] += 1
                    continue
                latencies.append(time.perf_counter() - started)
                time.sleep(0.02)

    def sample() -> None:
        while not stop.is_set() and daemon.process.poll() is None:
            try:
                peak[0] = max(peak[0], daemon.rss())
            except OSError:  # it just exited
                return
            time.sleep(0.01)

    threads = [threading.Thread(target=ping), threading.Thread(target=sample)]
    for t in threads:
        t.start()
    time.sleep(0.5)
    outcome = attack(daemon)
    time.sleep(1.0)
    try:
        kept = daemon.rss() - before  # what the daemon still holds once the bad client is done
    except OSError:
        kept = 0
    stop.set()
    for t in threads:
        t.join()
    code = daemon.process.poll()
    if code is not None:
        outcome += f"; the DAEMON DIED (exit {code}: {daemon.last_line()})"
    return {"worst_ping": max(latencies, default=float("nan")), "lost": lost[0],
            "median_ping": statistics.median(latencies) if latencies else float("nan"),
            "growth_mb": (peak[0] - before) / MiB, "kept_mb": kept / MiB, "outcome": outcome}


def attacker(script: str, *args: str) -> str:
    """Misbehave from another process (its CPU is not the measuring threads' GIL)."""
    done = subprocess.run([sys.executable, "-c", script, *args], capture_output=True, text=True, timeout=300)
    return (done.stdout.strip() or done.stderr.strip().splitlines()[-1])[:90]


def attackers(count: int, script: str, *args: str) -> str:
    """``count`` bad clients at once, each a process of its own; what the first one got."""
    outcomes: list[str] = [""] * count
    threads = [threading.Thread(target=lambda i=i: outcomes.__setitem__(i, attacker(script, *args)))
               for i in range(count)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return f"{count} peers; the first got: {outcomes[0]}"


FRAMES = """
import sys, msgpack, zmq, time
sock = zmq.Context().socket(zmq.DEALER); sock.setsockopt(zmq.LINGER, 0)
if len(sys.argv) > 5:  # CURVE: server public, client public, client secret (Z85)
    sock.curve_serverkey, sock.curve_publickey, sock.curve_secretkey = (a.encode() for a in sys.argv[5:8])
sock.connect(sys.argv[1])
count, size = int(sys.argv[2]), int(sys.argv[3])
frame = b"x" * size
sock.send_multipart([msgpack.packb({"v": 1, "type": "ping", "id": "bad"})] + [frame] * count, copy=size == 0)
if sock.poll(int(sys.argv[4]) * 1000):
    h = msgpack.unpackb(sock.recv_multipart()[0]); print(h["type"], h.get("code", ""), "id=" + h["id"])
else:
    print("no reply (connection dropped)")
"""

NO_READER = """
import sys, msgpack, time, zmq
sock = zmq.Context().socket(zmq.DEALER); sock.setsockopt(zmq.LINGER, 0); sock.setsockopt(zmq.SNDHWM, 0)
sock.setsockopt(zmq.HEARTBEAT_IVL, 500); sock.setsockopt(zmq.RCVHWM, 1); sock.connect(sys.argv[1])
end, n = time.monotonic() + float(sys.argv[2]), 0
while time.monotonic() < end:
    sock.send(msgpack.packb({"v": 1, "type": "ping", "id": f"p{n}"})); n += 1
print(f"{n} pings sent, none read")
"""


def curve_keys(tmp: Path) -> tuple[Path, list[str]]:
    """A key folder (``security init``) and the attacker's arguments: server public, client public, secret."""
    from neural_style.daemon.server.security import generate_keys

    keys = tmp / "keys"
    generate_keys(keys, "bad")
    server_public, _ = zmq.auth.load_certificate(keys / "server.key")
    public, secret = zmq.auth.load_certificate(keys / "client_secrets" / "bad.key_secret")
    CREDENTIALS[:] = [server_public.decode(), public.decode(), secret.decode()]
    return keys, CREDENTIALS


def scenarios(curve: tuple[Path, list[str]]) -> dict[str, tuple[list[str], Callable[[Daemon], str]]]:
    keys, credentials = curve
    with_curve = ["--max-message-mb", "1", "--curve-dir", str(keys)]
    return {
        "1M empty frames": ([], lambda d: attacker(FRAMES, d.endpoint, "1000000", "0", "60")),
        "80 x 1.5 MiB frames, limit 1 MiB": (["--max-message-mb", "1"],
                                             lambda d: attacker(FRAMES, d.endpoint, "80", str(3 * MiB // 2), "20")),
        "1,600 x 64,000 B frames, limit 1 MiB": (["--max-message-mb", "1"],  # each frame under a 64 KiB chunk
                                                 lambda d: attacker(FRAMES, d.endpoint, "1600", "64000", "20")),
        "4 peers at once, each 1,600 x 64,000 B frames, limit 1 MiB": (
            ["--max-message-mb", "1"], lambda d: attackers(4, FRAMES, d.endpoint, "1600", "64000", "30")),
        "80 x 2.5 MiB frames, limit 1 MiB": (["--max-message-mb", "1"],
                                             lambda d: attacker(FRAMES, d.endpoint, "80", str(5 * MiB // 2), "20")),
        "6 s of pings, never read": ([], lambda d: attacker(NO_READER, d.endpoint, "6")),
        "CURVE: 1,600 x 64,000 B frames, limit 1 MiB": (
            with_curve, lambda d: attacker(FRAMES, d.endpoint, "1600", "64000", "30", *credentials)),
        "CURVE: 4 peers at once, each 1,600 x 64,000 B frames, limit 1 MiB": (
            with_curve, lambda d: attackers(4, FRAMES, d.endpoint, "1600", "64000", "30", *credentials)),
    }


HOLDER = """
import sys, time, zmq
sock = zmq.Context().socket(zmq.ROUTER)
sock.setsockopt(zmq.MAXMSGSIZE, int(sys.argv[2])); sock.setsockopt(zmq.RCVHWM, int(sys.argv[3]))
sock.bind(sys.argv[1]); print("up", flush=True); time.sleep(600)
"""

SENDER = """
import sys, time, zmq
sock = zmq.Context().socket(zmq.DEALER); sock.setsockopt(zmq.LINGER, 0); sock.setsockopt(zmq.SNDHWM, 0)
sock.connect(sys.argv[1]); messages, frames, size = map(int, sys.argv[2:5]); frame = b"x" * size
for _ in range(messages):
    sock.send_multipart([frame] * frames, copy=False)
time.sleep(float(sys.argv[5]))  # libzmq's I/O thread sends meanwhile; the holder is sampled until we exit
"""


def libzmq_holds(max_frame: int, rcvhwm: int, messages: int, frames: int, size: int, settle: float = 4.0) -> float:
    """MiB a ROUTER (MAXMSGSIZE ``max_frame``, RCVHWM ``rcvhwm``) that never reads holds, at its peak, while a
    DEALER sends ``messages`` messages of ``frames`` frames of ``size`` bytes."""
    endpoint = f"tcp://127.0.0.1:{free_port()}"
    holder = subprocess.Popen([sys.executable, "-c", HOLDER, endpoint, str(max_frame), str(rcvhwm)],
                              stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "up"
        time.sleep(0.3)

        def rss() -> int:
            with open(f"/proc/{holder.pid}/statm") as f:
                return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")

        before = peak = rss()
        sender = subprocess.Popen([sys.executable, "-c", SENDER, endpoint, str(messages), str(frames), str(size),
                                   str(settle)])
        while sender.poll() is None:
            peak = max(peak, rss())
            time.sleep(0.01)
        return (max(peak, rss()) - before) / MiB
    finally:
        holder.kill()
        holder.wait()


def libzmq_cases() -> list[tuple[str, int, int, int, int, int]]:
    """(what, MAXMSGSIZE, RCVHWM, messages, frames per message, frame bytes): each multipart case first,
    then the same bytes as single-frame messages."""
    return [
        ("98 MiB as 1 message of 1,600 frames of 64,000 B", 64 * 1024, 64, 1, 1600, 64_000),
        ("98 MiB as 1,600 one-frame messages of 64,000 B", 64 * 1024, 64, 1600, 1, 64_000),
        ("100 MiB as 1 message of 4 frames of 25 MiB", 64 * MiB, 1, 1, 4, 25 * MiB),
        ("100 MiB as 4 one-frame messages of 25 MiB", 64 * MiB, 1, 4, 1, 25 * MiB),
    ]


def wire_flags(curve: bool) -> list[int]:
    """The ZMTP flags byte of each frame a DEALER puts on the wire for one 3-frame message, with CURVE or
    without, read by a byte relay between it and the ROUTER (after the 64-byte greeting)."""
    import socket
    import struct

    server_public, server_secret = zmq.curve_keypair()
    client_public, client_secret = zmq.curve_keypair()
    ctx = zmq.Context()
    router = ctx.socket(zmq.ROUTER)
    if curve:
        router.curve_server, router.curve_secretkey, router.curve_publickey = True, server_secret, server_public
    port = router.bind_to_random_port("tcp://127.0.0.1")
    listener = socket.create_server(("127.0.0.1", 0))
    seen = bytearray()

    def pump(src: socket.socket, dst: socket.socket, keep: bool) -> None:
        while chunk := src.recv(65536):
            if keep:
                seen.extend(chunk)
            dst.sendall(chunk)

    def relay() -> None:
        client, _ = listener.accept()
        upstream = socket.create_connection(("127.0.0.1", port))
        threading.Thread(target=pump, args=(upstream, client, False), daemon=True).start()
        pump(client, upstream, True)

    threading.Thread(target=relay, daemon=True).start()
    dealer = ctx.socket(zmq.DEALER)
    if curve:
        dealer.curve_serverkey, dealer.curve_publickey, dealer.curve_secretkey = (server_public, client_public,
                                                                                  client_secret)
    dealer.connect(f"tcp://127.0.0.1:{listener.getsockname()[1]}")
    parts = [b"a" * 10, b"b" * 300, b"c" * 5]
    dealer.send_multipart(parts)
    assert router.recv_multipart()[1:] == parts
    flags, at, wire = [], 64, bytes(seen)
    while at < len(wire):
        flag = wire[at]
        size, head = (struct.unpack(">Q", wire[at + 1:at + 9])[0], 9) if flag & 2 else (wire[at + 1], 2)
        if not flag & 4:  # commands (the handshake) aside: the message's frames
            flags.append(flag)
        at += head + size
    for sock in (dealer, router):
        sock.close(0)
    ctx.term()
    return flags


def libzmq_main(repeat: int) -> None:
    print("\nwhat a ROUTER that does not read holds (peak resident growth, median of "
          f"{repeat}); sender: one DEALER")
    print("| sent | MAXMSGSIZE | RCVHWM | held |\n| --- | --- | --- | --- |")
    for what, max_frame, rcvhwm, messages, frames, size in libzmq_cases():
        held = statistics.median(libzmq_holds(max_frame, rcvhwm, messages, frames, size) for _ in range(repeat))
        print(f"| {what} | {max_frame // 1024:,} KiB | {rcvhwm} | {held:.0f} MiB |")
    print("\nthe ZMTP flags of one 3-frame message's frames on the wire (MORE is 0x1, LONG 0x2):")
    for curve in (False, True):
        flags = wire_flags(curve)
        print(f"  {'CURVE' if curve else 'NULL '}: {[hex(f) for f in flags]}: "
              f"{'a relay sees where the message ends' if any(f & 1 for f in flags) else 'MORE is not visible'}")


ECHO = """
import sys, zmq
from zmq.utils import z85
from neural_style.daemon.server.curvezmq import CurveServerKeys
from neural_style.daemon.server.front import FrontDoor, FrontSettings
from neural_style.daemon.server.reader import MessageBounds
endpoint, front, keys = sys.argv[1], sys.argv[2], sys.argv[3:]
ctx = zmq.Context()
router = ctx.socket(zmq.ROUTER)
router.setsockopt(zmq.SNDHWM, 16)
if front == "libzmq":
    if keys:  # no ZAP handler: libzmq admits any client key (the comparison is the cost, not the policy)
        router.curve_server, router.curve_publickey, router.curve_secretkey = True, keys[0].encode(), keys[1].encode()
    router.bind(endpoint)
else:
    router.bind("inproc://echo")
    curve = CurveServerKeys(*(z85.decode(k) for k in keys[:2]), frozenset({z85.decode(keys[2])})) if keys else None
    FrontDoor(ctx, FrontSettings(endpoint, "inproc://echo", MessageBounds(12, 256 << 20), 257 << 20, 64, 10.0,
                                 curve)).start()
print("up", flush=True)
replies = {}
while True:  # a reply of the size asked for, sent zero-copy as the daemon sends a preview or a result
    ident, size = router.recv_multipart()
    payload = replies.setdefault(size, b"\x01" * int(size))
    router.send_multipart([ident, b"header", payload], copy=False)
"""

RELAY_SIZES = (("ping-sized (100 B)", 100), ("a 512 px RGB preview (768 KiB)", 512 * 512 * 3),
               ("a 1024 px RGB preview (3 MiB)", 1024 * 1024 * 3),
               ("a 24 MP RGBA result (96 MB)", 6000 * 4000 * 4))


def cpu_seconds(pid: int) -> float:
    """A process's user + system CPU time so far (robust where wall times are not: a shared machine)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def relay_round_trips(front: str, curve: bool, repeat: int) -> list[tuple[float, float]]:
    """For each RELAY_SIZES size through ``front``: the median seconds from a request to its whole reply,
    and the server process's CPU seconds per round trip."""
    server_public, server_secret = zmq.curve_keypair()
    client_public, client_secret = zmq.curve_keypair()
    endpoint = f"tcp://127.0.0.1:{free_port()}"
    keys = [k.decode() for k in (server_public, server_secret, client_public)] if curve else []
    server = subprocess.Popen([sys.executable, "-c", ECHO, endpoint, front, *keys], stdout=subprocess.PIPE, text=True)
    ctx = zmq.Context()
    try:
        assert server.stdout is not None and server.stdout.readline().strip() == "up"
        sock = ctx.socket(zmq.DEALER)
        sock.setsockopt(zmq.LINGER, 0)
        sock.setsockopt(zmq.RCVHWM, 0)
        if curve:
            sock.curve_serverkey, sock.curve_publickey, sock.curve_secretkey = (server_public, client_public,
                                                                                client_secret)
        sock.connect(endpoint)
        out = []
        for _, size in RELAY_SIZES:
            times = []
            cpu = 0.0
            for i in range(repeat + 1):
                if i == 1:
                    cpu = cpu_seconds(server.pid)
                started = time.perf_counter()
                sock.send(str(size).encode())
                frames = sock.recv_multipart(copy=False)
                assert len(frames[1]) == size
                if i:  # the first one warms up (the echo's reply buffer is made then)
                    times.append(time.perf_counter() - started)
            out.append((statistics.median(times), (cpu_seconds(server.pid) - cpu) / repeat))
        sock.close(0)
        return out
    finally:
        server.kill()
        server.wait()
        ctx.term()


def relay_main(repeat: int) -> None:
    print(f"\nthe relay's cost: a request and its reply through libzmq's listener or the daemon's front "
          f"(median of {max(repeat, 5)} round trips; client and server are processes of their own)")
    print("each cell: median wall time of a round trip / the server process's CPU time per round trip")
    print("| reply | NULL libzmq | NULL front | CURVE libzmq | CURVE front |\n| --- | --- | --- | --- | --- |")
    columns = [relay_round_trips(front, curve, max(repeat, 5)) for curve in (False, True)
               for front in ("libzmq", "zmtp")]
    for row, (what, _) in enumerate(RELAY_SIZES):
        print(f"| {what} | " + " | ".join(f"{col[row][0] * 1000:.1f} ms / {col[row][1] * 1000:.1f} ms"
                                         for col in columns) + " |")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--baseline-ref", help="a git revision to compare with, e.g. main")
    parser.add_argument("--repeat", type=int, default=1)
    parser.add_argument("--only", help="run only scenarios whose name contains this")
    parser.add_argument("--libzmq", action="store_true", help="measure libzmq alone (no daemon) instead")
    parser.add_argument("--fronts", action="store_true",
                        help="compare --front libzmq with --front zmtp (this checkout) instead of a baseline")
    parser.add_argument("--relay", action="store_true",
                        help="measure the front's relay against libzmq direct (round trips of preview- and "
                             "result-sized replies, NULL and CURVE) instead")
    args = parser.parse_args()
    print(f"machine: {machine()}; load average {os.getloadavg()[0]:.1f}")
    if args.libzmq:
        libzmq_main(args.repeat)
        return 0
    if args.relay:
        relay_main(args.repeat)
        return 0
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        variants: list[tuple[str, Path | None, list[str]]] = [("this", None, [])]
        if args.fronts:  # the same checkout, libzmq's listener against the daemon's own front
            variants = [("libzmq", None, ["--front", "libzmq"]), ("zmtp", None, ["--front", "zmtp"])]
        elif args.baseline_ref:
            variants.insert(0, (args.baseline_ref, baseline_tree(args.baseline_ref, tmp), []))
        for name, (extra, attack) in scenarios(curve_keys(tmp)).items():
            if args.only and args.only not in name:
                continue
            runs: dict[str, list[dict]] = {label: [] for label, _, _ in variants}
            for _ in range(args.repeat):
                for label, path, front in variants:  # alternate: the machine's load hits both alike
                    daemon = Daemon(label, path, [*extra, *front], tmp)
                    try:
                        runs[label].append(measure(daemon, attack))
                    finally:
                        daemon.stop()
            print(f"\n{name}")
            for label, results in runs.items():
                worst = statistics.median(r["worst_ping"] for r in results)
                median = statistics.median(r["median_ping"] for r in results)
                growth = statistics.median(r["growth_mb"] for r in results)
                kept = statistics.median(r["kept_mb"] for r in results)
                lost = sum(r["lost"] for r in results)
                print(f"  {label:>6}: worst ping {worst:6.2f} s, median ping {median * 1000:6.1f} ms, "
                      f"{lost} lost, memory +{growth:6.0f} MB (+{kept:.0f} MB 1 s after); "
                      f"bad client got: {results[-1]['outcome']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
