"""Service modes and tax categories: a cart is taxed at its mode's rates, per line, and its order keeps them.

The branch here taxes food at 19 % eaten in and 7 % taken away, and drinks at 19 % either
way, as a German restaurant does.
"""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import update

from persistence.tables import Branch, Item, TaxCategory
from tests.shop import Shop

# (tax category, service mode, rate in basis points)
GERMANY = [
    ("food", "eat_in", 1900),
    ("food", "takeaway", 700),
    ("drinks", "eat_in", 1900),
    ("drinks", "takeaway", 1900),
]


@pytest.fixture
async def taxed(shop: Shop) -> Shop:
    """The shop with the burger as food, the cola as a drink, and the branch's German rates; default rate 0."""
    async with shop.services.db.session() as session:
        categories = {name: TaxCategory(name=name) for name in ("food", "drinks")}
        session.add_all(categories.values())
        await session.flush()
        rates = [
            {"tax_category_id": categories[category].id, "service_mode": mode, "rate_bp": rate}
            for category, mode, rate in GERMANY
        ]
        await session.execute(update(Branch).where(Branch.id == shop.branch_id).values(tax_rates=rates, tax_rate_bp=0))
        for item, category in ((shop.burger, "food"), (shop.cola, "drinks")):
            await session.execute(update(Item).where(Item.id == item).values(tax_category_id=categories[category].id))
    return shop


def taxes(cart_or_order: dict[str, Any]) -> list[tuple[int, int, int, int]]:
    """(rate, total, tax, net) per rate."""
    return [(t["rate_bp"], t["total"], t["tax"], t["net"]) for t in cart_or_order["taxes"]]


async def _burger_and_cola(shop: Shop, **create: Any) -> dict[str, Any]:
    cart = await shop.send(shop.kiosk, "cart.create", create)
    await shop.send(shop.kiosk, "cart.add", {"cart_id": cart["id"], "item_id": shop.burger})
    return await shop.send(shop.kiosk, "cart.add", {"cart_id": cart["id"], "item_id": shop.cola})


async def test_a_cart_is_taxed_at_its_modes_rates_and_changing_the_mode_reprices_it(taxed: Shop) -> None:
    """Eaten in, burger and cola are both at 19 %; taken away the burger drops to 7 %: the tax changes, the price
    does not, and the kiosk hears the repriced cart."""
    shop = taxed
    eat_in = await _burger_and_cola(shop)
    assert eat_in["service_mode"] == "eat_in"
    assert [line["tax_rate_bp"] for line in eat_in["lines"]] == [1900, 1900]
    # Each line rounded on its own: 900 holds 143.70 -> 144, 300 holds 47.90 -> 48.
    assert taxes(eat_in) == [(1900, 1200, 192, 1008)]
    assert (eat_in["subtotal"], eat_in["tax"], eat_in["total"]) == (1008, 192, 1200)

    takeaway = await shop.send(
        shop.kiosk, "cart.set_service_mode", {"cart_id": eat_in["id"], "service_mode": "takeaway"}
    )
    assert takeaway["service_mode"] == "takeaway"
    assert takeaway["version"] == eat_in["version"] + 1
    assert [line["tax_rate_bp"] for line in takeaway["lines"]] == [700, 1900]
    # 900 at 7 % holds 58.88 -> 59.
    assert taxes(takeaway) == [(700, 900, 59, 841), (1900, 300, 48, 252)]
    assert (takeaway["subtotal"], takeaway["tax"], takeaway["total"]) == (1093, 107, 1200)


async def test_an_item_of_no_category_or_of_one_without_a_rate_takes_the_default_rate(taxed: Shop) -> None:
    """Fries have no tax category: they are taxed at the branch's default rate, in either mode."""
    shop = taxed
    async with shop.services.db.session() as session:
        await session.execute(update(Branch).where(Branch.id == shop.branch_id).values(tax_rate_bp=1000))
    cart = await shop.send(shop.kiosk, "cart.create", {"service_mode": "takeaway"})
    cart = await shop.send(shop.kiosk, "cart.add", {"cart_id": cart["id"], "item_id": shop.fries})
    (fries,) = cart["lines"]
    assert fries["tax_rate_bp"] == 1000
    assert taxes(cart) == [(1000, fries["line_total"], cart["tax"], cart["subtotal"])]


async def test_a_mode_the_branch_does_not_offer_is_refused_and_a_new_cart_takes_the_branchs_default(
    taxed: Shop,
) -> None:
    """A takeaway-only branch: a cart starts as takeaway, and eat-in is refused at creation and later, naming the
    modes the branch offers, with the cart left as it was."""
    shop = taxed
    async with shop.services.db.session() as session:
        await session.execute(update(Branch).where(Branch.id == shop.branch_id).values(service_modes=["takeaway"]))
    cart = await shop.send(shop.kiosk, "cart.create", {})
    assert cart["service_mode"] == "takeaway"

    refused = await shop.error(shop.kiosk, "cart.create", {"service_mode": "eat_in"})
    assert refused["code"] == "invalid"
    assert refused["details"]["service_modes"] == ["takeaway"]
    assert refused["details"]["errors"][0]["field"] == "service_mode"

    changed = await shop.error(shop.kiosk, "cart.set_service_mode", {"cart_id": cart["id"], "service_mode": "eat_in"})
    assert changed["code"] == "invalid"
    unchanged = await shop.send(
        shop.kiosk, "cart.set_service_mode", {"cart_id": cart["id"], "service_mode": "takeaway"}
    )
    assert unchanged["version"] == cart["version"] + 1  # the refused change was rolled back, not counted

    unknown = await shop.error(shop.kiosk, "cart.create", {"service_mode": "delivery"})
    assert unknown["code"] == "invalid"


async def test_the_order_keeps_its_mode_and_tax_per_rate_whatever_the_rates_do_later(taxed: Shop) -> None:
    """order.place freezes the cart's mode, its tax per rate and every line's rate; new rates change no order."""
    shop = taxed
    cart = await _burger_and_cola(shop, service_mode="takeaway")
    order = await shop.send(shop.kiosk, "order.place", {"cart_id": cart["id"]})
    assert order["service_mode"] == "takeaway"
    assert taxes(order) == taxes(cart) == [(700, 900, 59, 841), (1900, 300, 48, 252)]
    assert [line["tax_rate_bp"] for line in order["lines"]] == [700, 1900]
    assert (order["subtotal"], order["tax"], order["total"]) == (cart["subtotal"], cart["tax"], cart["total"])

    async with shop.services.db.session() as session:
        await session.execute(update(Branch).where(Branch.id == shop.branch_id).values(tax_rates=[]))
    paid = await shop.send(shop.staff, "order.mark_paid", {"order_id": order["id"]})
    assert (paid["service_mode"], taxes(paid), paid["tax"]) == ("takeaway", taxes(order), order["tax"])


async def test_a_cart_whose_mode_the_branch_stopped_offering_is_not_placed(taxed: Shop) -> None:
    """Eat-in chosen, then the branch goes takeaway-only: order.place is `invalid` naming the modes, nothing is
    ordered, and the cart can be set to takeaway and placed."""
    shop = taxed
    cart = await _burger_and_cola(shop)
    async with shop.services.db.session() as session:
        await session.execute(update(Branch).where(Branch.id == shop.branch_id).values(service_modes=["takeaway"]))
    refused = await shop.error(shop.kiosk, "order.place", {"cart_id": cart["id"]})
    assert (refused["code"], refused["details"]["service_modes"]) == ("invalid", ["takeaway"])
    await shop.send(shop.kiosk, "cart.set_service_mode", {"cart_id": cart["id"], "service_mode": "takeaway"})
    order = await shop.send(shop.kiosk, "order.place", {"cart_id": cart["id"]})
    assert order["service_mode"] == "takeaway"
