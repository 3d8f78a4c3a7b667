"""What the command router's tests share: a test command's data, the kit of test commands and their runs,
principals, one command frame executed, and row counts.
"""

from __future__ import annotations

import asyncio
import json
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import func, select
from sqlalchemy.orm import DeclarativeBase

from channels import names
from channels.frames import parse_client_frame
from persistence.database import Database
from persistence.enums import DeviceKind
from persistence.tables import Category
from server.auth.principals import Principal, authenticate
from server.commands.router import CommandContext, CommandRegistry, execute
from server.services import Services
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
