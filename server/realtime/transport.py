"""A device socket's outgoing side: complete frames written without waiting, the slow-socket bound, the close.

The hub and the connection hand it complete frames (a server's frames are unmasked, so one
event's bytes serve every socket). Nothing waits to write: the frames of one event-loop
turn are joined and written when the turn ends (channels/wire.py), straight into the
asyncio transport that server/realtime/ws_protocol.py puts in the connection's scope. So
the bound is on bytes: those still held for the end of the turn plus those the transport
has not yet handed to the kernel. Past `WS_SEND_BUFFER_BYTES` the client is too slow and
is closed with 4008.

Once a close is decided nothing more is written, except while the server goes away
(1001), when the command in hand still replies; the close frame follows what was written
before it.
"""

from __future__ import annotations

import asyncio

from prometheus_client import Counter
from starlette.websockets import WebSocket, WebSocketDisconnect, WebSocketState

from channels import frames
from channels.wire import Coalescer, wire_frame
from server.realtime.limits import SocketLimits
from server.realtime.ws_protocol import TRANSPORT_EXTENSION

# Closes for a client that may no longer see the data, or cannot keep up: frames not yet written are dropped.
_DROP_UNSENT_ON_CLOSE = (frames.UNAUTHORIZED, frames.FORBIDDEN, frames.TOO_SLOW)


class _Held(asyncio.Transport):
    """The socket's asyncio transport as the turn's writer sees it: counts the bytes it holds for the socket."""

    __slots__ = ("raw", "bytes")

    def __init__(self, raw: asyncio.Transport) -> None:
        super().__init__()
        self.raw = raw
        # Frames given to the writer and not yet written into `raw`.
        self.bytes = 0

    def write(self, data: bytes | bytearray | memoryview) -> None:
        """The turn's frames, joined: from here on `raw` holds them."""
        self.bytes = 0
        self.raw.write(data)

    def is_closing(self) -> bool:
        """True once the socket is closing."""
        return self.raw.is_closing()


class SocketTransport:
    """The hub's handle on one device socket (channels.hub.Transport): complete frames out, then the close.

    `close` records the first code and starts the close; after it nothing more is written,
    except while going away (1001), when the command in hand may still reply. Once the
    close frame is on its way (sealed), nothing at all.
    """

    __slots__ = (
        "_ws",
        "_held",
        "_frames_out",
        "_limits",
        "_drops",
        "close_code",
        "close_reason",
        "busy",
        "_idle",
        "_sealed",
        "_closing",
    )

    def __init__(self, websocket: WebSocket, frames_out: Coalescer, limits: SocketLimits, drops: Counter) -> None:
        raw = websocket.scope["extensions"].get(TRANSPORT_EXTENSION)
        if raw is None:
            raise RuntimeError(
                "the device socket needs its transport: serve with server.realtime.serving.uvicorn_config"
            )
        self._ws = websocket
        self._held = _Held(raw)
        self._frames_out = frames_out
        self._limits = limits
        self._drops = drops
        self.close_code: int | None = None
        self.close_reason = ""
        # True while a command is being handled: a 1001 close waits for its reply. (No Event per connection:
        # the future exists only while a close waits.)
        self.busy = False
        self._idle: asyncio.Future[None] | None = None
        self._sealed = False
        self._closing: asyncio.Task[None] | None = None

    # -- writing -------------------------------------------------------------------------

    def send(self, frame: bytes) -> bool:
        """Write a complete frame; a client too far behind is closed with 4008 and False returned."""
        closing = self.close_code is not None and self.close_code != frames.GOING_AWAY
        held = self._held
        raw = held.raw
        if closing or self._sealed or raw.is_closing():
            return True
        if held.bytes + raw.get_write_buffer_size() > self._limits.send_buffer_bytes:
            self._drops.inc()
            self.close(frames.TOO_SLOW, "send queue overflowed")
            return False
        held.bytes += len(frame)
        self._frames_out.write(held, frame)
        return True

    def send_text(self, frame: str) -> None:
        """Write one frame of the connection's own (welcome, replies)."""
        self.send(wire_frame(frame))

    # -- the command in hand -------------------------------------------------------------

    def command_done(self) -> None:
        """The command in hand has replied."""
        self.busy = False
        if self._idle is not None and not self._idle.done():
            self._idle.set_result(None)

    async def _wait_idle(self) -> None:
        """Return once no command is being handled."""
        if self.busy:
            self._idle = asyncio.get_running_loop().create_future()
            await self._idle

    # -- closing -------------------------------------------------------------------------

    def close(self, code: int, reason: str) -> None:
        """Close the connection with `code` (the first code wins), without waiting."""
        if self.close_code is not None:
            return
        self.close_code, self.close_reason = code, reason
        self._closing = asyncio.get_running_loop().create_task(self._close())

    async def closed(self, limit_s: float) -> None:
        """Wait up to `limit_s` for the close frame to go out."""
        if self._closing is None:
            return
        try:
            await asyncio.wait_for(self._closing, limit_s)
        except TimeoutError:
            pass

    async def _close(self) -> None:
        if self.close_code == frames.GOING_AWAY:
            # Shutting down: let the command in hand finish and its reply go out first.
            await self._wait_idle()
        if self.close_code in _DROP_UNSENT_ON_CLOSE:
            self._frames_out.discard(self._held)
            self._held.bytes = 0
        else:
            # The close frame must follow the frames still held for this turn.
            self._frames_out.flush(self._held)
        self._sealed = True
        if self._ws.client_state is WebSocketState.DISCONNECTED:
            # The client left first: nothing to close. Trying would raise inside wait_for, and the exception's
            # traceback would hold its task and frame, and with them this transport, in a reference cycle.
            return
        try:
            closing = self._ws.close(self.close_code or 1000, self.close_reason)
            await asyncio.wait_for(closing, self._limits.close_timeout_s)
        except TimeoutError:
            # The close frame waits behind everything the client has not read: a client that reads nothing
            # would keep the connection forever.
            self._held.raw.abort()
        except (WebSocketDisconnect, RuntimeError, OSError):
            pass  # the client left first
