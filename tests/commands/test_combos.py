"""Combos in cart and order commands: slots filled and checked, priced on the server, stock taken and given back per
component, a sold-out component refusing only the fillings that hold it, and orders keeping their components.

The shop's "Burger Menu" (1100, a tax category of its own at 7 %) has three slots: Main (Burger, default),
Side (Fries, default, 10 left) and Drink (Cola, default; or Shake +50 with its own Size: Small, default, or
Large +120; 3 left).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import time
from typing import Any

import pytest
from sqlalchemy import update

from persistence.tables import (
    Branch,
    ComboSlot,
    ComboSlotChoice,
    Daypart,
    Item,
    ItemAvailability,
    OptionChoice,
    OptionGroup,
    TaxCategory,
)
from server.payloads.menu import MenuSnapshot, branch_menu
from tests.commands.test_dayparts import AFTER_BREAKFAST, BREAKFAST_TIME, BREAKFAST_WINDOW, refused_at, run_at
from tests.shop import Shop

COMBO_TAX_BP = 700


@dataclass
class Combo:
    """The shop's combo: its item, its slots' ids and the Shake with its sizes."""

    item_id: int
    main: int
    side: int
    drink: int
    shake: int
    small: int
    large: int


async def add_combo(shop: Shop) -> Combo:
    """Add the Burger Menu and the Shake to branch a's menu."""
    async with shop.services.db.session() as session:
        burger = await session.get(Item, shop.burger)
        assert burger is not None
        reduced = TaxCategory(name="Reduced")
        session.add(reduced)
        await session.flush()
        branch = await session.get(Branch, shop.branch_id)
        assert branch is not None
        branch.tax_rates = [{"tax_category_id": reduced.id, "service_mode": "eat_in", "rate_bp": COMBO_TAX_BP}]
        small = OptionChoice(name="Small", price_delta=0, is_default=True, position=0)
        large = OptionChoice(name="Large", price_delta=120, position=1)
        shake = Item(
            category_id=burger.category_id,
            name="Shake",
            price=350,
            allergens=["milk"],
            calories=400,
            option_groups=[OptionGroup(name="Size", min_select=1, max_select=1, choices=[small, large])],
        )
        combo = Item(category_id=burger.category_id, name="Burger Menu", price=1100, tax_category_id=reduced.id)
        session.add_all([shake, combo])
        await session.flush()
        slots = [ComboSlot(item_id=combo.id, name=name, position=n) for n, name in enumerate(("Main", "Side", "Drink"))]
        session.add_all(slots)
        await session.flush()
        main, side, drink = slots
        session.add_all(
            [
                ComboSlotChoice(slot_id=main.id, item_id=shop.burger, is_default=True),
                ComboSlotChoice(slot_id=side.id, item_id=shop.fries, is_default=True),
                ComboSlotChoice(slot_id=drink.id, item_id=shop.cola, is_default=True, position=0),
                ComboSlotChoice(slot_id=drink.id, item_id=shake.id, upcharge=50, position=1),
                ItemAvailability(branch_id=shop.branch_id, item_id=shake.id, available=True, stock=3),
                ItemAvailability(branch_id=shop.branch_id, item_id=combo.id, available=True, stock=None),
            ]
        )
        await session.flush()
        return Combo(combo.id, main.id, side.id, drink.id, shake.id, small.id, large.id)


@pytest.fixture
async def combo(shop: Shop) -> Combo:
    """The shop with its combo."""
    return await add_combo(shop)


def with_shake(combo: Combo, size: int | None = None, shop: Shop | None = None) -> list[dict[str, Any]]:
    """The combo's slots filled with the defaults but a Shake (of `size`, or its default) to drink."""
    assert shop is not None
    drink: dict[str, Any] = {"slot_id": combo.drink, "item_id": combo.shake}
    if size is not None:
        drink["choice_ids"] = [size]
    return [
        {"slot_id": combo.main, "item_id": shop.burger},
        {"slot_id": combo.side, "item_id": shop.fries},
        drink,
    ]


async def test_a_combo_is_priced_as_its_price_plus_upcharges_and_its_components_options(
    shop: Shop, combo: Combo
) -> None:
    """1100 + Shake's 50 + Large's 120 = 1270 a combo, taxed at the combo's own category (7 %); the line lists its
    components with their names, upcharges and options; left out, components are the slots' defaults."""
    cart = await shop.send(shop.kiosk, "cart.create", {})
    components = with_shake(combo, combo.large, shop)
    data = await shop.send(
        shop.kiosk, "cart.add", {"cart_id": cart["id"], "item_id": combo.item_id, "qty": 2, "components": components}
    )
    [line] = data["lines"]
    assert (line["item_price"], line["unit_price"], line["line_total"]) == (1100, 1270, 2540)
    assert line["tax_rate_bp"] == COMBO_TAX_BP
    assert line["problem"] is None
    assert [(c["slot"], c["name"], c["upcharge"]) for c in line["components"]] == [
        ("Main", "Burger", 0),
        ("Side", "Fries", 0),
        ("Drink", "Shake", 50),
    ]
    # The burger's size is its default; the shake's the one picked.
    assert [o["name"] for o in line["components"][0]["options"]] == ["Regular"]
    assert line["components"][2]["options"] == [
        {
            "choice_id": combo.large,
            "group_id": line["components"][2]["options"][0]["group_id"],
            "group": "Size",
            "name": "Large",
            "price_delta": 120,
        }
    ]
    assert data["total"] == 2540
    defaults = await shop.send(shop.kiosk, "cart.add", {"cart_id": cart["id"], "item_id": combo.item_id})
    assert [line["unit_price"] for line in defaults["lines"]] == [1270, 1100]
    assert [c["name"] for c in defaults["lines"][1]["components"]] == ["Burger", "Fries", "Cola"]
    # The same filling again adds to its line.
    again = await shop.send(shop.kiosk, "cart.add", {"cart_id": cart["id"], "item_id": combo.item_id})
    assert [line["qty"] for line in again["lines"]] == [2, 2]


@pytest.mark.parametrize(
    ("filling", "rule"),
    [
        ("missing", "missing_slot"),
        ("twice", "repeated_slot"),
        ("unknown_slot", "unknown_slot"),
        ("not_a_choice", "unknown_choice"),
        ("bad_size", "unknown_choice"),
        ("two_sizes", "selection"),
    ],
)
async def test_a_combo_with_a_slot_not_filled_exactly_once_with_one_of_its_choices_is_refused(
    shop: Shop, combo: Combo, filling: str, rule: str
) -> None:
    """Every slot filled exactly once, with one of its choices and options that fit that item: else `invalid`
    naming the rule and the slot, and the cart is unchanged."""
    cart = await shop.send(shop.kiosk, "cart.create", {})
    components = with_shake(combo, None, shop)
    if filling == "missing":
        components = components[:2]
    elif filling == "twice":
        components.append({"slot_id": combo.side, "item_id": shop.fries})
    elif filling == "unknown_slot":
        components.append({"slot_id": 999_999, "item_id": shop.fries})
    elif filling == "not_a_choice":
        components[1] = {"slot_id": combo.side, "item_id": shop.cola}
    elif filling == "bad_size":
        components[2]["choice_ids"] = [shop.choices["Large"]]  # the burger's Large, not the shake's
    else:
        components[2]["choice_ids"] = [combo.small, combo.large]
    error = await shop.error(
        shop.kiosk, "cart.add", {"cart_id": cart["id"], "item_id": combo.item_id, "components": components}
    )
    assert error["code"] == "invalid"
    assert rule in [e["type"] for e in error["details"]["errors"]]
    assert all(e["field"] == "components" for e in error["details"]["errors"])
    assert (await shop.send(shop.kiosk, "cart.create", {}))["lines"] == []


async def test_components_for_an_item_that_is_not_a_combo_are_refused(shop: Shop, combo: Combo) -> None:
    """A cola takes no components: `invalid`, type `not_a_combo`."""
    cart = await shop.send(shop.kiosk, "cart.create", {})
    components = [{"slot_id": combo.main, "item_id": shop.burger}]
    error = await shop.error(
        shop.kiosk, "cart.add", {"cart_id": cart["id"], "item_id": shop.cola, "components": components}
    )
    assert error["code"] == "invalid"
    assert error["details"]["errors"][0]["type"] == "not_a_combo"


async def test_a_sold_out_component_refuses_only_the_fillings_that_hold_it(shop: Shop, combo: Combo) -> None:
    """Shakes sold out: a combo with a shake is `out_of_stock` naming the Shake (and the combo), one with a cola is
    still sold; the menu marks only the Shake's choice unavailable and the combo stays orderable."""
    await shop.set_item(combo.shake, stock=0)
    cart = await shop.send(shop.kiosk, "cart.create", {})
    add = {"cart_id": cart["id"], "item_id": combo.item_id, "components": with_shake(combo, None, shop)}
    error = await shop.error(shop.kiosk, "cart.add", add)
    assert error["code"] == "out_of_stock"
    assert error["details"]["items"] == [
        {"item_id": combo.shake, "name": "Shake", "requested": 1, "left": 0, "combo_item_id": combo.item_id}
    ]
    data = await shop.send(shop.kiosk, "cart.add", {"cart_id": cart["id"], "item_id": combo.item_id})
    assert data["lines"][0]["problem"] is None
    async with shop.services.db.session() as session:
        menu = MenuSnapshot.model_validate(await branch_menu(session, shop.branch_id))
    [item] = [i for c in menu.categories for i in c.items if i.id == combo.item_id]
    assert item.orderable
    drinks = {choice.name: choice.available for choice in item.combo_slots[2].choices}
    assert drinks == {"Cola": True, "Shake": False}
    assert [choice.upcharge for choice in item.combo_slots[2].choices] == [0, 50]
    assert item.combo_slots[2].choices[1].allergens == ["milk"]
    # Every choice of a slot gone: the combo is not orderable.
    await shop.set_item(shop.cola, available=False)
    async with shop.services.db.session() as session:
        menu = MenuSnapshot.model_validate(await branch_menu(session, shop.branch_id))
    [item] = [i for c in menu.categories for i in c.items if i.id == combo.item_id]
    assert not item.orderable


async def test_placing_a_combo_reserves_each_component_and_cancelling_gives_them_back(shop: Shop, combo: Combo) -> None:
    """Two combos with shakes take 2 shakes and 2 fries; the order line keeps its components for the kitchen and the
    receipt; a cancel gives both back. Fries counted together with a combo's fries: never oversold."""
    order = await shop.placed_order(
        [{"item_id": combo.item_id, "qty": 2, "components": with_shake(combo, combo.large, shop)}]
    )
    assert (await shop.stock(combo.shake), await shop.stock(shop.fries)) == (1, 8)
    [line] = order["lines"]
    assert (line["item_id"], line["unit_price"], line["line_total"]) == (combo.item_id, 1270, 2540)
    assert [(c["item_id"], c["name"]) for c in line["components"]] == [
        (shop.burger, "Burger"),
        (shop.fries, "Fries"),
        (combo.shake, "Shake"),
    ]
    assert [o["name"] for o in line["components"][2]["options"]] == ["Large"]
    await shop.send(shop.kiosk, "order.cancel", {"order_id": order["id"]})
    assert (await shop.stock(combo.shake), await shop.stock(shop.fries)) == (3, 10)
    # 3 shakes left: two combos and two shakes alone are four, refused when placed.
    cart = await shop.send(shop.kiosk, "cart.create", {})
    components = with_shake(combo, None, shop)
    added = await shop.send(
        shop.kiosk, "cart.add", {"cart_id": cart["id"], "item_id": combo.item_id, "components": components}
    )
    await shop.send(shop.kiosk, "cart.add", {"cart_id": cart["id"], "item_id": combo.shake, "qty": 2})
    update = {"cart_id": cart["id"], "line_id": added["lines"][0]["id"], "qty": 2}
    error = await shop.error(shop.kiosk, "cart.update", update)
    assert error["code"] == "out_of_stock"
    assert error["details"]["items"][0]["item_id"] == combo.shake
    await shop.set_item(combo.shake, stock=2)
    error = await shop.error(shop.kiosk, "order.place", {"cart_id": cart["id"]})
    assert error["code"] == "out_of_stock"
    assert [(s["item_id"], s["requested"], s["left"]) for s in error["details"]["items"]] == [(combo.shake, 3, 2)]
    assert await shop.stock(combo.shake) == 2


async def test_a_paid_combo_reaches_the_kitchen_and_the_receipt_with_its_components(shop: Shop, combo: Combo) -> None:
    """The paid order (as the kitchen is told it) and its receipt list the combo's components in slot order."""
    order = await shop.paid_order([{"item_id": combo.item_id, "components": with_shake(combo, combo.large, shop)}])
    [line] = order["lines"]
    assert [c["slot"] for c in line["components"]] == ["Main", "Side", "Drink"]
    receipt = await shop.send(shop.kiosk, "order.receipt", {"order_id": order["id"]})
    [receipt_line] = receipt["lines"]
    assert [(c["name"], c["upcharge"]) for c in receipt_line["components"]] == [
        ("Burger", 0),
        ("Fries", 0),
        ("Shake", 50),
    ]


async def test_a_breakfast_combo_is_sold_inside_its_window_and_a_component_outside_its_own_is_refused(
    shop: Shop, combo: Combo
) -> None:
    """The combo in Breakfast (06:00-11:00, Berlin): added at 09:00 with a large shake, refused at 11:01 naming the
    window. A combo sold all day whose Shake is breakfast-only refuses the shake after 11:00, not the combo."""
    async with shop.services.db.session() as session:
        breakfast = Daypart(name="Breakfast", starts_at=time(6), ends_at=time(11))
        session.add(breakfast)
        await session.flush()
        await session.execute(update(Item).where(Item.id == combo.item_id).values(daypart_id=breakfast.id))
        breakfast_id = breakfast.id
    cart = await run_at(shop, BREAKFAST_TIME, "cart.create", {})
    add = {"cart_id": cart["id"], "item_id": combo.item_id, "components": with_shake(combo, combo.large, shop)}
    data = await run_at(shop, BREAKFAST_TIME, "cart.add", add)
    assert data["total"] == 1270
    refused = await refused_at(shop, AFTER_BREAKFAST, "cart.add", add)
    assert refused.code == "out_of_stock"
    assert refused.details["items"][0]["window"] == BREAKFAST_WINDOW
    async with shop.services.db.session() as session:
        await session.execute(update(Item).where(Item.id == combo.item_id).values(daypart_id=None))
        await session.execute(update(Item).where(Item.id == combo.shake).values(daypart_id=breakfast_id))
    refused = await refused_at(shop, AFTER_BREAKFAST, "cart.add", add)
    assert [(s["item_id"], s["combo_item_id"], s["reason"]) for s in refused.details["items"]] == [
        (combo.shake, combo.item_id, "daypart")
    ]
    # The cart built at breakfast is not placed after it, the shake named.
    refused = await refused_at(shop, AFTER_BREAKFAST, "order.place", {"cart_id": cart["id"]})
    assert refused.code == "out_of_stock"
    assert [(s["item_id"], s["reason"]) for s in refused.details["items"]] == [(combo.shake, "daypart")]
    with_cola = {"cart_id": cart["id"], "item_id": combo.item_id}
    assert (await run_at(shop, AFTER_BREAKFAST, "cart.add", with_cola))["lines"][1]["problem"] is None
