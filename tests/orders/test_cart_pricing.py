"""Pricing one cart line (`cart_pricing.price_line`): which problem a line that cannot be ordered reports."""

from __future__ import annotations

from server.domain.options import Choice, Group
from server.orders.cart_pricing import Offer, price_line
from server.orders.cart_records import CartLineRecord

SIZE = Group(1, "Size", 1, 1, (Choice(10, "Small", 0, is_default=True), Choice(11, "Large", 100)))


def _offer(*, stock: int | None) -> Offer:
    return Offer(7, "Burger", 650, (SIZE,), offered=True, available=True, stock=stock)


def test_a_line_whose_options_no_longer_fit_reports_options_even_when_stock_is_short_too() -> None:
    """order.place refuses `options` lines; reported as `out_of_stock` instead, the line would slip past that check
    and, should the stock be there by the time it is taken, be ordered without its options."""
    line = CartLineRecord(id=1, item_id=7, qty=2, choice_ids=[99])
    priced = price_line(line, _offer(stock=1), qty_in_cart=2)
    assert priced.problem is not None and priced.problem.code == "options"
    assert priced.chosen == []


def test_a_line_with_fitting_options_and_too_few_left_is_out_of_stock() -> None:
    """The stock problem still shows when the options are fine."""
    line = CartLineRecord(id=1, item_id=7, qty=2, choice_ids=[11])
    priced = price_line(line, _offer(stock=1), qty_in_cart=2)
    assert priced.problem is not None and priced.problem.code == "out_of_stock"
    assert priced.unit_price == 750
