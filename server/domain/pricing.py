"""How the server prices a cart: integers in minor units, tax included in the prices.

A line's unit price is the item's price plus the price deltas of the chosen options
(never below zero: a "no cheese" discount cannot make an item pay the customer); the
line total is that times the quantity, and the total is the sum of the line totals.

Menu prices include tax, as customers see them on the kiosk. The branch's rate (in
basis points: 1900 is 19 %) only splits the total into the net `subtotal` and the `tax`
it contains: tax = total x rate / (10000 + rate), rounded half up to a minor unit, so
`subtotal + tax == total` always holds.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

BASIS_POINTS = 10_000


@dataclass(frozen=True)
class Totals:
    """What an order costs: `total` as charged, split into net `subtotal` and included `tax`."""

    subtotal: int
    tax: int
    total: int


def unit_price(item_price: int, price_deltas: Iterable[int]) -> int:
    """The price of one unit of an item with the chosen options; never negative."""
    return max(0, item_price + sum(price_deltas))


def line_total(unit: int, qty: int) -> int:
    """The price of `qty` units."""
    return unit * qty


def included_tax(total: int, tax_rate_bp: int) -> int:
    """The tax contained in a tax-inclusive `total` at `tax_rate_bp`, rounded half up."""
    if total < 0 or tax_rate_bp < 0:
        raise ValueError("total and tax rate must not be negative")
    denominator = BASIS_POINTS + tax_rate_bp
    return (2 * total * tax_rate_bp + denominator) // (2 * denominator)


def totals(line_totals: Iterable[int], tax_rate_bp: int) -> Totals:
    """The totals of an order whose lines cost `line_totals`, at the branch's tax rate."""
    total = sum(line_totals)
    tax = included_tax(total, tax_rate_bp)
    return Totals(subtotal=total - tax, tax=tax, total=total)
