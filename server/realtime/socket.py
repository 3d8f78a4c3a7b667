"""The device WebSocket at `{API_V1_STR}/ws`: hello, then commands in and events out (PROTOCOL.md).

One connection is the handshake (a `hello` with a token within 10 s, then `welcome` and
each channel's missed events or snapshot) and a reader that answers every frame with
exactly one reply. Nothing waits to write: replies and the hub's events are complete
frames written straight into the socket's transport (server/realtime/ws_protocol.py hands it
over), and a client whose unsent bytes pass `SEND_BUFFER_BYTES` is closed as too slow.
Once a close is decided nothing more is written, except while the server goes away
(1001), when the command in hand still replies; the close frame follows what was
written before it.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections import deque
from collections.abc import Callable
from typing import Any

from pydantic import BaseModel, Field, ValidationError
from starlette.websockets import WebSocket, WebSocketDisconnect, WebSocketState

from channels import frames, names
from channels.hub import ChannelStatus, Subscriber
from channels.rules import auto_channels, may_subscribe
from channels.wire import wire_frame
from persistence.base import rfc3339, utcnow
from persistence.outages import is_unavailable
from server.auth.principals import Principal, principal_for_claims
from server.auth.tokens import TokenClaims
from server.commands import registry
from server.commands.router import execute
from server.errors import ApiError
from server.realtime.ws_protocol import TRANSPORT_EXTENSION
from server.services import Services
from server.validation import validation_error

log = logging.getLogger("server.realtime.socket")

HELLO_TIMEOUT_S = 10.0
# Bytes written but not yet taken by the client's socket (beyond what the kernel's buffers hold): past
# this the client is too slow and is closed with 4008. About a thousand ordinary events.
SEND_BUFFER_BYTES = 1 << 20
# Missed events replayed per channel on hello or subscribe; a longer gap gets a snapshot, so that
# catching up (a device's channels on hello, plus live events meanwhile) stays far below the bound.
MAX_REPLAY = 256
# How long a close frame may wait behind unread frames before the connection is dropped instead.
CLOSE_TIMEOUT_S = 5.0
# Closes for a client that may no longer see the data, or cannot keep up: frames not yet written are dropped.
_DROP_UNSENT_ON_CLOSE = (frames.UNAUTHORIZED, frames.FORBIDDEN, frames.TOO_SLOW)
BAD_FRAME_WINDOW_S = 60.0
# Commands a second per connection, and the burst a device may use at once.
COMMAND_RATE_PER_S = 20.0
COMMAND_BURST = 40
# Commands the connection itself answers; the rest go to the command registry.
CONNECTION_COMMANDS = ("subscribe", "unsubscribe", "auth.refresh")


class Resume(BaseModel):
    """Where a client left a channel."""

    seq: int = Field(ge=0)
    epoch: str = Field(min_length=1, max_length=64)


class Hello(BaseModel):
    """The first frame."""

    type: str
    token: str = Field(min_length=1)
    resume: dict[str, Resume] = Field(default_factory=dict)


class SubscribeData(BaseModel):
    """`subscribe`: a channel, and optionally where the client left it."""

    channel: str
    since: int | None = Field(default=None, ge=0)
    epoch: str | None = Field(default=None, max_length=64)


class UnsubscribeData(BaseModel):
    """`unsubscribe`: a channel."""

    channel: str


class RefreshData(BaseModel):
    """`auth.refresh`: a new access token for the same principal."""

    token: str = Field(min_length=1)


# Closes after which nothing queued is sent: the client cannot keep up, or may no longer see the data.
class _Transport:
    """The hub's handle on this connection: complete frames written straight into the socket's transport.

    `close` records the first code and starts the close (`on_close`); after it nothing more
    is written, except while going away (1001), when the command in hand may still reply.
    Once the close frame is on its way (`sealed`), nothing at all.
    """

    __slots__ = ("_raw", "_services", "_on_close", "close_code", "close_reason", "busy", "_idle", "sealed")

    def __init__(self, raw: asyncio.Transport, services: Services, on_close: Callable[[], None]) -> None:
        self._raw = raw
        self._services = services
        self._on_close = on_close
        self.close_code: int | None = None
        self.close_reason = ""
        # True while a command is being handled: a 1001 close waits for its reply. (No Event per connection:
        # the future exists only while a close waits.)
        self.busy = False
        self._idle: asyncio.Future[None] | None = None
        self.sealed = False

    def send(self, frame: bytes) -> bool:
        """Write a complete frame; a client too far behind is closed with 4008 and False returned."""
        closing = self.close_code is not None and self.close_code != frames.GOING_AWAY
        if closing or self.sealed or self._raw.is_closing():
            return True
        if self._raw.get_write_buffer_size() > SEND_BUFFER_BYTES:
            self._services.metrics.send_queue_drops.inc()
            self.close(frames.TOO_SLOW, "send queue overflowed")
            return False
        self._services.frames_out.write(self._raw, frame)
        return True

    def command_done(self) -> None:
        """The command in hand has replied."""
        self.busy = False
        if self._idle is not None and not self._idle.done():
            self._idle.set_result(None)

    async def wait_idle(self) -> None:
        """Return once no command is being handled."""
        if self.busy:
            self._idle = asyncio.get_running_loop().create_future()
            await self._idle

    def flush(self) -> None:
        """Write the frames still held for this turn (before the close frame, which must follow them)."""
        self._services.frames_out.flush(self._raw)

    def discard(self) -> None:
        """Drop the frames still held for this turn (a client that may not see them, or cannot keep up)."""
        self._services.frames_out.discard(self._raw)

    def abort(self) -> None:
        """Drop the connection without a close handshake."""
        self._raw.abort()

    def detach(self) -> None:
        """Forget the connection's close callback (it refers back to the connection: no cycle to collect)."""
        self._on_close = _ignore

    def send_text(self, frame: str) -> None:
        """Write one frame of the connection's own (welcome, replies)."""
        self.send(wire_frame(frame))

    def close(self, code: int, reason: str) -> None:
        """Close the connection with `code` (the first code wins)."""
        if self.close_code is not None:
            return
        self.close_code, self.close_reason = code, reason
        self._on_close()


def _ignore() -> None:
    """A close callback for a connection that has finished."""


class _Limits:
    """Per-connection limits: bad frames a minute (then 4000) and a command token bucket (then 4029)."""

    __slots__ = ("_max_bad", "_bad", "_tokens", "_stamp", "refused_in_a_row")

    def __init__(self, max_bad_frames: int) -> None:
        self._max_bad = max_bad_frames
        self._bad: deque[float] | None = None  # made at the first bad frame: most connections never send one
        self._tokens = float(COMMAND_BURST)
        self._stamp = time.monotonic()
        self.refused_in_a_row = 0

    def bad_frame(self) -> bool:
        """Count a bad frame; True when the connection has abused the protocol enough to be closed."""
        now = time.monotonic()
        bad = self._bad = self._bad if self._bad is not None else deque()
        bad.append(now)
        while bad and now - bad[0] > BAD_FRAME_WINDOW_S:
            bad.popleft()
        return len(bad) > self._max_bad

    def take(self) -> bool:
        """Take a command token; False when the client sends faster than allowed."""
        now = time.monotonic()
        self._tokens = min(COMMAND_BURST, self._tokens + (now - self._stamp) * COMMAND_RATE_PER_S)
        self._stamp = now
        if self._tokens >= 1:
            self._tokens -= 1
            self.refused_in_a_row = 0
            return True
        self.refused_in_a_row += 1
        return False


class Connection:
    """One authenticated device or user socket."""

    __slots__ = (
        "ws",
        "services",
        "id",
        "transport",
        "_closing",
        "limits",
        "principal",
        "subscriber",
        "expires_at",
        "_expiry",
    )

    def __init__(self, websocket: WebSocket, services: Services) -> None:
        self.ws = websocket
        self.services = services
        self.id = uuid.uuid4().hex
        raw = websocket.scope["extensions"].get(TRANSPORT_EXTENSION)
        if raw is None:
            raise RuntimeError(
                "the device socket needs its transport: serve with server.realtime.serving.uvicorn_config"
            )
        self.transport = _Transport(raw, services, self._start_closing)
        self._closing: asyncio.Task[None] | None = None
        self.limits = _Limits(services.settings.WS_MAX_BAD_FRAMES)
        self.principal: Principal | None = None
        self.subscriber: Subscriber | None = None
        self.expires_at = 0.0
        self._expiry: asyncio.TimerHandle | None = None

    # -- handshake -----------------------------------------------------------------------

    async def handshake(self) -> bool:
        """Wait for `hello`, authenticate, subscribe and send `welcome` with what each channel missed."""
        try:
            message = await asyncio.wait_for(self.ws.receive(), HELLO_TIMEOUT_S)
        except TimeoutError:
            await self.ws.close(frames.UNAUTHORIZED, f"no hello within {HELLO_TIMEOUT_S:g} s")
            return False
        if message["type"] == "websocket.disconnect":
            return False
        try:
            text = message.get("text")
            if text is None:
                raise frames.BadFrame("the first frame must be a text frame")
            hello = Hello.model_validate(frames.parse_client_frame(text).raw)
            if hello.type != "hello":
                raise ApiError("unauthorized", "the first frame must be hello")
            claims = self.services.tokens.decode(hello.token, "access")
            principal = await self._principal(claims)
        except (frames.BadFrame, ValidationError):
            await self.ws.close(frames.UNAUTHORIZED, "the first frame must be a hello with a token")
            return False
        except ApiError as error:
            code = frames.FORBIDDEN if error.code == "forbidden" else frames.UNAUTHORIZED
            await self.ws.close(code, error.message)
            return False
        except Exception as exc:
            if not is_unavailable(exc):
                raise
            await self.ws.close(1011, "the server cannot reach its database; retry shortly")
            return False

        self.principal = principal
        self.subscriber = Subscriber(self.id, principal.key, self.transport, principal.session_id)
        self._expire_at(claims)
        hub = self.services.hub
        hub.attach(self.subscriber)
        # Busy until the welcome is out: a shutdown meanwhile (1001) closes after it, not before.
        self.transport.busy = True
        statuses: dict[str, ChannelStatus] = {}
        prepared = []
        try:
            for channel in auto_channels(principal):
                since = hello.resume.get(channel)
                ready = await hub.prepare(
                    self.subscriber, channel, (since.seq, since.epoch) if since else None, max_replay=MAX_REPLAY
                )
                statuses[channel] = ready.status
                prepared.append((channel, ready))
        except Exception:
            log.exception("could not subscribe %s on hello", principal.key)
            self.transport.command_done()
            if self._expiry is not None:
                self._expiry.cancel()
            await hub.detach(self.subscriber)
            await self.ws.close(1011, "the server cannot reach its broker or database; retry shortly")
            return False
        if principal.kind == "device" and principal.branch_id is not None:
            # Before the welcome: a device that has its welcome counts as online (a kiosk may start a payment on
            # its terminal the moment the terminal is welcomed).
            try:
                await self.services.presence.connected(principal.id, principal.branch_id, self.id)
            except Exception as exc:
                # The device works without it; the next presence refresh registers it, within refresh_s.
                log.warning("presence update for %s failed: %s", principal.key, exc)
        self.transport.send_text(
            frames.welcome(
                {
                    "connection_id": self.id,
                    "principal": principal.public(),
                    "server_time": rfc3339(utcnow()),
                    "heartbeat_s": _number(self.services.settings.WS_HEARTBEAT_S),
                    "channels": {channel: status.public() for channel, status in statuses.items()},
                }
            )
        )
        for channel, ready in prepared:
            hub.complete(self.subscriber, channel, ready)
        self.transport.command_done()
        return True

    async def _principal(self, claims: TokenClaims) -> Principal:
        async with self.services.db.session() as session:
            return await principal_for_claims(session, claims)

    def _expire_at(self, claims: TokenClaims) -> None:
        # A token that expires without an `auth.refresh` ends the connection with 4001 (a timer, not a task:
        # thousands of idle connections each keep one).
        if self._expiry is not None:
            self._expiry.cancel()
        delay = max(0.0, (claims.expires_at - utcnow()).total_seconds())
        self._expiry = asyncio.get_running_loop().call_later(
            delay, self.transport.close, frames.UNAUTHORIZED, "token expired"
        )

    # -- reading -------------------------------------------------------------------------

    async def read(self) -> None:
        """Answer every frame until the client leaves or the connection is closed."""
        while self.transport.close_code is None:
            try:
                message = await self.ws.receive()
            except (WebSocketDisconnect, RuntimeError):
                return
            if message["type"] == "websocket.disconnect" or self.transport.close_code is not None:
                # Once the server has decided to close, a frame that arrives meanwhile is not acted on.
                return
            text = message.get("text")
            if text is None:
                self._bad(None, "frames must be text")
                continue
            if len(text.encode()) > self.services.settings.WS_MAX_MESSAGE_BYTES:
                self.transport.close(frames.TOO_BIG, "frame too big")
                return
            self.transport.busy = True
            try:
                await self._handle(text)
            finally:
                self.transport.command_done()

    def _bad(self, frame_id: str | None, message: str, details: dict[str, Any] | None = None) -> None:
        self.transport.send_text(frames.reply_error(frame_id, "invalid", message, details))
        if self.limits.bad_frame():
            self.transport.close(frames.PROTOCOL_ABUSE, "too many bad frames")

    async def _handle(self, text: str) -> None:
        try:
            frame = frames.parse_client_frame(text)
        except frames.BadFrame as bad:
            self._bad(bad.frame_id, bad.message)
            return
        if frame.type == "ping":
            self.transport.send_text(frames.PONG)
            return
        if frame.type == "hello":
            self._bad(frame.id, "hello was already accepted")
            return
        assert frame.id is not None
        if frame.type not in registry.commands and frame.type not in CONNECTION_COMMANDS:
            self._bad(frame.id, f"unknown command {frame.type}", {"type": frame.type})
            return
        if not self.limits.take():
            self.transport.send_text(frames.reply_error(frame.id, "rate_limited", "too many commands; slow down"))
            if self.limits.refused_in_a_row > COMMAND_BURST:
                self.transport.close(frames.RATE_LIMITED, "rate limited")
            return
        started = time.perf_counter()
        reply, outcome = await self._dispatch(frame)
        if reply is not None:
            self.transport.send_text(reply)
        # Only known command types get here, so clients cannot create label values.
        self.services.metrics.commands.labels(frame.type, outcome).inc()
        self.services.metrics.command_latency.labels(frame.type).observe(time.perf_counter() - started)

    async def _dispatch(self, frame: frames.ClientFrame) -> tuple[str | None, str]:
        assert self.principal is not None and frame.id is not None
        try:
            if frame.type == "subscribe":
                await self._subscribe(frame.id, SubscribeData.model_validate(frame.data))
                return None, "ok"
            if frame.type == "unsubscribe":
                return await self._unsubscribe(frame.id, UnsubscribeData.model_validate(frame.data)), "ok"
            if frame.type == "auth.refresh":
                reply = await self._refresh(frame.id, RefreshData.model_validate(frame.data))
                return reply, "ok" if reply is not None else "unauthorized"
        except ValidationError as exc:
            error = validation_error(exc, "data")
            return frames.reply_error(frame.id, error.code, error.message, error.details), "invalid"
        except ApiError as error:
            return frames.reply_error(frame.id, error.code, error.message, error.details), error.code
        except Exception as exc:
            # As for the registry's commands: an outage is `unavailable` and the connection stays as it was.
            if not is_unavailable(exc):
                log.exception("%s failed for %s", frame.type, self.principal.key)
                return frames.reply_error(frame.id, "internal", "internal error"), "internal"
            log.warning("%s: database or Redis unavailable: %s", frame.type, exc)
            message = "the database or Redis is unavailable; nothing was changed, try again"
            return frames.reply_error(frame.id, "unavailable", message), "unavailable"
        return await execute(registry, self.services, self.principal, frame)

    async def _subscribe(self, frame_id: str, data: SubscribeData) -> None:
        assert self.principal is not None and self.subscriber is not None
        channel = names.parse(data.channel)
        if channel is None:
            raise ApiError("invalid", f"no such channel {data.channel!r}", {"channel": data.channel})
        if not may_subscribe(self.principal, channel):
            raise ApiError("forbidden", f"you may not subscribe to {data.channel}", {"channel": data.channel})
        since = (data.since, data.epoch) if data.since is not None and data.epoch else None
        # The reply goes first; the missed events or snapshot follow it, then live events.
        try:
            prepared = await self.services.hub.prepare(self.subscriber, channel.name, since, max_replay=MAX_REPLAY)
        except Exception as exc:
            log.warning("subscribe to %s failed: %s", channel.name, exc)
            raise ApiError("unavailable", "the broker or database is unavailable; try again") from exc
        self.transport.send_text(frames.reply_ok(frame_id, {"channel": channel.name, **prepared.status.public()}))
        self.services.hub.complete(self.subscriber, channel.name, prepared)

    async def _unsubscribe(self, frame_id: str, data: UnsubscribeData) -> str:
        assert self.subscriber is not None
        await self.services.hub.leave(self.subscriber, data.channel)
        return frames.reply_ok(frame_id, {"channel": data.channel})

    async def _refresh(self, frame_id: str, data: RefreshData) -> str | None:
        assert self.principal is not None and self.subscriber is not None
        claims = self.services.tokens.decode(data.token, "access")
        if claims.subject != self.principal.key:
            raise ApiError("unauthorized", "the token belongs to another principal")
        principal = await self._principal(claims)
        if _access(principal) != _access(self.principal):
            # Its subscriptions were checked against the access of before; the change's own close may have been lost.
            self.transport.close(frames.UNAUTHORIZED, "access changed; reconnect")
            return None
        # The new token may carry another session (a fresh login): revocations follow the new one.
        self.principal = principal
        self.subscriber.session_id = principal.session_id
        self._expire_at(claims)
        return frames.reply_ok(frame_id, {"expires_at": rfc3339(claims.expires_at)})

    # -- closing -------------------------------------------------------------------------

    def _start_closing(self) -> None:
        self._closing = asyncio.get_running_loop().create_task(self._close())

    async def _close(self) -> None:
        transport = self.transport
        if transport.close_code == frames.GOING_AWAY:
            # Shutting down: let the command in hand finish and its reply go out first.
            await transport.wait_idle()
        if transport.close_code in _DROP_UNSENT_ON_CLOSE:
            transport.discard()
        else:
            transport.flush()
        transport.sealed = True
        if self.ws.client_state is WebSocketState.DISCONNECTED:
            # The client left first: nothing to close. Trying would raise inside wait_for, and the exception's
            # traceback would hold its task and frame, and with them this connection, in a reference cycle.
            return
        try:
            await asyncio.wait_for(self.ws.close(transport.close_code or 1000, transport.close_reason), CLOSE_TIMEOUT_S)
        except TimeoutError:
            # The close frame waits behind everything the client has not read: a client that reads nothing
            # would keep the connection forever.
            transport.abort()
        except (WebSocketDisconnect, RuntimeError, OSError):
            pass  # the client left first

    async def closed(self, limit_s: float) -> None:
        """Wait up to `limit_s` for the close frame to go out."""
        if self._closing is None:
            return
        try:
            await asyncio.wait_for(self._closing, limit_s)
        except TimeoutError:
            pass

    async def finish(self) -> None:
        """Leave every channel and announce the device offline."""
        if self._expiry is not None:
            self._expiry.cancel()
        self.transport.detach()
        if self.subscriber is not None:
            await self.services.hub.detach(self.subscriber)
        principal = self.principal
        if principal is not None and principal.kind == "device" and principal.branch_id is not None:
            try:
                await self.services.presence.disconnected(principal.id, principal.branch_id, self.id)
            except Exception as exc:
                # The presence sweep announces it offline once its entry expires.
                log.warning("presence update for %s failed: %s", principal.key, exc)


def _access(principal: Principal) -> tuple[object, ...]:
    """What a connection's subscriptions and commands were allowed by (a role's name is not part of it)."""
    return (principal.branch_id, principal.permissions, principal.device_kind)


def _number(value: float) -> int | float:
    """`20` rather than `20.0` where a setting holds a whole number: typed clients read it as an integer."""
    return int(value) if value.is_integer() else value


async def device_socket(websocket: WebSocket) -> None:
    """The WebSocket endpoint."""
    services: Services = websocket.app.state.services
    await websocket.accept()
    # The scope lives as long as the socket and nothing reads the handshake's headers again: let them go.
    websocket.scope["headers"] = []
    connection = Connection(websocket, services)
    if not await connection.handshake():
        # The transport's close callback refers back to the connection: a cycle only a full collection frees.
        connection.transport.detach()
        return
    assert connection.principal is not None
    gauge = services.metrics.connections.labels(str(connection.principal.device_kind or "user"))
    gauge.inc()
    try:
        await connection.read()
    finally:
        connection.transport.close(1000, "")
        await connection.closed(services.settings.SHUTDOWN_GRACE_S)
        gauge.dec()
        await connection.finish()
