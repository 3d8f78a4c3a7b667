"""How the server prices a cart: integers in minor units, tax included in the prices.

A line's unit price is the item's price plus the price deltas of the chosen options
(never below zero: a "no cheese" discount cannot make an item pay the customer); the
line total is that times the quantity, and the total is the sum of the line totals.

Menu prices include tax, as customers see them on the kiosk. Each line is taxed at one
rate (in basis points: 1900 is 19 %), its item's tax category's in the cart's service
mode. The rounding rule, once per line: the tax a line contains is line total x rate /
(10000 + rate), rounded half up to a minor unit. A rate's tax is the sum of its lines',
the order's tax the sum of its rates', and its net `subtotal` the total less that tax, so
`subtotal + tax == total` always holds, and so does every rate's `net + tax == total`.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

BASIS_POINTS = 10_000


@dataclass(frozen=True)
class RateTax:
    """What the lines taxed at one rate come to: their `total` as charged and the `tax` it contains."""

    rate_bp: int
    total: int
    tax: int

    @property
    def net(self) -> int:
        """The total without its tax."""
        return self.total - self.tax


@dataclass(frozen=True)
class Totals:
    """What an order costs: `total` as charged, split into net `subtotal` and included `tax`, and that per rate
    (`taxes`, lowest rate first)."""

    subtotal: int
    tax: int
    total: int
    taxes: tuple[RateTax, ...] = ()


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


def totals(lines: Iterable[tuple[int, int]]) -> Totals:
    """The totals of an order whose lines cost `(line total, tax rate in basis points)` each."""
    by_rate: dict[int, tuple[int, int]] = {}
    for line, rate_bp in lines:
        total, tax = by_rate.get(rate_bp, (0, 0))
        by_rate[rate_bp] = (total + line, tax + included_tax(line, rate_bp))
    taxes = tuple(RateTax(rate, total, tax) for rate, (total, tax) in sorted(by_rate.items()))
    total = sum(rate.total for rate in taxes)
    if total < 0:
        raise ValueError("total and tax rate must not be negative")
    tax = sum(rate.tax for rate in taxes)
    return Totals(subtotal=total - tax, tax=tax, total=total, taxes=taxes)
