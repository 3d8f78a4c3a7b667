"""The command router: from a client frame to exactly one reply, effects at most once.

    registry = CommandRegistry()

    @registry.command("item.set_available", SetAvailable, who=Who(permission=Permission.STOCK_WRITE), summary=...)
    async def set_available(ctx: CommandContext, data: SetAvailable) -> ItemOut: ...

`execute` looks the command up (`invalid` when unknown), checks who may send it
(`forbidden`), validates its data (`invalid` with field details) and runs the handler
in one database transaction together with the command log row holding its reply and
the outbox rows of the events it emits. After commit the events are published.

A command id already in the log gets the stored reply, and no effect happens twice. The
log is not looked up first (a round trip on every command): a retry runs its handler
again, the log's primary key refuses the second row, and that rolls the retry's whole
transaction back, effects and events with it; then the stored reply is read.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from channels import frames
from channels.presence import Presence
from channels.unit_of_work import UnitOfWork
from persistence import command_log
from persistence.base import utcnow
from persistence.enums import DeviceKind
from persistence.outages import is_unavailable
from server.auth.permissions import Permission
from server.auth.principals import Principal
from server.errors import ApiError
from server.services import Services
from server.settings import Settings
from server.validation import validation_error

log = logging.getLogger("server.commands")

M = TypeVar("M", bound=BaseModel)


@dataclass(frozen=True)
class Who:
    """Who may send a command: devices of some kinds and/or users holding a permission."""

    devices: frozenset[DeviceKind] = frozenset()
    permission: Permission | None = None

    def allows(self, principal: Principal) -> bool:
        """True when `principal` may send the command."""
        if principal.kind == "device":
            return principal.device_kind in self.devices
        return self.permission is not None and principal.has(self.permission)

    def describe(self) -> str:
        """Who, in words, for the docs."""
        parts = [kind.value for kind in sorted(self.devices)]
        if self.permission is not None:
            parts.append(f"users with {self.permission}")
        return ", ".join(parts) or "nobody"


@dataclass
class CommandContext:
    """What a handler works with: the caller, the settings, presence, the clock, its transaction and its events.

    Deliberately narrow: a handler changes the database and emits events; it never reaches the
    broker, the hub or the sockets, which see its events only after commit.
    """

    principal: Principal
    settings: Settings
    presence: Presence
    uow: UnitOfWork
    command_id: str
    # The handler's "now", what it stamps rows and deadlines with, so that a test can move time without patching
    # modules.
    now: Callable[[], datetime] = utcnow
    # The locale the sender's connection chose in its hello, one its branch offers (None: the branch's default).
    locale: str | None = None
    # The moment dayparts are read at (Services.clock); None: `now`. Only the menu's time of day follows it, so
    # that rows and deadlines stay in the time the workers compare them with.
    menu_clock: Callable[[], datetime] | None = None

    def menu_now(self) -> datetime:
        """The moment the branch's dayparts are read at: which items are sold now."""
        return (self.menu_clock or self.now)()

    @property
    def session(self) -> AsyncSession:
        """The session of the command's transaction."""
        return self.uow.session

    def emit(self, channel: str, event: str, data: dict[str, Any]) -> None:
        """Record an event in this transaction; it is published once the transaction commits."""
        self.uow.emit(channel, event, data)


Handler = Callable[[CommandContext, Any], Awaitable[BaseModel | dict[str, Any]]]


@dataclass(frozen=True)
class CommandSpec:
    """A registered command: its data model, who may send it, and what it answers."""

    name: str
    model: type[BaseModel]
    handler: Handler
    who: Who
    summary: str
    reply: type[BaseModel] | None
    errors: tuple[str, ...]
    # A read changes nothing, so it is not logged: a retry reads afresh (and no copy of a menu is kept).
    read_only: bool = False

    @property
    def description(self) -> str:
        """The handler's docstring."""
        return (self.handler.__doc__ or "").strip()


class CommandRegistry:
    """Command type -> handler, data model and audience."""

    def __init__(self) -> None:
        self.commands: dict[str, CommandSpec] = {}

    def command(
        self,
        name: str,
        model: type[M],
        *,
        who: Who,
        summary: str,
        reply: type[BaseModel] | None = None,
        errors: tuple[str, ...] = (),
        read_only: bool = False,
    ) -> Callable[[Callable[[CommandContext, M], Awaitable[Any]]], Handler]:
        """Register a handler for command `name`; a `read_only` one changes nothing and is not logged."""

        def register(handler: Callable[[CommandContext, M], Awaitable[Any]]) -> Handler:
            if name in self.commands:
                raise ValueError(f"command {name} registered twice")
            self.commands[name] = CommandSpec(name, model, handler, who, summary, reply, errors, read_only)
            return handler

        return register

    def include(self, other: CommandRegistry) -> None:
        """Add every command of another registry (one per area of handlers)."""
        for spec in other.commands.values():
            if spec.name in self.commands:
                raise ValueError(f"command {spec.name} registered twice")
            self.commands[spec.name] = spec


def _as_data(result: BaseModel | dict[str, Any]) -> dict[str, Any]:
    return result.model_dump(mode="json") if isinstance(result, BaseModel) else result


def _reply_frame(frame_id: str, reply: dict[str, Any]) -> str:
    if reply.get("ok"):
        return frames.reply_ok(frame_id, reply.get("data"))
    error = reply.get("error") or {}
    return frames.reply_error(frame_id, error.get("code", "internal"), error.get("message", ""), error.get("details"))


def _error_reply(error: ApiError) -> dict[str, Any]:
    return {"ok": False, "error": error.body()}


async def execute(
    registry: CommandRegistry,
    services: Services,
    principal: Principal,
    frame: frames.ClientFrame,
    locale: str | None = None,
) -> tuple[str, str]:
    """Run one command frame from a connection of `locale`; returns the reply frame text and its outcome (`ok` or an
    error code)."""
    assert frame.id is not None
    spec = registry.commands.get(frame.type)
    if spec is None:
        return frames.reply_error(frame.id, "invalid", f"unknown command {frame.type}", {"type": frame.type}), "invalid"
    if not spec.who.allows(principal):
        message = f"{frame.type} may only be sent by {spec.who.describe()}"
        return frames.reply_error(frame.id, "forbidden", message), "forbidden"
    try:
        data = spec.model.model_validate(frame.data)
    except ValidationError as exc:
        error = validation_error(exc, "data")
        return frames.reply_error(frame.id, error.code, error.message, error.details), "invalid"

    try:
        reply = await _run(spec, services, principal, frame.id, data, locale)
    except Exception as exc:
        context = {"command_id": frame.id, "principal": principal.key}
        if is_unavailable(exc):
            log.warning("command %s: database or Redis unavailable: %s", frame.type, exc, extra=context)
            message = "the database or Redis is unavailable; nothing was changed, try again"
            return frames.reply_error(frame.id, "unavailable", message), "unavailable"
        log.exception("command %s failed", frame.type, extra=context)
        return frames.reply_error(frame.id, "internal", "internal error"), "internal"
    outcome = "ok" if reply.get("ok") else str(reply["error"]["code"])
    return _reply_frame(frame.id, reply), outcome


def _context(
    services: Services, principal: Principal, uow: UnitOfWork, command_id: str, locale: str | None
) -> CommandContext:
    """The context a handler of the sender's command runs in: real time for its rows, the services' clock for the
    menu's dayparts."""
    return CommandContext(
        principal, services.settings, services.presence, uow, command_id, locale=locale, menu_clock=services.clock
    )


async def _run(
    spec: CommandSpec,
    services: Services,
    principal: Principal,
    command_id: str,
    data: BaseModel,
    locale: str | None = None,
) -> dict[str, Any]:
    """The command's reply, its effect and events committed (and published) with it, or refused."""
    if spec.read_only:
        try:
            async with UnitOfWork(services.db, services.relay) as uow:
                ctx = _context(services, principal, uow, command_id, locale)
                return {"ok": True, "data": _as_data(await spec.handler(ctx, data))}
        except ApiError as error:
            return _error_reply(error)
    try:
        async with UnitOfWork(services.db, services.relay) as uow:
            ctx = _context(services, principal, uow, command_id, locale)
            reply = {"ok": True, "data": _as_data(await spec.handler(ctx, data))}
            uow.log(command_log.Entry(principal.key, command_id, spec.name, reply))
        return reply
    except ApiError as error:
        refusal = error
    except IntegrityError:
        # Either the command id is in the log already (a retry, or the same id twice at once): its reply;
        stored = await _stored_reply(services, principal, command_id)
        if stored is not None:
            return stored
        # or the handler's change collides with existing data, which REST calls a conflict too.
        refusal = ApiError("conflict", "the change conflicts with existing data")
    except Exception as exc:
        # A retry's handler may fail where the first run did not (a bug the new state reaches): the stored reply
        # is still the answer. Not when the database is unreachable: then there is nothing to read either.
        if is_unavailable(exc):
            raise
        stored = await _stored_reply(services, principal, command_id)
        if stored is None:
            raise
        log.warning(
            "command %s: its retry failed; answered with the stored reply",
            spec.name,
            exc_info=True,
            extra={"command_id": command_id, "principal": principal.key},
        )
        return stored
    # The effect was rolled back; the refusal is the first reply, and a retry gets it again. Not an outage's: a
    # retry after recovery must run afresh.
    reply = _error_reply(refusal)
    if refusal.code == "unavailable":
        return reply
    try:
        async with UnitOfWork(services.db, services.relay) as uow:
            uow.log(command_log.Entry(principal.key, command_id, spec.name, reply))
    except IntegrityError:
        return await _stored_reply(services, principal, command_id) or reply
    return reply


async def _stored_reply(services: Services, principal: Principal, command_id: str) -> dict[str, Any] | None:
    async with services.db.session() as session:
        return await command_log.stored_reply(session, principal.key, command_id)
