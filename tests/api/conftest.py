"""Fixtures of the AsyncAPI tests (the document of the device protocol, built once per module) and of the menu
event tests (the catalogue they start from, and the outbox).
"""

from __future__ import annotations

from typing import Any

import pytest

from persistence.base import utcnow
from persistence.tables import Category, Item, ItemAvailability, OptionChoice, OptionGroup
from server.api.asyncapi import asyncapi_document
from server.services import Services
from server.settings import Settings
from tests.api.asyncapi_helpers import COMMANDS
from tests.api.menu_event_helpers import Catalogue, Outbox
from tests.world import World


@pytest.fixture(scope="module")
def document() -> dict[str, Any]:
    """The document as the real registry produces it."""
    return asyncapi_document(Settings(_env_file=None), COMMANDS)


@pytest.fixture
async def catalogue(services: Services, world: World) -> Catalogue:
    """The catalogue, written straight to the database (so the outbox starts empty)."""
    async with services.db.session() as session:
        mains, drinks = Category(name="Mains", position=0), Category(name="Drinks", position=1)
        session.add_all([mains, drinks])
        await session.flush()
        regular = OptionChoice(name="Regular", price_delta=0, is_default=True, position=0)
        size = OptionGroup(
            name="Size",
            min_select=1,
            max_select=1,
            choices=[regular, OptionChoice(name="Large", price_delta=150, position=1)],
        )
        burger = Item(category_id=mains.id, name="Burger", price=900, option_groups=[size])
        soup = Item(category_id=mains.id, name="Soup", price=450, position=1)
        salad = Item(category_id=mains.id, name="Salad", price=500, position=2)
        old = Item(category_id=mains.id, name="Old", price=100, deleted_at=utcnow())
        cola = Item(category_id=drinks.id, name="Cola", price=300)
        session.add_all([burger, soup, salad, old, cola])
        await session.flush()
        session.add_all(
            [
                ItemAvailability(branch_id=world.branch_a, item_id=burger.id, stock=5),
                ItemAvailability(branch_id=world.branch_b, item_id=burger.id, stock=None),
                ItemAvailability(branch_id=world.branch_a, item_id=soup.id, stock=None),
                ItemAvailability(branch_id=world.branch_a, item_id=old.id, stock=None),
                ItemAvailability(branch_id=world.branch_b, item_id=cola.id, stock=None),
            ]
        )
        return Catalogue(mains.id, drinks.id, burger.id, soup.id, salad.id, old.id, cola.id, size.id, regular.id)


@pytest.fixture
def outbox(services: Services) -> Outbox:
    """The outbox of the test's database."""
    return Outbox(services)
