"""The catalogue a process keeps (server/orders/catalogue.py): changes reach every instance, and never price stale.

Two instances are two `Services` on the same database, each with an engine of its own and
so a copy of the catalogue of its own; staff change the menu through the admin REST routes
of the first, kiosks buy through the second.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Iterable
from dataclasses import replace

import httpx
import pytest
from sqlalchemy import delete, insert, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from persistence.database import Database
from persistence.tables import CatalogueVersion, Category, Item, OptionChoice, OptionGroup
from server.app import build_services
from server.orders import catalogue as catalogue_module
from server.orders.catalogue import Catalogue, catalogue_of, read_items
from server.settings import Settings
from tests.shop import Shop
from tests.world import World

ITEMS = "/api/v1/items"


@pytest.fixture
async def second(shop: Shop, settings: Settings, migrated_urls: dict[str, str], backend: str) -> AsyncIterator[Shop]:
    """The shop as a second instance serves it: the same database and devices, another engine and catalogue."""
    services = build_services(settings, db=Database.from_url(migrated_urls[backend]), prefix=f"test:{uuid.uuid4()}")
    yield replace(shop, services=services)
    await services.stop()
    await services.backend.close()
    await services.db.dispose()


async def _cart(shop: Shop, item_id: int) -> dict[str, object]:
    cart = await shop.send(shop.kiosk, "cart.create", {})
    return await shop.send(shop.kiosk, "cart.add", {"cart_id": cart["id"], "item_id": item_id})


async def _version(shop: Shop) -> int:
    async with shop.services.db.session() as session:
        return int(await session.scalar(select(CatalogueVersion.version)) or 0)


async def test_a_price_changed_on_one_instance_is_the_next_price_read_on_every_instance(
    shop: Shop, second: Shop, client: httpx.AsyncClient, world: World
) -> None:
    """Both instances hold Fries at 350; staff change it to 420 on the first; the next cart read on either instance,
    and the very next cart command on the second, price it at 420."""
    cart = await _cart(shop, shop.fries)
    other = await _cart(second, shop.fries)
    assert cart["lines"][0]["unit_price"] == other["lines"][0]["unit_price"] == 350  # type: ignore[index]
    assert all([await _holds(instance, shop.fries) for instance in (shop, second)])

    response = await client.patch(f"{ITEMS}/{shop.fries}", json={"price": 420}, headers=world.admin.headers)
    assert response.status_code == 200, response.text

    for instance, cart_id in ((second, other["id"]), (shop, cart["id"])):
        updated = await instance.send(instance.kiosk, "cart.add", {"cart_id": cart_id, "item_id": shop.fries})
        assert [(line["qty"], line["unit_price"]) for line in updated["lines"]] == [(2, 420)]


async def _holds(shop: Shop, item_id: int) -> bool:
    """Whether the instance's catalogue holds the item (so that its next price read could come from it)."""
    async with shop.services.db.sessions() as session:
        return item_id in catalogue_of(session)


async def test_a_stale_catalogue_never_prices_an_order(
    shop: Shop, second: Shop, client: httpx.AsyncClient, world: World
) -> None:
    """The second instance holds Burger's Large choice at +150 when staff raise it to +250: the order it places is
    priced at +250 (the total the kiosk saw is `price_changed`), never at what it held."""
    cart = await second.send(second.kiosk, "cart.create", {})
    large = second.choices["Large"]
    cart = await second.send(
        second.kiosk, "cart.add", {"cart_id": cart["id"], "item_id": shop.burger, "options": [large]}
    )
    assert cart["total"] == 1050
    assert await _holds(second, shop.burger)

    item = (await client.get(f"{ITEMS}/{shop.burger}", headers=world.admin.headers)).json()
    groups = item["option_groups"]
    for group in groups:
        for choice in group["choices"]:
            if choice["id"] == large:
                choice["price_delta"] = 250
    response = await client.patch(f"{ITEMS}/{shop.burger}", json={"option_groups": groups}, headers=world.admin.headers)
    assert response.status_code == 200, response.text

    error = await second.error(second.kiosk, "order.place", {"cart_id": cart["id"], "expected_total": 1050})
    assert (error["code"], error["details"]["total"]) == ("price_changed", 1150)
    order = await second.send(second.kiosk, "order.place", {"cart_id": cart["id"], "expected_total": 1150})
    assert [(line["unit_price"], line["options"][0]["price_delta"]) for line in order["lines"]] == [(1150, 250)]


async def test_every_change_to_the_catalogue_raises_its_version_and_stock_does_not(shop: Shop) -> None:
    """Inserting, changing and deleting categories, items, option groups and choices, by any statement, each raise
    the catalogue's version in their own transaction; a branch's stock and 86 switch do not."""
    db = shop.services.db
    changes = [
        insert(Category).values(name="Desserts"),
        update(Category).where(Category.name == "Desserts").values(position=9),
        update(Item).where(Item.id == shop.cola).values(price=310),
        update(OptionGroup).where(OptionGroup.name == "Size").values(max_select=1),
        update(OptionChoice).where(OptionChoice.name == "Bacon").values(price_delta=250),
        delete(OptionChoice).where(OptionChoice.name == "Bacon"),
        delete(Category).where(Category.name == "Desserts"),
    ]
    for change in changes:
        before = await _version(shop)
        async with db.session() as session:
            await session.execute(change)
        assert await _version(shop) > before, change

    before = await _version(shop)
    await shop.set_item(shop.fries, stock=3, available=False)
    assert await _version(shop) == before

    # A change rolled back leaves the version as it was.
    with pytest.raises(RuntimeError):
        async with db.session() as session:
            await session.execute(update(Item).where(Item.id == shop.cola).values(price=320))
            raise RuntimeError("rolled back")
    assert await _version(shop) == before


async def test_a_read_that_ran_while_the_version_changed_is_not_kept(
    shop: Shop, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A command reading at version 1 while another moved the process's copy to version 2 gets its items, but they are
    not kept under version 2; a version that is not the one kept, an older one too, drops the copy."""
    catalogue = Catalogue()
    async with shop.services.db.session() as session:
        assert set(await catalogue.items(session, 1, [shop.cola])) == {shop.cola}
        assert catalogue.version == 1 and shop.cola in catalogue

        async def read_while_another_command_reads_version_2(session: AsyncSession, ids: Iterable[int]) -> object:
            assert await catalogue.items(session, 2, []) == {}
            return await read_items(session, ids)

        with monkeypatch.context() as patch:
            patch.setattr(catalogue_module, "read_items", read_while_another_command_reads_version_2)
            both = await catalogue.items(session, 1, [shop.cola, shop.fries])
        assert set(both) == {shop.cola, shop.fries}
        assert catalogue.version == 2 and shop.cola not in catalogue and shop.fries not in catalogue

        assert set(await catalogue.items(session, 2, [shop.fries])) == {shop.fries}
        assert shop.fries in catalogue
        await catalogue.items(session, 1, [shop.cola])
        assert catalogue.version == 1 and shop.fries not in catalogue and shop.cola in catalogue
