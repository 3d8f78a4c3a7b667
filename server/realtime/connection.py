"""One device socket's conversation (PROTOCOL.md): hello, then commands in and events out.

The handshake is a `hello` with a token within `WS_HELLO_TIMEOUT_S`, then `welcome` and
each channel's missed events (at most `WS_MAX_REPLAY`, else a snapshot). Then a reader
answers every frame with exactly one reply: the connection's own commands (subscribe,
unsubscribe, auth.refresh) here, the rest through the command registry. Everything it
sends goes through its transport (server/realtime/transport.py).
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from typing import Any

from pydantic import BaseModel, Field, ValidationError, field_validator
from sqlalchemy import select
from starlette.websockets import WebSocket, WebSocketDisconnect

from channels import frames, names
from channels.hub import ChannelStatus, Subscriber
from channels.rules import auto_channels, may_subscribe
from persistence.base import rfc3339, utcnow
from persistence.outages import is_unavailable
from persistence.tables import Branch
from server.auth.principals import Principal
from server.auth.tokens import TokenClaims
from server.commands.router import CommandRegistry, execute
from server.domain.translations import MAX_LOCALE_LENGTH, InvalidLocale, normalize_locale
from server.errors import ApiError
from server.realtime.limits import Allowance, SocketLimits
from server.realtime.transport import SocketTransport
from server.services import Services
from server.validation import validation_error

log = logging.getLogger("server.realtime.connection")

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
    # The customer's language; one the branch does not offer (or no code at all) is not refused: the welcome says
    # which the connection uses.
    locale: str | None = Field(
        default=None,
        description="the customer's language (`de`, `pt-BR`): the menu snapshot's, `menu.get`'s and new carts'",
    )

    @field_validator("locale", mode="before")
    @classmethod
    def _any_locale(cls, value: object) -> object:
        # Anything but a locale code's length of text is no locale asked: the hello stands.
        return value if isinstance(value, str) and len(value) <= MAX_LOCALE_LENGTH else None


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


class Connection:
    """One authenticated device or user socket."""

    __slots__ = (
        "ws",
        "services",
        "commands",
        "limits",
        "id",
        "transport",
        "allowance",
        "principal",
        "subscriber",
        "_expiry",
    )

    def __init__(
        self, websocket: WebSocket, services: Services, commands: CommandRegistry, limits: SocketLimits
    ) -> None:
        self.ws = websocket
        self.services = services
        self.commands = commands
        self.limits = limits
        self.id = uuid.uuid4().hex
        self.transport = SocketTransport(websocket, services.frames_out, limits, services.metrics.send_queue_drops)
        self.allowance = Allowance(limits)
        self.principal: Principal | None = None
        self.subscriber: Subscriber | None = None
        self._expiry: asyncio.TimerHandle | None = None

    # -- handshake -----------------------------------------------------------------------

    async def handshake(self) -> bool:
        """Wait for `hello`, authenticate, subscribe and send `welcome` with what each channel missed."""
        try:
            message = await asyncio.wait_for(self.ws.receive(), self.limits.hello_timeout_s)
        except TimeoutError:
            await self.ws.close(frames.UNAUTHORIZED, f"no hello within {self.limits.hello_timeout_s:g} s")
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
            principal = await self.services.principals.of(claims)
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
        try:
            self.subscriber.locale = await self._locale(principal, hello.locale)
        except Exception as exc:
            if not is_unavailable(exc):
                raise
            await self.ws.close(1011, "the server cannot reach its database; retry shortly")
            return False
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
                resume = (since.seq, since.epoch) if since else None
                ready = await hub.prepare(self.subscriber, channel, resume)
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
                    "locale": self.subscriber.locale,
                }
            )
        )
        for channel, ready in prepared:
            hub.complete(self.subscriber, channel, ready)
        self.transport.command_done()
        return True

    async def _locale(self, principal: Principal, asked: str | None) -> str | None:
        """The locale the connection uses for `asked` (the hello's): it when the principal's branch offers it, else
        None (the branch's default); no read when nothing was asked."""
        if asked is None or principal.branch_id is None:
            return None
        try:
            locale = normalize_locale(asked)
        except InvalidLocale:
            return None
        async with self.services.db.session() as session:
            offered = await session.scalar(select(Branch.locales).where(Branch.id == principal.branch_id))
        return locale if offered and locale in offered else None

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
            if len(text.encode()) > self.limits.max_message_bytes:
                self.transport.close(frames.TOO_BIG, "frame too big")
                return
            self.transport.busy = True
            try:
                await self._handle(text)
            finally:
                self.transport.command_done()

    def _bad(self, frame_id: str | None, message: str, details: dict[str, Any] | None = None) -> None:
        self.transport.send_text(frames.reply_error(frame_id, "invalid", message, details))
        if self.allowance.bad_frame():
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
        if frame.type not in self.commands.commands and frame.type not in CONNECTION_COMMANDS:
            self._bad(frame.id, f"unknown command {frame.type}", {"type": frame.type})
            return
        if not self.allowance.take():
            self.transport.send_text(frames.reply_error(frame.id, "rate_limited", "too many commands; slow down"))
            if self.allowance.exhausted():
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
        locale = self.subscriber.locale if self.subscriber is not None else None
        return await execute(self.commands, self.services, self.principal, frame, locale)

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
            prepared = await self.services.hub.prepare(self.subscriber, channel.name, since)
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
        principal = await self.services.principals.of(claims)
        if _access(principal) != _access(self.principal):
            # Its subscriptions were checked against the access of before; the change's own close may have been lost.
            self.transport.close(frames.UNAUTHORIZED, "access changed; reconnect")
            return None
        # The new token may carry another session (a fresh login): revocations follow the new one.
        self.principal = principal
        self.subscriber.session_id = principal.session_id
        self._expire_at(claims)
        return frames.reply_ok(frame_id, {"expires_at": rfc3339(claims.expires_at)})

    # -- leaving -------------------------------------------------------------------------

    async def finish(self) -> None:
        """Leave every channel and announce the device offline."""
        if self._expiry is not None:
            self._expiry.cancel()
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
