"""The command router's events: written to the outbox in the command's transaction, published after its
commit, and delivered to the hub's subscribers.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any

import pytest
from sqlalchemy import select

from channels import names
from channels.hub import Subscriber
from persistence.tables import OutboxEvent
from server.services import Services
from tests.channels.hub_helpers import frame_text, join
from tests.commands.router_helpers import LIMIT_S, Kit, category, principal_of, send
from tests.world import World


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
