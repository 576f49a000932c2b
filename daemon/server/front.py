"""The network front door: the daemon speaks ZMTP (and CURVE) itself on its tcp endpoint, so that what
one peer can make it hold is bounded by the ``serve`` options, not by how fast it reads.

Why not libzmq's listener: libzmq assembles a whole multipart message before anyone can read or
refuse it, and its high-water marks count whole messages, so one peer sending a message of many
frames makes it hold all of them (PROTOCOL.md section 9); under CURVE the MORE flag is encrypted,
so no relay in front of libzmq could count either.  Here each peer's frames are counted and their
bytes summed as they arrive, within the reader's own bounds (``reader.Incoming``): a message over
a bound keeps only its header (for the request's id) and drops the rest as it comes, and its end
is answered with the same ``too_large`` the daemon gave before; a frame over the per-frame ceiling
(``max_frame_bytes``, libzmq's ``MAXMSGSIZE`` before) closes the connection, as libzmq did.

Complete messages within the bounds go to the daemon's ROUTER over inproc, one DEALER per peer (so
the router's replies route back, and a peer that goes away is a closed connection there, as
before).  The DEALER's queue is one message deep each way, so what one peer costs is at most::

    max_message_bytes + max_frame_bytes (being read)  +  2 × max_message_bytes (queued to the router)

and ``max_connections`` peers at most are accepted; a peer gets ``handshake_timeout`` seconds to
finish its handshake, one that asked for a ZMTP heartbeat TTL is dropped after that much
silence (RFC 37), which is how a hung client's jobs are cancelled, and one idle for ``idle_timeout``
seconds (no complete message and no command from it, no reply to it) is closed, so that
``max_connections`` peers that connect and do nothing cannot lock everyone else out.  Idle is judged
by traffic both ways because the front does not read the replies: a peer with an unfinished job is
never idle, as the daemon sends each unfinished job a heartbeat every 0.5 s (PROTOCOL.md section 7).

ipc endpoints keep libzmq's listener: only local users with access to the socket file reach them.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import threading
from dataclasses import dataclass
from typing import Any

import zmq
import zmq.asyncio

from neural_style.protocol.messages import Error

from .curvezmq import MESSAGE_OVERHEAD, CurveServerKeys, CurveSession
from .reader import Incoming, MessageBounds
from .zmtp import (
    COMMAND,
    GREETING_SIZE,
    LONG,
    MORE,
    ZmtpError,
    command,
    frame_header,
    greeting,
    metadata,
    parse_command,
    parse_greeting,
    parse_metadata,
    ping_reply,
    socket_type_allowed,
)

__all__ = ["FrontDoor", "FrontSettings", "tcp_address"]

log = logging.getLogger("neural_style.daemon.server.front")

CHUNK = 256 * 1024  # bytes read from a peer's socket at a time
SMALL = 64 * 1024  # frames smaller than this are copied out of the read buffer; larger ones read in place
MAX_COMMAND = 4096  # a handshake command or a PING is a few hundred bytes
FRAMES_PER_TURN = 64  # frames one peer reads before the others get a turn
IDLE_DRAIN = 0.2  # at shutdown, a peer whose replies have been quiet this long is closed
ROUTER_SOCKET = b"ROUTER"


@dataclass(frozen=True)
class FrontSettings:
    """What the front needs: where it listens, where the daemon's ROUTER is, and its bounds."""

    endpoint: str  # tcp://HOST:PORT
    backend: str  # the ROUTER's inproc endpoint
    bounds: MessageBounds
    max_frame_bytes: int
    max_connections: int
    handshake_timeout: float
    curve: CurveServerKeys | None = None
    idle_timeout: float = 0.0  # seconds; 0: an idle peer is kept (the daemon's default is Limits')


def tcp_address(endpoint: str) -> tuple[socket.AddressFamily, tuple[Any, ...]]:
    """The socket family and address of ``tcp://HOST:PORT`` (``*`` is every IPv4 interface, as in libzmq)."""
    rest = endpoint.removeprefix("tcp://")
    host, sep, port = rest.rpartition(":")
    if not sep or not port.isdigit():
        raise ValueError(f"not a tcp://HOST:PORT endpoint: {endpoint!r}")
    host = host.strip("[]")
    if host == "*":
        return socket.AF_INET, ("0.0.0.0", int(port))
    infos = socket.getaddrinfo(host, int(port), type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    infos.sort(key=lambda info: info[0] != socket.AF_INET)  # IPv4 first, as libzmq without ZMQ_IPV6
    return infos[0][0], infos[0][4]


class _Skipped:
    """A frame dropped unread (its message is over a bound already): only its length is counted."""

    def __init__(self, size: int) -> None:
        self.size = size

    def __len__(self) -> int:
        return self.size


class _Reader:
    """Buffered reads from a non-blocking socket; large frames are read straight into their own buffer."""

    def __init__(self, loop: asyncio.AbstractEventLoop, sock: socket.socket, peer: _Peer) -> None:
        self.loop, self.sock, self.peer = loop, sock, peer
        self.buf = bytearray()
        self.pos = 0

    def _received(self, count: int) -> None:
        if not count:
            raise EOFError
        self.peer.last_rx = self.loop.time()

    async def _fill(self) -> None:
        data = await self.loop.sock_recv(self.sock, CHUNK)
        self._received(len(data))
        if self.pos:
            del self.buf[:self.pos]
            self.pos = 0
        self.buf += data

    async def exactly(self, n: int) -> bytes:
        while len(self.buf) - self.pos < n:
            await self._fill()
        out = bytes(self.buf[self.pos:self.pos + n])
        self.pos += n
        return out

    async def body(self, n: int) -> bytes | bytearray:
        """``n`` bytes: copied out of the buffer when small, else read into a buffer of exactly ``n``."""
        if n < SMALL:
            return await self.exactly(n)
        return await self.owned(n)

    async def owned(self, n: int) -> bytearray:
        """``n`` bytes in a buffer of their own, which may be written to (a CURVE box opens in place)."""
        out = bytearray(n)
        have = min(n, len(self.buf) - self.pos)
        out[:have] = self.buf[self.pos:self.pos + have]
        self.pos += have
        view = memoryview(out)
        while have < n:
            got = await self.loop.sock_recv_into(self.sock, view[have:])
            self._received(got)
            have += got
        return out

    async def skip(self, n: int) -> None:
        have = min(n, len(self.buf) - self.pos)
        self.pos += have
        n -= have
        if n:
            scratch = memoryview(bytearray(min(n, CHUNK)))
            while n:
                got = await self.loop.sock_recv_into(self.sock, scratch[:min(n, len(scratch))])
                self._received(got)
                n -= got


class _Peer:
    """One accepted connection: handshake, then requests to the daemon and replies back."""

    def __init__(self, door: FrontDoor, sock: socket.socket, address: Any) -> None:
        self.door = door
        self.sock = sock
        self.label = f"{address[0]}:{address[1]}"
        self.loop = asyncio.get_running_loop()
        self.reader = _Reader(self.loop, sock, self)
        self.last_rx = self.last_reply = self.last_message = self.loop.time()
        self.ready = False  # handshake done: from then on an idle peer is closed
        self.ttl = 0.0  # the peer's ZMTP heartbeat TTL, once a PING asked for one
        self.handing_over = False  # a message is on its way to the daemon: the peer is not read meanwhile
        self.curve: CurveSession | None = None
        self.write_lock = asyncio.Lock()
        self.task: asyncio.Task[None] | None = None

    # ---------------------------------------------------------------- reading frames
    async def _frame(self) -> tuple[int, int]:
        head = await self.reader.exactly(2)
        flags = head[0]
        if flags & ~(MORE | LONG | COMMAND):
            raise ZmtpError("reserved frame flags set")
        if flags & LONG:
            return flags, int.from_bytes(head[1:] + await self.reader.exactly(7), "big")
        return flags, head[1]

    async def _command(self) -> bytes:
        flags, size = await self._frame()
        if not flags & COMMAND or flags & MORE or size > MAX_COMMAND:
            raise ZmtpError("expected a handshake command")
        return await self.reader.exactly(size)

    # ---------------------------------------------------------------- writing
    async def _send(self, *parts: bytes | bytearray | memoryview) -> None:
        for part in parts:
            await self.loop.sock_sendall(self.sock, part)

    async def _send_frames(self, frames: list[Any], *, flags: int = 0) -> None:
        """A whole message (or one command, ``flags`` COMMAND) to the peer, in one piece."""
        async with self.write_lock:
            last = len(frames) - 1
            small = bytearray()
            for i, frame in enumerate(frames):
                body = frame.buffer if isinstance(frame, zmq.Frame) else frame
                frame_flags = flags | (MORE if i < last else 0)
                if self.curve is not None:  # the flags go inside the box: MORE, and bit 1 for a command;
                    body = self.curve.seal((0x02 if frame_flags & COMMAND else 0) | frame_flags & MORE, body)
                    frame_flags = 0  # the box travels as a one-frame message, as libzmq sends and expects it
                header = frame_header(frame_flags, len(body))
                if len(body) < SMALL:
                    small += header
                    small += body
                    continue
                await self._send(small + header, body)
                small = bytearray()
            if small:
                await self._send(small)

    # ---------------------------------------------------------------- the connection
    async def run(self) -> None:
        dealer: zmq.asyncio.Socket | None = None
        tasks: list[asyncio.Task[None]] = []
        try:
            try:
                await asyncio.wait_for(self._handshake(), self.door.settings.handshake_timeout)
            except asyncio.TimeoutError:
                log.info("front: %s did not finish its handshake in %g s; closed", self.label,
                         self.door.settings.handshake_timeout)
                return
            self.ready = True
            self.last_message = self.loop.time()
            dealer = self.door.zctx.socket(zmq.DEALER)
            dealer.setsockopt(zmq.LINGER, 0)
            dealer.setsockopt(zmq.SNDHWM, 1)
            dealer.setsockopt(zmq.RCVHWM, 1)
            dealer.connect(self.door.settings.backend)
            tasks = [asyncio.create_task(self._requests(dealer)), asyncio.create_task(self._replies(dealer))]
            done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
            for task in done:
                task.result()
        except ZmtpError as exc:
            log.info("front: %s broke the protocol (%s); closed", self.label, exc)
        except (EOFError, ConnectionError, OSError):
            pass  # the peer went away
        except Exception:  # a bug must not take the front down for everyone
            log.exception("front: unexpected failure serving %s; closed", self.label)
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            if dealer is not None:
                dealer.close(linger=0)
            self.sock.close()
            self.door.peers.discard(self)

    async def _handshake(self) -> None:
        keys = self.door.settings.curve
        mechanism = "NULL" if keys is None else "CURVE"
        await self._send(greeting(mechanism, as_server=keys is not None))
        theirs = parse_greeting(await self.reader.exactly(GREETING_SIZE))
        try:
            if theirs.mechanism != mechanism:
                raise ZmtpError(f"this daemon speaks {mechanism}, not {theirs.mechanism}")
            if keys is None:
                name, data = parse_command(await self._command())
                if name != b"READY":
                    raise ZmtpError("expected READY")
                socket_type_allowed(parse_metadata(data))
                await self._send(command(b"READY", metadata({"Socket-Type": ROUTER_SOCKET})))
                return
            if theirs.as_server:
                raise ZmtpError("the peer is a CURVE server too")
            session = CurveSession(keys)
            welcome = session.hello(await self._command())
            await self._send(frame_header(COMMAND, len(welcome)), welcome)
            ready = session.initiate(await self._command(), ROUTER_SOCKET)
            await self._send(frame_header(COMMAND, len(ready)), ready)
            self.curve = session
        except ZmtpError as exc:
            reason = str(exc).encode()[:255]
            with contextlib.suppress(OSError):
                await self._send(command(b"ERROR", bytes([len(reason)]) + reason))
            raise

    async def _requests(self, dealer: zmq.asyncio.Socket) -> None:
        """Frames in, counted as they arrive; complete messages within the bounds to the daemon."""
        bounds, ceiling = self.door.settings.bounds, self.door.settings.max_frame_bytes
        current: Incoming | None = None
        turn = 0
        while True:
            flags, size = await self._frame()
            frame: Any
            if self.curve is not None:
                if flags & MORE:  # MORE is inside the box; libzmq sends MESSAGE as a one-frame message
                    raise ZmtpError("under CURVE every frame is a MESSAGE")
                if size > ceiling + MESSAGE_OVERHEAD:
                    raise ZmtpError(f"a frame of {size} bytes is over the ceiling of {ceiling}")
                inner, frame = self.curve.open_message(await self.reader.owned(size))
                if inner & 0x02:
                    await self._on_command(bytes(frame))
                    continue
                more = bool(inner & MORE)
            elif flags & COMMAND:
                if flags & MORE or size > MAX_COMMAND:
                    raise ZmtpError("a malformed command")
                await self._on_command(await self.reader.exactly(size))
                continue
            else:
                if size > ceiling:
                    raise ZmtpError(f"a frame of {size} bytes is over the ceiling of {ceiling}")
                more = bool(flags & MORE)
                keep = current is None or (current.refused_code is None and current.frame_count < bounds.max_frames
                                           and current.size + size <= bounds.max_bytes)
                if keep:
                    frame = await self.reader.body(size)
                else:
                    await self.reader.skip(size)
                    frame = _Skipped(size)
            if current is None:
                current = Incoming(self.label.encode())
            current.add(frame, bounds)
            del frame
            if not more:
                self.handing_over = True  # the peer's silence meanwhile is ours (the daemon's queue is full)
                try:
                    await self._deliver(current, dealer)
                finally:
                    self.handing_over = False
                    self.last_rx = self.last_message = self.loop.time()
                current = None
            turn += 1
            if turn == FRAMES_PER_TURN:
                turn = 0
                await asyncio.sleep(0)  # the others' turn: this peer's next frames may be buffered already

    async def _deliver(self, message: Incoming, dealer: zmq.asyncio.Socket) -> None:
        message.finish(self.door.settings.bounds)
        if message.refused_code is None:
            await dealer.send_multipart(message.frames, copy=False)
            return
        log.info("front: refused a request from %s (id=%r): %s: %s", self.label, message.request_id,
                 message.refused_code, message.refused_message)
        reply = Error(message.request_id or "", message.refused_code, message.refused_message)
        await self._send_frames(list(reply.to_frames()))

    async def _on_command(self, body: bytes) -> None:
        name, data = parse_command(body)
        self.last_message = self.loop.time()  # a PING (or PONG) is a live peer's traffic
        if name == b"PING":
            ttl, context = ping_reply(data)
            self.ttl = ttl
            if not self.write_lock.locked():  # a reply being written is traffic enough
                await self._send_frames([b"\x04PONG" + context], flags=COMMAND)
        elif name == b"ERROR":
            raise EOFError
        elif name != b"PONG":
            raise ZmtpError(f"unexpected command {name!r}")

    async def _replies(self, dealer: zmq.asyncio.Socket) -> None:
        while True:
            frames = await dealer.recv_multipart(copy=False)
            await self._send_frames(frames)
            self.last_reply = self.loop.time()


class FrontDoor:
    """Listens on the tcp endpoint (bound at construction, so a busy port fails ``serve`` at once) and
    serves peers on an asyncio loop in a thread of its own until ``stop``."""

    def __init__(self, ctx: zmq.Context, settings: FrontSettings) -> None:
        self.settings = settings
        self.ctx = ctx
        family, address = tcp_address(settings.endpoint)
        self.listener = socket.socket(family, socket.SOCK_STREAM)
        try:
            self.listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            self.listener.bind(address)
            self.listener.listen(128)
            self.listener.setblocking(False)
        except BaseException:
            self.listener.close()
            raise
        self.peers: set[_Peer] = set()
        self.zctx: zmq.asyncio.Context = zmq.asyncio.Context.shadow(ctx.underlying)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stopping: asyncio.Event | None = None
        self._grace = 0.0
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._run, name="neural-style-front", daemon=True)

    def start(self) -> None:
        self._thread.start()
        self._ready.wait(10)

    def stop(self, grace: float = 2.0) -> None:
        """Stop accepting; let each peer's last replies (the shutdown's ``cancelled``) go out, within
        ``grace`` seconds; close every connection."""
        if self._loop is not None and self._stopping is not None:
            self._grace = grace
            self._loop.call_soon_threadsafe(self._stopping.set)
        self._thread.join(grace + 5)
        self.listener.close()

    def _run(self) -> None:
        asyncio.run(self._main())

    async def _main(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._stopping = asyncio.Event()
        self._ready.set()
        accepting = asyncio.create_task(self._accept())
        watchdog = asyncio.create_task(self._watch())
        await self._stopping.wait()
        accepting.cancel()
        deadline = self._loop.time() + self._grace
        while self.peers and self._loop.time() < deadline:
            if all(self._loop.time() - peer.last_reply >= IDLE_DRAIN for peer in self.peers):
                break
            await asyncio.sleep(0.05)
        peers = [peer.task for peer in self.peers if peer.task is not None]
        for task in peers:
            task.cancel()
        watchdog.cancel()
        await asyncio.gather(accepting, watchdog, *peers, return_exceptions=True)

    async def _accept(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            try:
                sock, address = await loop.sock_accept(self.listener)
            except OSError as exc:  # out of file descriptors, say: the front keeps listening
                log.warning("front: cannot accept a connection: %s", exc)
                await asyncio.sleep(0.1)
                continue
            if len(self.peers) >= self.settings.max_connections:
                log.warning("front: %d connections already (--max-connections); closed one from %s",
                            len(self.peers), address[0])
                sock.close()
                continue
            sock.setblocking(False)
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            peer = _Peer(self, sock, address)
            self.peers.add(peer)
            peer.task = asyncio.create_task(peer.run())

    async def _watch(self) -> None:
        """Drop a peer silent for longer than the TTL its PINGs asked for (RFC 37), or idle past
        ``idle_timeout`` (``_idle``)."""
        loop = asyncio.get_running_loop()
        while True:
            await asyncio.sleep(0.1)
            now = loop.time()
            for peer in list(self.peers):
                if peer.task is None:
                    continue
                if peer.ttl and not peer.handing_over and now - peer.last_rx > peer.ttl:
                    log.info("front: %s was silent for over its heartbeat TTL of %g s; closed", peer.label, peer.ttl)
                    peer.task.cancel()
                elif self._idle(peer, now):
                    log.info("front: %s was idle for over %g s (--idle-timeout); closed", peer.label,
                             self.settings.idle_timeout)
                    peer.task.cancel()

    def _idle(self, peer: _Peer, now: float) -> bool:
        """Handshaken, with neither a complete message nor a command from it nor a reply to it for
        ``idle_timeout`` s, and nothing on its way either way (a message handed over, a reply written)."""
        limit = self.settings.idle_timeout
        return bool(limit) and peer.ready and not peer.handing_over and not peer.write_lock.locked() and \
            now - max(peer.last_message, peer.last_reply) > limit
