"""What the REST item tests share: a category, a burger with option groups, and creating an item."""

from __future__ import annotations

from typing import Any

import httpx

from persistence.base import utcnow
from persistence.tables import Category
from server.services import Services
from tests.world import World

ITEMS = "/api/v1/items"


async def _category(services: Services, name: str = "Burgers", *, deleted: bool = False) -> int:
    async with services.db.session() as session:
        category = Category(name=name, deleted_at=utcnow() if deleted else None)
        session.add(category)
        await session.flush()
        return category.id


def _burger(category_id: int, **changes: Any) -> dict[str, Any]:
    """A burger with a size (exactly one, default medium) and extras (up to two)."""
    body: dict[str, Any] = {
        "category_id": category_id,
        "name": "Cheeseburger",
        "description": "Two patties",
        "image_url": "https://img.example.com/cheeseburger.png",
        "price": 650,
        "position": 1,
        "option_groups": [
            {
                "name": "Size",
                "min_select": 1,
                "max_select": 1,
                "position": 0,
                "choices": [
                    {"name": "Small", "price_delta": -100, "position": 0},
                    {"name": "Medium", "price_delta": 0, "is_default": True, "position": 1},
                    {"name": "Large", "price_delta": 150, "position": 2},
                ],
            },
            {
                "name": "Extras",
                "min_select": 0,
                "max_select": 2,
                "position": 1,
                "choices": [{"name": "Bacon", "price_delta": 120}, {"name": "Jalapeños", "price_delta": 50}],
            },
        ],
    }
    body.update(changes)
    return body


async def _create(client: httpx.AsyncClient, world: World, body: dict[str, Any]) -> dict[str, Any]:
    response = await client.post(ITEMS, json=body, headers=world.admin.headers)
    assert response.status_code == 201, response.text
    return dict(response.json())
