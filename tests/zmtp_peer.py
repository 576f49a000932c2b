"""A ZMTP 3.0 peer spoken by hand (NULL mechanism), for the tests that need what libzmq never does:
stop in the middle of a message, send a frame at a time, PING with a TTL and then fall silent."""

from __future__ import annotations

import socket


class ZmtpPeer:
    """A DEALER over an ``ipc://`` or ``tcp://`` endpoint; ``handshake=False`` stops after connecting."""

    def __init__(self, endpoint: str, *, handshake: bool = True, timeout: float = 30) -> None:
        if endpoint.startswith("ipc://"):
            self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            address: object = endpoint.removeprefix("ipc://")
        else:
            host, _, port = endpoint.removeprefix("tcp://").rpartition(":")
            self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            address = (host, int(port))
        self.sock.settimeout(timeout)
        self.sock.connect(address)
        if handshake:
            self.sock.sendall(b"\xff" + bytes(8) + b"\x7f" + b"\x03\x00" + b"NULL".ljust(20, b"\x00") + bytes(32))
            self.exactly(64)  # the daemon's greeting
            self.command(b"\x05READY\x0bSocket-Type" + len(b"DEALER").to_bytes(4, "big") + b"DEALER")
            flags, body = self.read_frame()
            assert flags & 4 and body.startswith(b"\x05READY"), body

    def command(self, body: bytes) -> None:
        self.sock.sendall(bytes([4, len(body)]) + body)

    def frame(self, body: bytes, more: bool) -> None:
        self.sock.sendall(bytes([(1 if more else 0) | 2]) + len(body).to_bytes(8, "big") + body)

    def exactly(self, n: int) -> bytes:
        got = b""
        while len(got) < n:
            chunk = self.sock.recv(n - len(got))
            assert chunk, "the daemon closed the connection"
            got += chunk
        return got

    def closed(self, timeout: float) -> bool:
        """True once the daemon closes the connection within ``timeout`` (what it sends meanwhile is read)."""
        self.sock.settimeout(timeout)
        try:
            while self.sock.recv(65536):
                pass
        except TimeoutError:
            return False
        except ConnectionResetError:
            return True
        return True

    def read_frame(self) -> tuple[int, bytes]:
        flags = self.exactly(1)[0]
        size = int.from_bytes(self.exactly(8 if flags & 2 else 1), "big")
        return flags, self.exactly(size)

    def read_message(self) -> list[bytes]:
        frames, more = [], True
        while more:
            flags, body = self.read_frame()
            if flags & 4:  # a command (the daemon sends no PINGs, but a later libzmq might)
                continue
            frames.append(body)
            more = bool(flags & 1)
        return frames

    def close(self) -> None:
        self.sock.close()
