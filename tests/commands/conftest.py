"""Fixtures of the command router's tests: a registry of commands that add a category and then succeed,
refuse, crash or collide.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from persistence.enums import DeviceKind
from persistence.tables import Branch
from server.auth.permissions import Permission
from server.commands.router import CommandContext, Who
from server.errors import ApiError
from tests.commands.router_helpers import LIMIT_S, SECRET, AddCategory, Kit, _add_category


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
