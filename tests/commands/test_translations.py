"""Languages: a kiosk's carts, orders, receipts and menu in its customer's locale, the kitchen's tickets in its own.

The branch here is German: it offers `de` (its default) and `en`, its kitchen reads `de`. The
burger, its Size group and the Large choice have German and English names; the cola has none
(its base name shows in every locale); fries only a German one.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest
from sqlalchemy import select, update

from channels import names
from channels.frames import parse_client_frame
from persistence.tables import Branch, Item, OptionChoice, OptionGroup, OrderLine, OutboxEvent
from server.commands.router import execute
from server.payloads.menu import branch_menu
from tests.shop import COMMANDS, LIMIT_S, Shop


@pytest.fixture
async def german(shop: Shop) -> Shop:
    """The shop's branch offering de (default, kitchen) and en, with translated burger, Size and Large."""
    async with shop.services.db.session() as session:
        await session.execute(
            update(Branch)
            .where(Branch.id == shop.branch_id)
            .values(default_locale="de", locales=["de", "en"], kitchen_locale="de")
        )
        burger_texts = {
            "de": {"name": "Burger (de)", "description": "Rind"},
            "en": {"name": "Burger (en)", "description": "Beef"},
        }
        await session.execute(update(Item).where(Item.id == shop.burger).values(translations=burger_texts))
        await session.execute(update(Item).where(Item.id == shop.fries).values(translations={"de": {"name": "Pommes"}}))
        await session.execute(
            update(OptionGroup)
            .where(OptionGroup.item_id == shop.burger, OptionGroup.name == "Size")
            .values(translations={"de": {"name": "Größe"}, "en": {"name": "Size (en)"}})
        )
        await session.execute(
            update(OptionChoice)
            .where(OptionChoice.id == shop.choices["Large"])
            .values(translations={"de": {"name": "Groß"}, "en": {"name": "Large (en)"}})
        )
    return shop


def _names(payload: dict[str, Any]) -> list[tuple[str, list[tuple[str, str]]]]:
    """Each line's name with its options' (group, name)."""
    return [(line["name"], [(o["group"], o["name"]) for o in line["options"]]) for line in payload["lines"]]


async def _cart(shop: Shop, **create: Any) -> dict[str, Any]:
    cart = await shop.send(shop.kiosk, "cart.create", create)
    large = {"item_id": shop.burger, "options": [shop.choices["Large"]]}
    await shop.send(shop.kiosk, "cart.add", {"cart_id": cart["id"], **large})
    await shop.send(shop.kiosk, "cart.add", {"cart_id": cart["id"], "item_id": shop.fries})
    return await shop.send(shop.kiosk, "cart.add", {"cart_id": cart["id"], "item_id": shop.cola})


async def test_a_cart_is_named_in_its_locale_falling_back_to_the_default_then_the_base_names(german: Shop) -> None:
    """A cart without a locale is in the branch's default (de); one in en names the burger and its Large in English,
    the fries in German (no English name: the default's) and the cola by its base name (no translation at all)."""
    shop = german
    default = await _cart(shop)
    assert default["locale"] == "de"
    assert _names(default) == [("Burger (de)", [("Größe", "Groß")]), ("Pommes", []), ("Cola", [])]
    english = await _cart(shop, locale="EN")
    assert english["locale"] == "en"
    assert _names(english) == [("Burger (en)", [("Size (en)", "Large (en)")]), ("Pommes", []), ("Cola", [])]


async def test_switching_a_carts_locale_renames_it_and_a_locale_not_offered_is_refused(german: Shop) -> None:
    """cart.set_locale names the cart anew (a new version, same prices); fr is refused naming the offered locales,
    a malformed code as `locale`, and the refused change leaves the cart as it was."""
    shop = german
    cart = await _cart(shop)
    english = await shop.send(shop.kiosk, "cart.set_locale", {"cart_id": cart["id"], "locale": "en"})
    assert (english["locale"], english["version"], english["total"]) == ("en", cart["version"] + 1, cart["total"])
    assert english["lines"][0]["name"] == "Burger (en)"

    refused = await shop.error(shop.kiosk, "cart.set_locale", {"cart_id": cart["id"], "locale": "fr"})
    assert refused["code"] == "invalid"
    assert refused["details"]["locales"] == ["de", "en"]
    assert [(e["field"], e["type"]) for e in refused["details"]["errors"]] == [("locale", "locale_not_offered")]
    malformed = await shop.error(shop.kiosk, "cart.set_locale", {"cart_id": cart["id"], "locale": "english!"})
    assert [e["type"] for e in malformed["details"]["errors"]] == ["locale"]
    create = await shop.error(shop.kiosk, "cart.create", {"locale": "fr"})
    assert create["details"]["errors"][0]["type"] == "locale_not_offered"

    again = await shop.send(shop.kiosk, "cart.set_locale", {"cart_id": cart["id"], "locale": "en"})
    assert again["version"] == english["version"] + 1  # the refusals were rolled back, not counted


async def _events(shop: Shop) -> list[tuple[str, str, dict[str, Any]]]:
    async with shop.services.db.session() as session:
        rows = (await session.scalars(select(OutboxEvent).order_by(OutboxEvent.id))).all()
    return [(row.channel, row.event, row.data) for row in rows]


async def test_the_order_names_its_lines_in_its_locale_for_the_kiosk_and_in_the_kitchens_for_everyone_else(
    german: Shop,
) -> None:
    """Placed from an English cart: the kiosk's reply, its device event and the receipt are in English; the kitchen's
    ticket, staff's event and the REST-shaped order in German, the kitchen locale; a menu change afterwards renames
    nothing."""
    shop = german
    cart = await _cart(shop, locale="en")
    order = await shop.send(shop.kiosk, "order.place", {"cart_id": cart["id"]})
    english = [("Burger (en)", [("Size (en)", "Large (en)")]), ("Pommes", []), ("Cola", [])]
    german_names = [("Burger (de)", [("Größe", "Groß")]), ("Pommes", []), ("Cola", [])]
    assert order["locale"] == "en"
    assert _names(order) == english
    placed = {channel: data for channel, event, data in await _events(shop) if event == "order.placed"}
    assert _names(placed[names.device(shop.kiosk.id)]) == english
    assert _names(placed[names.branch_orders(shop.branch_id)]) == german_names
    async with shop.services.db.session() as session:
        stored = (await session.execute(select(OrderLine.display_name).order_by(OrderLine.id))).scalars().all()
    assert stored == ["Burger (en)", None, None]  # kept only where the kitchen's differ

    async with shop.services.db.session() as session:
        await session.execute(update(Item).where(Item.id == shop.burger).values(translations={}))
    paid = await shop.send(shop.staff, "order.mark_paid", {"order_id": order["id"]})
    assert _names(paid) == german_names
    queued = [data for channel, event, data in await _events(shop) if event == "order.queued"]
    assert [_names(data) for data in queued] == [german_names]
    receipt = await shop.send(shop.kiosk, "order.receipt", {"order_id": order["id"]})
    assert receipt["locale"] == "en"
    assert _names(receipt) == english


async def test_a_kitchen_locale_other_than_the_default_names_the_tickets(german: Shop) -> None:
    """A branch whose kitchen reads English: a German customer's order reaches the kitchen in English."""
    shop = german
    async with shop.services.db.session() as session:
        await session.execute(update(Branch).where(Branch.id == shop.branch_id).values(kitchen_locale="en"))
    cart = await _cart(shop)
    order = await shop.send(shop.kiosk, "order.place", {"cart_id": cart["id"]})
    assert order["lines"][0]["name"] == "Burger (de)"
    ticket = await shop.send(shop.staff, "order.mark_paid", {"order_id": order["id"]})
    assert ticket["lines"][0]["name"] == "Burger (en)"


async def _menu_get(shop: Shop, data: dict[str, Any], locale: str | None = None) -> dict[str, Any]:
    """menu.get from the kiosk, from a connection of `locale`."""
    frame = parse_client_frame(json.dumps({"type": "menu.get", "id": "m1", "data": data}))
    text, _ = await asyncio.wait_for(execute(COMMANDS, shop.services, shop.kiosk.principal, frame, locale), LIMIT_S)
    reply: dict[str, Any] = json.loads(text)
    return reply


async def test_menu_get_answers_in_the_locale_asked_else_the_connections_else_the_default(german: Shop) -> None:
    """The menu names rows in the locale asked for, and carries every row's translations; fr is refused."""
    shop = german
    for data, locale, expected in (({}, None, "de"), ({}, "en", "en"), ({"locale": "en"}, None, "en")):
        menu = (await _menu_get(shop, data, locale))["data"]
        assert (menu["locale"], menu["default_locale"], menu["locales"]) == (expected, "de", ["de", "en"])
        burger = menu["categories"][0]["items"][0]
        assert burger["name"] == f"Burger ({expected})"
        assert burger["description"] == {"de": "Rind", "en": "Beef"}[expected]
        assert burger["translations"]["en"] == {"name": "Burger (en)", "description": "Beef"}
        size = burger["option_groups"][0]
        assert size["name"] == {"de": "Größe", "en": "Size (en)"}[expected]
        assert size["choices"][1]["translations"] == {"de": {"name": "Groß"}, "en": {"name": "Large (en)"}}
    refused = await _menu_get(shop, {"locale": "fr"})
    assert refused["error"]["details"]["errors"][0]["type"] == "locale_not_offered"


async def test_the_menu_snapshot_is_in_the_locale_asked_and_a_locale_not_offered_falls_back(german: Shop) -> None:
    """branch_menu in en, in fr (not offered: the default) and in none (the default)."""
    async with german.services.db.session() as session:
        shown = {
            asked: (await branch_menu(session, german.branch_id, locale=asked))["categories"][0]["items"][0]["name"]
            for asked in ("en", "fr", None)
        }
    assert shown == {"en": "Burger (en)", "fr": "Burger (de)", None: "Burger (de)"}


async def test_a_new_cart_takes_the_connections_locale(german: Shop) -> None:
    """A kiosk that said hello in en starts its carts in en."""
    shop = german
    frame = parse_client_frame(json.dumps({"type": "cart.create", "id": "c1", "data": {}}))
    text, _ = await asyncio.wait_for(execute(COMMANDS, shop.services, shop.kiosk.principal, frame, "en"), LIMIT_S)
    assert json.loads(text)["data"]["locale"] == "en"
