"""REST combos: an item's slots written as a whole (kept by id, created, deleted), each with its choices of items;
bad bodies named field by field; combos never nest; the branches offering the combo hear it."""

from __future__ import annotations

from typing import Any

import httpx
from sqlalchemy import select, update

from persistence.tables import Branch, Category, Item, ItemAvailability, OutboxEvent
from server.payloads.menu import branch_menu
from tests.shop import Shop
from tests.world import World


async def _combo_item(shop: Shop, name: str = "Burger Menu") -> int:
    """A new item offered by branch a, not yet a combo."""
    async with shop.services.db.session() as session:
        category = await session.scalar(select(Category.id).limit(1))
        assert category is not None
        item = Item(category_id=category, name=name, price=1100)
        session.add(item)
        await session.flush()
        session.add(ItemAvailability(branch_id=shop.branch_id, item_id=item.id, available=True, stock=None))
        return item.id


def _body(shop: Shop, main_id: int | None = None) -> dict[str, Any]:
    main: dict[str, Any] = {"name": " Main ", "choices": [{"item_id": shop.burger, "is_default": True}]}
    if main_id is not None:
        main["id"] = main_id
    drinks = [{"item_id": shop.cola, "is_default": True}, {"item_id": shop.fries, "upcharge": 50}]
    return {"slots": [main, {"name": "Drink", "choices": drinks}]}


async def test_slots_are_written_whole_kept_by_id_and_announced(
    client: httpx.AsyncClient, shop: Shop, world: World
) -> None:
    """An item becomes a combo with two slots; staff read it; a second PUT keeping Main by id and dropping Drink
    keeps Main's id; the branch hears each change; DELETE makes it a plain item again."""
    combo = await _combo_item(shop)
    url = f"/api/v1/items/{combo}/combo"
    headers = world.admin.headers
    assert (await client.get(url, headers=headers)).json() == {"item_id": combo, "slots": []}
    async with shop.services.db.session() as session:
        before = len((await session.scalars(select(OutboxEvent.id))).all())
    put = await client.put(url, json=_body(shop), headers=headers)
    assert put.status_code == 200, put.text
    slots = put.json()["slots"]
    assert [(s["name"], s["position"]) for s in slots] == [("Main", 0), ("Drink", 1)]
    assert [(c["name"], c["upcharge"], c["is_default"]) for c in slots[1]["choices"]] == [
        ("Cola", 0, True),
        ("Fries", 50, False),
    ]
    assert (await client.get(url, headers=world.staff_a.headers)).json() == put.json()
    async with shop.services.db.session() as session:
        rows = (await session.scalars(select(OutboxEvent).order_by(OutboxEvent.id))).all()[before:]
    assert [(row.event, row.data["id"], len(row.data["combo_slots"])) for row in rows] == [
        ("menu.item_updated", combo, 2)
    ]
    main_id = slots[0]["id"]
    again = await client.put(url, json={"slots": _body(shop, main_id)["slots"][:1]}, headers=headers)
    assert [s["id"] for s in again.json()["slots"]] == [main_id]
    # The same items again in a kept slot: the old choices go before the new are written.
    assert (await client.put(url, json=_body(shop, main_id), headers=headers)).status_code == 200
    assert (await client.put(url, json=_body(shop), headers=world.staff_a.headers)).status_code == 403
    assert (await client.delete(url, headers=headers)).status_code == 204
    assert (await client.get(url, headers=headers)).json()["slots"] == []


async def test_bad_slots_are_named_field_by_field_and_combos_do_not_nest(
    client: httpx.AsyncClient, shop: Shop, world: World
) -> None:
    """A foreign slot id, two defaults, an item twice, an unknown item, a negative upcharge: each on its field;
    a combo as a choice, or a combo's choice made a combo, is `nested_combo`."""
    combo = await _combo_item(shop)
    url = f"/api/v1/items/{combo}/combo"
    headers = world.admin.headers
    body = {
        "slots": [
            {"id": 999_999, "name": "Main", "choices": [{"item_id": shop.burger}]},
            {
                "name": "Drink",
                "choices": [
                    {"item_id": shop.cola, "is_default": True},
                    {"item_id": shop.cola, "is_default": True},
                    {"item_id": 999_999},
                ],
            },
        ]
    }
    response = await client.put(url, json=body, headers=headers)
    assert response.status_code == 422, response.text
    errors = {(e["field"], e["type"]) for e in response.json()["error"]["details"]["errors"]}
    assert errors == {
        ("slots.0.id", "unknown_slot"),
        ("slots.1.choices", "defaults"),
        ("slots.1.choices.1.item_id", "repeated_item"),
        ("slots.1.choices.2.item_id", "unknown_item"),
    }
    negative = {"slots": [{"name": "Main", "choices": [{"item_id": shop.burger, "upcharge": -1}]}]}
    assert (await client.put(url, json=negative, headers=headers)).status_code == 422
    assert (await client.put(url, json=_body(shop), headers=headers)).status_code == 200
    other = await _combo_item(shop, "Big Menu")
    nested = {"slots": [{"name": "Main", "choices": [{"item_id": combo}]}]}
    response = await client.put(f"/api/v1/items/{other}/combo", json=nested, headers=headers)
    assert [e["type"] for e in response.json()["error"]["details"]["errors"]] == ["nested_combo"]
    response = await client.put(f"/api/v1/items/{shop.burger}/combo", json=nested, headers=headers)
    assert "nested_combo" in [e["type"] for e in response.json()["error"]["details"]["errors"]]
    assert (await client.get("/api/v1/items/999999/combo", headers=headers)).status_code == 404


async def test_a_slot_is_named_in_other_languages_and_the_menu_shows_it_in_the_one_asked_for(
    client: httpx.AsyncClient, shop: Shop, world: World
) -> None:
    """A slot's `translations` are written and read back; a branch offering German shows the slot as Hauptgericht
    in a German menu and as Main in an English one (a locale without a name for it)."""
    combo = await _combo_item(shop)
    body = _body(shop)
    body["slots"][0]["translations"] = {"de": {"name": "Hauptgericht"}}
    put = await client.put(f"/api/v1/items/{combo}/combo", json=body, headers=world.admin.headers)
    assert put.status_code == 200, put.text
    assert [slot["translations"] for slot in put.json()["slots"]] == [
        {"de": {"name": "Hauptgericht", "description": None}},
        {},
    ]
    async with shop.services.db.session() as session:
        await session.execute(update(Branch).where(Branch.id == shop.branch_id).values(locales=["en", "de"]))
    async with shop.services.db.session() as session:
        menus = {locale: await branch_menu(session, shop.branch_id, locale=locale) for locale in ("de", "en")}
    shown = {
        locale: [
            slot["name"]
            for c in menu["categories"]
            for i in c["items"]
            if i["id"] == combo
            for slot in i["combo_slots"]
        ]
        for locale, menu in menus.items()
    }
    assert shown == {"de": ["Hauptgericht", "Drink"], "en": ["Main", "Drink"]}


async def test_a_changed_component_announces_the_combos_offering_it(
    client: httpx.AsyncClient, shop: Shop, world: World
) -> None:
    """A component's new allergen reaches the kiosks on the combo's choice as well as on the item itself."""
    combo = await _combo_item(shop)
    headers = world.admin.headers
    assert (await client.put(f"/api/v1/items/{combo}/combo", json=_body(shop), headers=headers)).status_code == 200
    async with shop.services.db.session() as session:
        before = len((await session.scalars(select(OutboxEvent.id))).all())
    patched = await client.patch(f"/api/v1/items/{shop.cola}", json={"allergens": ["sulphites"]}, headers=headers)
    assert patched.status_code == 200, patched.text
    async with shop.services.db.session() as session:
        rows = (await session.scalars(select(OutboxEvent).order_by(OutboxEvent.id))).all()[before:]
    assert sorted((row.event, row.data["id"]) for row in rows) == sorted(
        [("menu.item_updated", shop.cola), ("menu.item_updated", combo)]
    )
    announced = next(row.data for row in rows if row.data["id"] == combo)
    cola = next(c for slot in announced["combo_slots"] for c in slot["choices"] if c["item_id"] == shop.cola)
    assert cola["allergens"] == ["sulphites"]
