"""What the menu event tests share: the catalogue they start from, the outbox read since the last look,
an item as a branch's menu shows it, the events expected, and bounded REST calls.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from dataclasses import dataclass
from typing import Any, TypeVar

import httpx
from sqlalchemy import select

from channels import names
from persistence.tables import OutboxEvent
from server.payloads.menu import branch_menu
from server.services import Services

TIMEOUT_S = 10
ITEMS = "/api/v1/items"
T = TypeVar("T")
Event = tuple[str, str, dict[str, Any]]


async def bounded(step: Awaitable[T]) -> T:
    """Await one step of a test, failing it rather than hanging."""
    return await asyncio.wait_for(step, TIMEOUT_S)


@dataclass
class Catalogue:
    """Mains (burger offered by a and b, soup by a, salad by nobody, old: deleted) and Drinks (cola offered by b)."""

    mains: int
    drinks: int
    burger: int
    soup: int
    salad: int
    old: int
    cola: int
    size: int
    regular: int


class Outbox:
    """The events written since the last look, oldest first."""

    def __init__(self, services: Services) -> None:
        self._services = services
        self._seen = 0

    async def new(self) -> list[Event]:
        """Channel, event and data of each outbox row written since the last call."""
        async with self._services.db.session() as session:
            statement = select(OutboxEvent).where(OutboxEvent.id > self._seen).order_by(OutboxEvent.id)
            rows = (await bounded(session.scalars(statement))).all()
        if rows:
            self._seen = rows[-1].id
        return [(row.channel, row.event, row.data) for row in rows]


async def menu_item(services: Services, branch_id: int, item_id: int) -> dict[str, Any] | None:
    """The item as the branch's menu snapshot shows it now, None when it is not on that menu."""
    async with services.db.session() as session:
        menu = await bounded(branch_menu(session, branch_id))
    items = [item for category in menu["categories"] for item in category["items"]]
    return next((item for item in items if item["id"] == item_id), None)


def updated(branch_id: int, item: dict[str, Any] | None) -> Event:
    """A `menu.item_updated` event carrying `item` on the branch's menu channel."""
    assert item is not None
    return (names.branch_menu(branch_id), "menu.item_updated", item)


def removed(branch_id: int, item_id: int) -> Event:
    """A `menu.item_removed` event on the branch's menu channel."""
    return (names.branch_menu(branch_id), "menu.item_removed", {"branch_id": branch_id, "item_id": item_id})


async def call(
    client: httpx.AsyncClient, method: str, url: str, headers: dict[str, str], **body: Any
) -> httpx.Response:
    """One REST call, with `body` as its JSON when given."""
    return await bounded(client.request(method, url, headers=headers, json=body or None))


def stock_url(item_id: int) -> str:
    """The stock route of an item."""
    return f"{ITEMS}/{item_id}/stock"
