"""The command router (server/commands/router.py): one reply per command, its effect at most once, its events
in the outbox of the same transaction and published after commit.

The commands here are the test's own (a `Kit`), so that every way a handler can end is tried on purpose.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections import Counter
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

import pytest
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import func, select
from sqlalchemy.orm import DeclarativeBase

from channels import names
from channels.frames import parse_client_frame
from channels.hub import Subscriber
from persistence import command_log
from persistence.base import utcnow
from persistence.database import Database
from persistence.enums import DeviceKind
from persistence.tables import Branch, Category, CommandLogEntry, OutboxEvent
from server.app import build_services
from server.auth.permissions import Permission
from server.auth.principals import Principal, authenticate
from server.commands.router import CommandContext, CommandRegistry, Who, execute
from server.errors import ApiError
from server.services import Services
from server.settings import Settings
from tests.channels.hub_helpers import frame_text, join
from tests.live import free_port
from tests.world import Actor, World

# Every await of a test is bounded by this, so a lost reply fails the test instead of hanging the suite.
LIMIT_S = 10
SECRET = "postgres://kiosk:hunter2@db.internal"


class AddCategory(BaseModel):
    """A category to add, and the branch whose menu channel hears of it."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=120)
    branch_id: int = Field(ge=1)


@dataclass
class Kit:
    """Test commands, and how often each handler ran."""

    registry: CommandRegistry = field(default_factory=CommandRegistry)
    runs: Counter[str] = field(default_factory=Counter)
    # When set, `category.add` waits here before writing, so that two executions overlap.
    barrier: asyncio.Barrier | None = None


async def _add_category(ctx: CommandContext, data: AddCategory) -> dict[str, Any]:
    category = Category(name=data.name)
    ctx.session.add(category)
    await ctx.session.flush()
    ctx.emit(names.branch_menu(data.branch_id), "category.added", {"category_id": category.id, "name": data.name})
    return {"category_id": category.id, "name": data.name}


@pytest.fixture
def kit() -> Kit:
    """A registry of commands that add a category and then succeed, refuse, crash or collide."""
    kit = Kit()
    who = Who(devices=frozenset({DeviceKind.KIOSK}), permission=Permission.STOCK_WRITE)

    @kit.registry.command("category.add", AddCategory, who=who, summary="add a category")
    async def add(ctx: CommandContext, data: AddCategory) -> dict[str, Any]:
        kit.runs["category.add"] += 1
        if kit.barrier is not None:
            await asyncio.wait_for(kit.barrier.wait(), LIMIT_S)
        return await _add_category(ctx, data)

    @kit.registry.command("category.add_then_refuse", AddCategory, who=who, summary="add, then refuse")
    async def add_then_refuse(ctx: CommandContext, data: AddCategory) -> dict[str, Any]:
        kit.runs["category.add_then_refuse"] += 1
        await _add_category(ctx, data)
        raise ApiError("conflict", "refused after writing", {"name": data.name})

    @kit.registry.command("category.add_then_crash", AddCategory, who=who, summary="add, then crash")
    async def add_then_crash(ctx: CommandContext, data: AddCategory) -> dict[str, Any]:
        kit.runs["category.add_then_crash"] += 1
        await _add_category(ctx, data)
        raise RuntimeError(f"could not reach {SECRET}")

    @kit.registry.command("branch.add_alpha", AddCategory, who=who, summary="add a branch named like another")
    async def add_alpha(ctx: CommandContext, data: AddCategory) -> dict[str, Any]:
        ctx.session.add(Branch(name="Alpha", currency="EUR", timezone="Europe/Berlin"))
        await ctx.session.flush()
        return {}

    return kit


async def principal_of(services: Services, actor: Actor) -> Principal:
    """The principal of a world actor, authenticated from its token as the socket does."""
    token = actor.headers["Authorization"].split()[1]
    async with services.db.session() as session:
        return await authenticate(session, services.tokens, token)


def device(kind: DeviceKind, branch_id: int) -> Principal:
    """A device principal (no device row is needed to route a command)."""
    return Principal(kind="device", id=7, branch_id=branch_id, device_kind=kind)


async def send(
    registry: CommandRegistry,
    services: Services,
    principal: Principal,
    command: str,
    data: dict[str, Any],
    command_id: str = "c1",
) -> tuple[dict[str, Any], str]:
    """Execute one command frame; returns the parsed reply frame and the outcome."""
    frame = parse_client_frame(json.dumps({"type": command, "id": command_id, "data": data}))
    text, outcome = await asyncio.wait_for(execute(registry, services, principal, frame), LIMIT_S)
    return json.loads(text), outcome


async def count(db: Database, table: type[DeclarativeBase]) -> int:
    """How many rows a table holds."""
    async with db.session() as session:
        return await session.scalar(select(func.count()).select_from(table)) or 0


def category(world: World, name: str = "Drinks") -> dict[str, Any]:
    """The data of `category.add` for branch a."""
    return {"name": name, "branch_id": world.branch_a}


# Lookup, audience and validation


async def test_an_unknown_command_is_invalid(services: Services, world: World, kit: Kit) -> None:
    """A command type nobody registered gets `invalid`, naming the type, with the client's id."""
    staff = await principal_of(services, world.staff_a)
    reply, outcome = await send(kit.registry, services, staff, "category.rename", {}, "x-1")
    assert outcome == "invalid"
    assert reply["id"] == "x-1"
    assert reply["ok"] is False
    assert reply["error"]["code"] == "invalid"
    assert reply["error"]["details"] == {"type": "category.rename"}


async def test_who_admits_listed_device_kinds_and_permission_holders_only(
    services: Services, world: World, kit: Kit
) -> None:
    """A terminal, or a user without the permission, gets `forbidden` and nothing runs; a kiosk and staff may."""
    reader = Principal(kind="user", id=world.staff_a.id, branch_id=world.branch_a, permissions=frozenset({"menu:read"}))
    for principal in (device(DeviceKind.PAYMENT_TERMINAL, world.branch_a), reader):
        reply, outcome = await send(kit.registry, services, principal, "category.add", category(world))
        assert outcome == "forbidden"
        assert reply["error"]["code"] == "forbidden"
    assert kit.runs["category.add"] == 0
    staff = await principal_of(services, world.staff_a)
    for principal in (device(DeviceKind.KIOSK, world.branch_a), staff):
        reply, outcome = await send(kit.registry, services, principal, "category.add", category(world))
        assert outcome == "ok", reply
    assert await count(services.db, Category) == 2


async def test_invalid_data_names_every_failing_field(services: Services, world: World, kit: Kit) -> None:
    """Bad data is `invalid` with one entry per field, and the handler never runs."""
    staff = await principal_of(services, world.staff_a)
    data = {"name": "", "branch_id": "one", "colour": "red"}
    reply, outcome = await send(kit.registry, services, staff, "category.add", data)
    assert outcome == "invalid"
    assert reply["error"]["code"] == "invalid"
    assert {error["field"] for error in reply["error"]["details"]["errors"]} == {"name", "branch_id", "colour"}
    assert kit.runs["category.add"] == 0


# Failures of the handler


async def test_a_refusal_is_the_reply_and_its_effect_and_events_are_rolled_back(
    services: Services, world: World, kit: Kit
) -> None:
    """An ApiError is the reply; the row the handler wrote is gone, and the event it emitted is neither in the
    outbox nor published."""
    staff = await principal_of(services, world.staff_a)
    reply, outcome = await send(kit.registry, services, staff, "category.add_then_refuse", category(world))
    assert outcome == "conflict"
    assert reply["error"] == {"code": "conflict", "message": "refused after writing", "details": {"name": "Drinks"}}
    assert await count(services.db, OutboxEvent) == 0
    assert services.relay.published == 0
    assert await count(services.db, Category) == 0


async def test_a_refused_command_retried_gets_the_same_refusal(services: Services, world: World, kit: Kit) -> None:
    """The refusal is stored as the first reply: a retry with the same id gets it, even one that would now succeed."""
    staff = await principal_of(services, world.staff_a)
    first, _ = await send(kit.registry, services, staff, "category.add_then_refuse", category(world))
    again, outcome = await send(kit.registry, services, staff, "category.add", category(world))
    assert again == first
    assert outcome == "conflict"
    assert await count(services.db, Category) == 0
    assert await count(services.db, OutboxEvent) == 0


async def test_a_change_colliding_with_stored_data_is_a_conflict(services: Services, world: World, kit: Kit) -> None:
    """A unique constraint the handler runs into is `conflict` (as over REST), not `internal`."""
    staff = await principal_of(services, world.staff_a)
    reply, outcome = await send(kit.registry, services, staff, "branch.add_alpha", category(world))
    assert outcome == "conflict"
    assert reply["error"]["code"] == "conflict"
    assert await count(services.db, Branch) == 2


async def test_an_unexpected_exception_is_internal_logged_and_not_remembered(
    services: Services, world: World, kit: Kit, caplog: pytest.LogCaptureFixture
) -> None:
    """A crash answers `internal` without its text, logs the command id, keeps nothing, and a retry runs again."""
    staff = await principal_of(services, world.staff_a)
    with caplog.at_level(logging.ERROR, logger="server.commands"):
        reply, outcome = await send(kit.registry, services, staff, "category.add_then_crash", category(world), "k-9")
    assert outcome == "internal"
    assert reply["error"] == {"code": "internal", "message": "internal error", "details": {}}
    assert SECRET not in json.dumps(reply)
    [record] = [r for r in caplog.records if r.name == "server.commands"]
    assert record.command_id == "k-9"  # type: ignore[attr-defined]
    assert record.principal == staff.key  # type: ignore[attr-defined]
    assert record.exc_info is not None
    assert await count(services.db, Category) == 0
    assert await count(services.db, CommandLogEntry) == 0
    await send(kit.registry, services, staff, "category.add_then_crash", category(world), "k-9")
    assert kit.runs["category.add_then_crash"] == 2


async def test_a_database_that_is_down_answers_unavailable(kit: Kit) -> None:
    """With the database unreachable the reply is `unavailable`, not `internal`."""
    settings = Settings(_env_file=None, ENVIRONMENT="test")
    down = Database.from_url(f"postgresql+asyncpg://postgres@127.0.0.1:{free_port()}/kiosk")
    services = build_services(settings, db=down)
    try:
        kiosk = device(DeviceKind.KIOSK, 1)
        reply, outcome = await send(kit.registry, services, kiosk, "category.add", {"name": "Drinks", "branch_id": 1})
    finally:
        await services.close()
    assert outcome == "unavailable"
    assert reply["error"]["code"] == "unavailable"


async def test_an_unavailable_refusal_is_not_remembered(services: Services, world: World, kit: Kit) -> None:
    """A handler refusing `unavailable` (something it needs is down) is not the final reply: a retry runs afresh."""
    down = True

    who = Who(permission=Permission.STOCK_WRITE)

    @kit.registry.command("category.add_unless_down", AddCategory, who=who, summary="add, unless down")
    async def add_unless_down(ctx: CommandContext, data: AddCategory) -> dict[str, Any]:
        if down:
            raise ApiError("unavailable", "the payment service is unreachable; nothing was changed")
        return await _add_category(ctx, data)

    staff = await principal_of(services, world.staff_a)
    first, outcome = await send(kit.registry, services, staff, "category.add_unless_down", category(world), "u-1")
    assert (outcome, first["error"]["code"]) == ("unavailable", "unavailable")
    assert await count(services.db, CommandLogEntry) == 0
    down = False
    again, outcome = await send(kit.registry, services, staff, "category.add_unless_down", category(world), "u-1")
    assert outcome == "ok", again
    assert await count(services.db, Category) == 1


# Idempotency


async def test_a_repeated_command_id_gets_the_first_reply_and_acts_once(
    services: Services, world: World, kit: Kit
) -> None:
    """The same (principal, id) twice: the stored reply comes back, one row and one event exist.

    The retry's handler runs (the log is not looked up first) and adds its own row and event, and the log's key
    rolls all of it back.
    """
    staff = await principal_of(services, world.staff_a)
    first, _ = await send(kit.registry, services, staff, "category.add", category(world, "Drinks"))
    # Even with other data, a processed id answers with what it answered first.
    again, outcome = await send(kit.registry, services, staff, "category.add", category(world, "Desserts"))
    assert first["ok"] is True
    assert again == first
    assert outcome == "ok"
    assert await count(services.db, Category) == 1
    assert await count(services.db, OutboxEvent) == 1
    assert services.relay.published == 1


async def test_a_retry_whose_handler_now_fails_still_gets_the_stored_reply(
    services: Services, world: World, kit: Kit, caplog: pytest.LogCaptureFixture
) -> None:
    """A retry runs its handler again; should that raise where the first run did not, the first reply still
    answers, nothing of the retry stays, and the failure is logged."""
    staff = await principal_of(services, world.staff_a)
    first, _ = await send(kit.registry, services, staff, "category.add", category(world, "Drinks"))
    with caplog.at_level(logging.WARNING, logger="server.commands"):
        again, outcome = await send(kit.registry, services, staff, "category.add_then_crash", category(world, "Tea"))
    assert kit.runs["category.add_then_crash"] == 1
    assert again == first
    assert outcome == "ok"
    assert await count(services.db, Category) == 1
    assert await count(services.db, OutboxEvent) == 1
    assert services.relay.published == 1
    [record] = [r for r in caplog.records if r.name == "server.commands"]
    assert record.levelno == logging.WARNING and record.exc_info is not None


async def test_the_same_command_id_from_another_principal_is_its_own_command(
    services: Services, world: World, kit: Kit
) -> None:
    """Command ids are unique per principal: another principal's `c1` runs and gets its own reply."""
    staff = await principal_of(services, world.staff_a)
    manager = await principal_of(services, world.manager_a)
    by_staff, _ = await send(kit.registry, services, staff, "category.add", category(world, "Drinks"))
    by_manager, _ = await send(kit.registry, services, manager, "category.add", category(world, "Desserts"))
    assert by_staff["data"]["name"] == "Drinks"
    assert by_manager["data"]["name"] == "Desserts"
    assert await count(services.db, Category) == 2


async def test_two_concurrent_executions_of_one_id_act_once(services: Services, world: World, kit: Kit) -> None:
    """Both arrive at once; one commits its effect, and both get the winner's reply.

    Both handlers run and the command log's key turns the loser's transaction away. On
    PostgreSQL a barrier holds both inside their transactions at once; SQLite takes its
    write lock when a transaction begins, so there the second runs after the first.
    """
    staff = await principal_of(services, world.staff_a)
    concurrent = services.db.backend == "postgresql"
    kit.barrier = asyncio.Barrier(2) if concurrent else None
    (first, first_outcome), (second, second_outcome) = await asyncio.gather(
        send(kit.registry, services, staff, "category.add", category(world, "Drinks")),
        send(kit.registry, services, staff, "category.add", category(world, "Desserts")),
    )
    assert first == second
    assert first_outcome == second_outcome == "ok"
    assert await count(services.db, Category) == 1
    assert await count(services.db, OutboxEvent) == 1
    assert await count(services.db, CommandLogEntry) == 1


async def test_forget_before_drops_only_older_replies(services: Services, world: World) -> None:
    """Retention deletes the replies stored before the cutoff and keeps the newer ones."""
    now = utcnow()
    async with services.db.session() as session:
        for command_id, age in (("old", timedelta(hours=25)), ("new", timedelta(hours=1))):
            entry = CommandLogEntry(principal="device:7", command_id=command_id, command="x", reply={"ok": True})
            entry.created_at = now - age
            session.add(entry)
    async with services.db.session() as session:
        assert await command_log.forget_before(session, now - timedelta(hours=24)) == 1
    async with services.db.session() as session:
        assert await command_log.stored_reply(session, "device:7", "old") is None
        assert await command_log.stored_reply(session, "device:7", "new") == {"ok": True}


# Events after commit


class Recording:
    """A hub transport that keeps the frames it is given."""

    def __init__(self) -> None:
        self.frames: asyncio.Queue[dict[str, Any]] = asyncio.Queue()

    def send(self, frame: bytes) -> bool:
        """Keep a frame."""
        self.frames.put_nowait(json.loads(frame_text(frame)))
        return True

    def close(self, code: int, reason: str) -> None:
        """Nothing closes this transport in these tests."""
        raise AssertionError(f"closed with {code}: {reason}")

    async def next(self) -> dict[str, Any]:
        """The next frame, failing the test if none comes."""
        return await asyncio.wait_for(self.frames.get(), LIMIT_S)


@pytest.fixture
async def started(services: Services) -> AsyncIterator[Services]:
    """The services with the broker delivering to the hub (the relay loop is not started)."""
    await services.broker.start(services.hub)
    yield services


async def test_events_are_published_after_commit_and_reach_hub_subscribers(
    started: Services, world: World, kit: Kit
) -> None:
    """Once the command commits, its event is marked published and a subscriber of its channel gets it."""
    channel = names.branch_menu(world.branch_a)
    transport = Recording()
    await join(started.hub, Subscriber("conn-1", "user:1", transport), channel)
    assert (await transport.next())["type"] == "snapshot"
    staff = await principal_of(started, world.staff_a)
    reply, _ = await send(kit.registry, started, staff, "category.add", category(world))
    event = await transport.next()
    assert event["type"] == "event"
    assert (event["channel"], event["seq"], event["event"]) == (channel, 1, "category.added")
    assert event["data"] == {"category_id": reply["data"]["category_id"], "name": "Drinks"}
    await started.relay.marked()
    async with started.db.session() as session:
        [row] = (await session.scalars(select(OutboxEvent))).all()
    assert row.published_at is not None
