"""The command router (server/commands/router.py): lookup, audience and validation, and the failures of a
handler, each one reply whose effect and events are rolled back.

The commands here are the test's own (a `Kit`, tests/commands/conftest.py), so that every way a handler can end
is tried on purpose.
"""

from __future__ import annotations

import json
import logging
from typing import Any

import pytest

from persistence.database import Database
from persistence.enums import DeviceKind
from persistence.tables import Branch, Category, CommandLogEntry, OutboxEvent
from server.app import build_services
from server.auth.permissions import Permission
from server.auth.principals import Principal
from server.commands.router import CommandContext, Who
from server.errors import ApiError
from server.services import Services
from server.settings import Settings
from tests.commands.router_helpers import (
    SECRET,
    AddCategory,
    Kit,
    _add_category,
    category,
    count,
    device,
    principal_of,
    send,
)
from tests.live import free_port
from tests.world import World

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
