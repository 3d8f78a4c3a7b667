"""A lean WebSocket client for the load generator: thousands of them in one process, cheap per frame.

The `websockets` client does far more per frame than counting needs, and would make the load
generator the bottleneck. This one speaks just enough RFC 6455: the upgrade, one masked
text frame (the `hello`), pong for ping, and it walks server frames (never masked) by their
headers until the first frame (the `welcome`). After that it counts bytes only, which costs
nothing per frame (the benchmark knows the size of every frame it publishes), except on
sampled connections, which go on walking frames to read the send time that the publisher
put in each event (`"t":<monotonic seconds>`) and record latency.
"""

from __future__ import annotations

import asyncio
import base64
import os
import struct
import time
from collections.abc import Callable
from typing import cast
from urllib.parse import urlsplit

EVENT_PREFIX = b'{"type":"event"'
STAMP = b'"t":'


def masked_frame(payload: bytes, opcode: int = 1) -> bytes:
    """A client frame (FIN, masked) carrying `payload`."""
    mask = os.urandom(4)
    length = len(payload)
    if length < 126:
        header = struct.pack("!BB", 0x80 | opcode, 0x80 | length)
    elif length < 65536:
        header = struct.pack("!BBH", 0x80 | opcode, 0x80 | 126, length)
    else:
        header = struct.pack("!BBQ", 0x80 | opcode, 0x80 | 127, length)
    body = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
    return header + mask + body


class WireClient(asyncio.Protocol):
    """One connection: `ready` once the first text frame (welcome) came; counts events; samples latency."""

    def __init__(self, host: str, path: str, hello: bytes | None, sample: list[float] | None) -> None:
        self._host = host
        self._path = path
        self._hello = hello
        self._sample = sample
        self._buffer = bytearray()
        self._upgraded = False
        # After the welcome, only sampled connections walk frames (and so answer pings); a subclass may walk them all.
        self.walks = sample is not None
        self.transport: asyncio.Transport | None = None
        self.ready = asyncio.get_running_loop().create_future()
        self.events = 0
        self.received = 0  # bytes after the upgrade
        self.closed = asyncio.get_running_loop().create_future()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's transports do not subclass asyncio's
        key = base64.b64encode(os.urandom(16)).decode()
        self.transport.write(
            (
                f"GET {self._path} HTTP/1.1\r\nHost: {self._host}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n"
            ).encode()
        )

    def data_received(self, data: bytes) -> None:
        if self._upgraded:
            self.received += len(data)
            if not self.walks and self.ready.done():
                return
        buffer = self._buffer
        buffer += data
        if not self._upgraded:
            end = buffer.find(b"\r\n\r\n")
            if end < 0:
                return
            if not buffer.startswith(b"HTTP/1.1 101"):
                self._fail(ConnectionError(bytes(buffer[: buffer.find(b"\r\n")]).decode(errors="replace")))
                return
            self.received = len(buffer) - end - 4
            del buffer[: end + 4]
            self._upgraded = True
            if self._hello is not None:
                self._send(self._hello)
            else:
                self.ready.set_result(None)  # a server with no protocol says nothing first
                if self._sample is None:
                    return
        offset, size = 0, len(buffer)
        while size - offset >= 2:
            opcode = buffer[offset] & 0x0F
            length = buffer[offset + 1] & 0x7F
            start = offset + 2
            if length == 126:
                if size - offset < 4:
                    break
                length = (buffer[offset + 2] << 8) | buffer[offset + 3]
                start = offset + 4
            elif length == 127:
                if size - offset < 10:
                    break
                (length,) = struct.unpack_from("!Q", buffer, offset + 2)
                start = offset + 10
            end = start + length
            if end > size:
                break
            if opcode == 1:
                self._text(buffer, start, end)
            elif opcode == 9:
                self._send(bytes(buffer[start:end]), opcode=10)
            elif opcode == 8:
                self._fail(ConnectionError("closed by the server"))
            offset = end
        if offset:
            del buffer[:offset]

    def _text(self, buffer: bytearray, start: int, end: int) -> None:
        if buffer.startswith(EVENT_PREFIX, start):
            self.events += 1
            if self._sample is not None:
                at = buffer.find(STAMP, start, end)
                if at >= 0:
                    stop = buffer.find(b"}", at, end)
                    comma = buffer.find(b",", at, stop)
                    sent = float(buffer[at + len(STAMP) : comma if comma >= 0 else stop])
                    self._sample.append(time.monotonic() - sent)
        elif not self.ready.done():
            self.ready.set_result(None)  # the welcome

    def _send(self, payload: bytes, opcode: int = 1) -> None:
        if self.transport is not None and not self.transport.is_closing():
            self.transport.write(masked_frame(payload, opcode))

    def _fail(self, exc: Exception) -> None:
        if not self.ready.done():
            self.ready.set_exception(exc)
        if self.transport is not None:
            self.transport.close()

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.ready.done():
            self.ready.set_exception(exc or ConnectionError("connection lost"))
        if not self.closed.done():
            self.closed.set_result(None)


async def open_client(url: str, hello: bytes | None, sample: list[float] | None = None) -> WireClient:
    """Connect to `url` (ws://host:port/path), send `hello` after the upgrade, wait for the first frame."""
    parts = urlsplit(url)
    host, port = parts.hostname or "127.0.0.1", parts.port or 80
    factory: Callable[[], WireClient] = lambda: WireClient(f"{host}:{port}", parts.path or "/", hello, sample)  # noqa: E731
    _, client = await asyncio.get_running_loop().create_connection(factory, host, port)
    await asyncio.wait_for(client.ready, 30)
    return client
