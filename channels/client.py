"""A small device client of the protocol, shared by the tests, the simulator and the benchmarks.

    async with DeviceClient(ws_url, token) as kiosk:
        reply = await kiosk.command("cart.create", {})
        event = await kiosk.next_event("device:1")

It keeps each channel's last seq and epoch, so `DeviceClient(url, token,
resume=old.resume_state())` picks up where an earlier connection left off; passing the old
connection's `stream` and `versions` as well keeps one stream of frames and one view of
the orders, payments and carts across the two (channels/reconnecting.py reconnects that way).

`versions` holds the newest of every order, payment, cart and board entry the device heard
of in replies, events and snapshots (channels/versions.py): `kiosk.versions.get("order", 7)`.
The stream still brings every frame as it came, an older state included.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import secrets
from typing import Any

import websockets
from websockets.asyncio.client import ClientConnection

from channels.versions import Versions


class CommandFailed(Exception):
    """A command answered with `ok: false`; `code` is the protocol error code."""

    def __init__(self, reply: dict[str, Any]) -> None:
        error = reply.get("error") or {}
        super().__init__(f"{error.get('code')}: {error.get('message')}")
        self.reply = reply
        self.code: str = error.get("code", "")
        self.details: dict[str, Any] = error.get("details") or {}


class HandshakeRefused(Exception):
    """The server closed the connection instead of answering `hello` (4001, 4003, ...)."""

    def __init__(self, code: int | None, reason: str) -> None:
        super().__init__(f"closed with {code}: {reason}")
        self.code = code
        self.reason = reason


class DeviceClient:
    """One authenticated connection: commands with their replies, and a stream of events and snapshots."""

    # Command ids must be new for 24 hours per principal (PROTOCOL.md): a counter alone would repeat the ids of
    # an earlier process that used the same device, and the server would answer with that run's stored replies.
    _process_tag = secrets.token_hex(4)
    _ids = itertools.count(1)

    def __init__(
        self,
        url: str,
        token: str,
        *,
        resume: dict[str, dict[str, Any]] | None = None,
        stream: asyncio.Queue[dict[str, Any]] | None = None,
        versions: Versions | None = None,
        locale: str | None = None,
    ) -> None:
        self.url = url
        self.token = token
        # The customer's language, said in every hello (docs/protocol.md "Languages"); None: the branch's default.
        self.locale = locale
        self.welcome: dict[str, Any] = {}
        self.positions: dict[str, tuple[int, str]] = {
            channel: (int(place["seq"]), str(place["epoch"])) for channel, place in (resume or {}).items()
        }
        self._resume = resume or {}
        self._ws: ClientConnection | None = None
        self._reader: asyncio.Task[None] | None = None
        self._replies: dict[str, asyncio.Future[dict[str, Any]]] = {}
        self.stream: asyncio.Queue[dict[str, Any]] = asyncio.Queue() if stream is None else stream
        self.versions = Versions() if versions is None else versions
        self.closed = asyncio.Event()

    async def __aenter__(self) -> DeviceClient:
        await self.connect()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def connect(self, timeout: float = 10) -> dict[str, Any]:
        """Open the socket, say hello and return the `welcome` data."""
        self._ws = await asyncio.wait_for(websockets.connect(self.url, max_size=None), timeout)
        hello: dict[str, Any] = {"type": "hello", "token": self.token}
        if self._resume:
            hello["resume"] = self._resume
        if self.locale is not None:
            hello["locale"] = self.locale
        try:
            # A server that turns the socket away at once (1013, busy) may have closed it before the hello goes.
            await self._ws.send(json.dumps(hello))
            first = json.loads(await asyncio.wait_for(self._ws.recv(), timeout))
        except websockets.ConnectionClosed as closed:
            code, reason = (closed.rcvd.code, closed.rcvd.reason) if closed.rcvd else (None, "")
            raise HandshakeRefused(code, reason) from closed
        if first.get("type") != "welcome":
            raise RuntimeError(f"expected welcome, got {first}")
        self.welcome = first["data"]
        self._reader = asyncio.get_running_loop().create_task(self._read())
        return self.welcome

    async def _read(self) -> None:
        assert self._ws is not None
        try:
            async for text in self._ws:
                if self.skips(text):
                    continue
                frame = json.loads(text)
                kind = frame.get("type")
                if kind == "reply" and frame.get("id") in self._replies:
                    self._replies.pop(frame["id"]).set_result(frame)
                    continue
                if kind in ("event", "snapshot"):
                    self.positions[frame["channel"]] = (frame["seq"], frame["epoch"])
                if kind == "event":
                    self.versions.take(frame["event"], frame.get("data"))
                elif kind == "snapshot":
                    self.versions.take_snapshot(frame.get("data"))
                await self.stream.put(frame)
        except websockets.ConnectionClosed:
            pass
        finally:
            self.closed.set()
            for future in self._replies.values():
                if not future.done():
                    future.set_exception(ConnectionError("connection closed"))

    def skips(self, text: str | bytes) -> bool:
        """Whether to drop a received frame unread; none here (a load generator skips what it never acts on)."""
        return False

    async def send_raw(self, text: str) -> None:
        """Send any text frame, valid or not (for tests of the server's error handling)."""
        assert self._ws is not None
        await self._ws.send(text)

    async def request(
        self, kind: str, data: dict[str, Any] | None = None, *, command_id: str | None = None, timeout: float = 10
    ) -> dict[str, Any]:
        """Send a command and return its reply frame, successful or not."""
        assert self._ws is not None
        if self.closed.is_set():
            raise ConnectionError("connection closed")
        command_id = command_id or self.new_id()
        future: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self._replies[command_id] = future
        try:
            await self._ws.send(json.dumps({"type": kind, "id": command_id, "data": data or {}}))
            reply = await asyncio.wait_for(future, timeout)
        except websockets.ConnectionClosed as closed:
            raise ConnectionError("connection closed") from closed
        finally:
            self._replies.pop(command_id, None)
        if reply.get("ok"):
            self.versions.take(kind, reply.get("data"))
        return reply

    @classmethod
    def new_id(cls) -> str:
        """A command id no other command of this process (or an earlier one) has used."""
        return f"{cls._process_tag}-{next(cls._ids)}"

    async def command(
        self, kind: str, data: dict[str, Any] | None = None, *, command_id: str | None = None, timeout: float = 10
    ) -> dict[str, Any]:
        """Send a command and return its reply data; `CommandFailed` when it failed."""
        reply = await self.request(kind, data, command_id=command_id, timeout=timeout)
        if not reply.get("ok"):
            raise CommandFailed(reply)
        data_out: dict[str, Any] = reply.get("data") or {}
        return data_out

    async def next_frame(self, timeout: float = 10) -> dict[str, Any]:
        """The next event, snapshot or unmatched frame, in arrival order."""
        return await asyncio.wait_for(self.stream.get(), timeout)

    async def next_event(
        self, channel: str | None = None, event: str | None = None, *, timeout: float = 10
    ) -> dict[str, Any]:
        """The next event frame matching `channel` and `event`, skipping others."""
        async with asyncio.timeout(timeout):
            while True:
                frame = await self.stream.get()
                if frame.get("type") != "event":
                    continue
                if (channel is None or frame["channel"] == channel) and (event is None or frame["event"] == event):
                    return frame

    def resume_state(self) -> dict[str, dict[str, Any]]:
        """The `resume` object of a later `hello`: each channel's last seq and epoch."""
        return {channel: {"seq": seq, "epoch": epoch} for channel, (seq, epoch) in self.positions.items()}

    @property
    def close_code(self) -> int | None:
        """The close code the server sent, once the connection is closed."""
        if self._ws is None or self._ws.close_code is None:
            return None
        return int(self._ws.close_code)

    @property
    def close_reason(self) -> str:
        """The reason the server gave with its close, once the connection is closed ("" when none)."""
        if self._ws is None or self._ws.close_reason is None:
            return ""
        return str(self._ws.close_reason)

    async def wait_closed(self, timeout: float = 10) -> int | None:
        """Wait until the server closes the connection; its close code."""
        await asyncio.wait_for(self.closed.wait(), timeout)
        return self.close_code

    async def close(self) -> None:
        """Close the connection."""
        if self._ws is not None:
            await self._ws.close()
        if self._reader is not None:
            try:
                await asyncio.wait_for(self._reader, 5)
            except (TimeoutError, asyncio.CancelledError):
                self._reader.cancel()
