"""The command router's idempotency: a command id acts at most once and gets its first reply again, per
principal, even when two executions overlap; old replies are forgotten.
"""

from __future__ import annotations

import asyncio
import logging
from datetime import timedelta

import pytest

from persistence import command_log
from persistence.base import utcnow
from persistence.tables import Category, CommandLogEntry, OutboxEvent
from server.services import Services
from tests.commands.router_helpers import Kit, category, count, principal_of, send
from tests.world import World


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
