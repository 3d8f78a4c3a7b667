"""Hostile command data is refused as `invalid` naming the field; another branch's order is `not_found`."""

from __future__ import annotations

from typing import Any

import pytest

from tests.shop import Shop, principal_of
from tests.world import World

HUGE = 3_000_000_000  # wider than the 32-bit columns


def _fields(error: dict[str, Any]) -> set[str]:
    """The fields an `invalid` error names."""
    assert error["code"] == "invalid", error
    return {entry["field"] for entry in error["details"]["errors"]}


@pytest.mark.parametrize(
    ("kind", "data", "field"),
    [
        ("cart.create", {"customer_phone": "+49\x0030123456"}, "customer_phone"),
        ("cart.add", {"cart_id": 1, "item_id": 1, "options": [HUGE]}, "options"),
        ("cart.set_customer", {"cart_id": 1, "phone": "\x00"}, "phone"),
        ("order.place", {"cart_id": 1, "expected_total": HUGE}, "expected_total"),
        ("order.cancel", {"order_id": -HUGE}, "order_id"),
        ("payment.start", {"order_id": HUGE}, "order_id"),
    ],
)
async def test_kiosk_commands_refuse_nul_and_wide_integers(
    shop: Shop, kind: str, data: dict[str, Any], field: str
) -> None:
    """Text with NUL and integers beyond 32 bits in a kiosk's command data are `invalid` naming the field."""
    assert field in _fields(await shop.error(shop.kiosk, kind, data))


async def test_a_terminal_result_with_nul_is_invalid(shop: Shop) -> None:
    """`payment.result` whose message or reference holds NUL is `invalid` naming that field."""
    for field in ("message", "provider_ref"):
        data = {"payment_id": 1, "status": "declined", field: "card\x00"}
        assert _fields(await shop.error(shop.terminal, "payment.result", data)) == {field}


async def test_staff_commands_refuse_wide_integers(shop: Shop) -> None:
    """`item.set_available` with an item or branch id beyond 32 bits is `invalid` naming it."""
    error = await shop.error(shop.staff, "item.set_available", {"item_id": HUGE, "available": False})
    assert _fields(error) == {"item_id"}


async def test_another_branchs_order_is_not_found_for_staff(shop: Shop, world: World) -> None:
    """Staff of branch b acting on a branch-a order get the `not_found` of a missing order, not `forbidden`."""
    cart = await shop.send(shop.kiosk, "cart.create", {})
    await shop.send(shop.kiosk, "cart.add", {"cart_id": cart["id"], "item_id": shop.cola})
    order = await shop.send(shop.kiosk, "order.place", {"cart_id": cart["id"]})
    staff_b = await principal_of(shop.services, world.staff_b.headers["Authorization"].split()[1])
    hidden = await shop.error(staff_b, "order.mark_paid", {"order_id": order["id"]})
    absent = await shop.error(staff_b, "order.mark_paid", {"order_id": order["id"] + 1000})
    assert hidden["code"] == absent["code"] == "not_found"
    assert "branch_id" not in hidden["details"]
