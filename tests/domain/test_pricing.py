"""Pricing: unit prices never negative, lines sum to the total, and the tax each line contains rounds half up."""

from __future__ import annotations

from dataclasses import replace
from fractions import Fraction

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from server.domain.pricing import RateTax, Totals, included_tax, line_total, totals, unit_price

# No example database on disk, and no deadline: these tests do no I/O and must not flake on a busy machine.
pure = settings(database=None, deadline=None)

rates = st.integers(min_value=0, max_value=10_000)
amounts = st.integers(min_value=0, max_value=10**12)
line_totals = st.lists(st.integers(min_value=0, max_value=10**9), max_size=30)
taxed_lines = st.lists(st.tuples(st.integers(min_value=0, max_value=10**9), rates), max_size=30)


def at(lines: list[int], rate: int) -> list[tuple[int, int]]:
    """The lines, all taxed at `rate`."""
    return [(line, rate) for line in lines]


@pure
@given(line_totals, rates)
def test_subtotal_and_tax_add_up_to_the_total(lines: list[int], rate: int) -> None:
    """For any lines and rate, the net subtotal plus the included tax is exactly the total charged."""
    result = totals(at(lines, rate))
    assert result.subtotal + result.tax == result.total


@pure
@given(line_totals, rates)
def test_total_is_the_sum_of_the_line_totals(lines: list[int], rate: int) -> None:
    """The total is what the lines cost together, whatever the tax rate."""
    total = 0
    for line in lines:
        total += line
    assert totals(at(lines, rate)).total == total


@pure
@given(line_totals, rates)
def test_tax_lies_between_zero_and_the_total(lines: list[int], rate: int) -> None:
    """The included tax is never negative and never more than the total, so the subtotal is never negative."""
    result = totals(at(lines, rate))
    assert 0 <= result.tax <= result.total
    assert result.subtotal >= 0


@pure
@given(line_totals)
def test_no_tax_at_rate_zero(lines: list[int]) -> None:
    """At a 0 % rate the whole total is net."""
    result = totals(at(lines, 0))
    assert result.tax == 0
    assert result.subtotal == result.total


@pure
@given(amounts, amounts, rates)
def test_tax_does_not_decrease_as_the_total_grows(a: int, b: int, rate: int) -> None:
    """At a fixed rate, a larger total never contains less tax."""
    low, high = sorted((a, b))
    assert included_tax(low, rate) <= included_tax(high, rate)


@pure
@given(amounts, rates, rates)
def test_tax_does_not_decrease_as_the_rate_grows(total: int, a: int, b: int) -> None:
    """For a fixed total, a higher rate never means less included tax."""
    low, high = sorted((a, b))
    assert included_tax(total, low) <= included_tax(total, high)


@pure
@given(amounts, rates)
def test_tax_is_the_exact_share_rounded_half_up(total: int, rate: int) -> None:
    """The tax is within half a minor unit of total x rate / (10000 + rate), and a tie rounds up."""
    exact = Fraction(total * rate, 10_000 + rate)
    tax = included_tax(total, rate)
    # Half up: exact - 1/2 < tax <= exact + 1/2 (equality on the right exactly when exact ends in .5).
    assert exact - Fraction(1, 2) < tax <= exact + Fraction(1, 2)


@pure
@given(st.integers(min_value=0, max_value=10**9))
def test_ties_round_up(half_units: int) -> None:
    """At 100 % a total of 2k+1 contains k+1/2 of tax, which is charged as k+1."""
    assert included_tax(2 * half_units + 1, 10_000) == half_units + 1


@pure
@given(st.integers(min_value=-(10**6), max_value=10**6), st.lists(st.integers(min_value=-(10**5), max_value=10**5)))
def test_unit_price_is_price_plus_deltas_but_never_negative(item_price: int, deltas: list[int]) -> None:
    """A unit costs the item's price plus its options' deltas, or nothing when discounts exceed the price."""
    price = unit_price(item_price, deltas)
    added = item_price
    for delta in deltas:
        added += delta
    assert price >= 0
    assert price == (added if added >= 0 else 0)


@pure
@given(st.integers(min_value=0, max_value=10**6), st.lists(st.integers(min_value=-(10**5), max_value=10**5)))
def test_unit_price_reads_the_deltas_once(item_price: int, deltas: list[int]) -> None:
    """Deltas given as a one-shot iterator are priced like the same deltas in a list."""
    assert unit_price(item_price, iter(deltas)) == unit_price(item_price, list(deltas))


@pure
@given(st.integers(min_value=0, max_value=10**6), st.integers(min_value=0, max_value=200))
def test_line_total_is_the_unit_price_qty_times(unit: int, qty: int) -> None:
    """A line of qty units costs the unit price added qty times."""
    assert line_total(unit, qty) == sum([unit] * qty)


@pytest.mark.parametrize(
    ("lines", "rate", "expected"),
    [
        ([1190], 1900, Totals(subtotal=1000, tax=190, total=1190)),  # 19 % German VAT
        ([450, 450, 290], 1900, Totals(subtotal=1000, tax=190, total=1190)),
        ([1070], 700, Totals(subtotal=1000, tax=70, total=1070)),  # 7 %
        ([100], 1900, Totals(subtotal=84, tax=16, total=100)),  # 15.97 -> 16
        ([3], 1900, Totals(subtotal=3, tax=0, total=3)),  # 0.48 -> 0
        ([4], 1900, Totals(subtotal=3, tax=1, total=4)),  # 0.64 -> 1
        ([3], 2000, Totals(subtotal=2, tax=1, total=3)),  # exactly 0.5 -> 1
        ([9], 2000, Totals(subtotal=7, tax=2, total=9)),  # exactly 1.5 -> 2
        ([1], 10_000, Totals(subtotal=0, tax=1, total=1)),  # exactly 0.5 -> 1
        ([], 1900, Totals(subtotal=0, tax=0, total=0)),
        ([500, 0], 0, Totals(subtotal=500, tax=0, total=500)),
    ],
)
def test_worked_examples(lines: list[int], rate: int, expected: Totals) -> None:
    """Known totals split into the subtotal and tax a receipt would show."""
    assert replace(totals(at(lines, rate)), taxes=()) == expected


def test_a_cart_priced_end_to_end() -> None:
    """A burger with extras and a discounted drink add up to the expected totals."""
    burger = line_total(unit_price(800, [150, 50]), 2)  # 10.00 each with cheese and bacon
    drink = line_total(unit_price(250, [-300]), 1)  # a discount larger than the price: free, not negative
    assert (burger, drink) == (2000, 0)
    assert totals(at([burger, drink], 1900)) == Totals(1681, 319, 2000, (RateTax(1900, 2000, 319),))


@pytest.mark.parametrize(("total", "rate"), [(-1, 1900), (100, -1), (-100, -100)])
def test_negative_total_or_rate_is_refused(total: int, rate: int) -> None:
    """A negative total or tax rate is a programming error, not something to price."""
    with pytest.raises(ValueError):
        included_tax(total, rate)


def test_lines_summing_below_zero_are_refused() -> None:
    """Totals refuse lines whose sum is negative instead of reporting negative tax."""
    with pytest.raises(ValueError):
        totals(at([100, -200], 1900))


@pure
@given(taxed_lines)
def test_each_rate_adds_up_and_the_rates_add_up_to_the_order(lines: list[tuple[int, int]]) -> None:
    """Lines at several rates: each rate's net and tax make its total, and the rates' make the order's."""
    result = totals(lines)
    assert [rate.rate_bp for rate in result.taxes] == sorted({rate for _, rate in lines})
    for rate in result.taxes:
        assert rate.net + rate.tax == rate.total
        assert rate.total == sum(line for line, line_rate in lines if line_rate == rate.rate_bp)
    assert result.total == sum(rate.total for rate in result.taxes) == sum(line for line, _ in lines)
    assert result.tax == sum(rate.tax for rate in result.taxes)
    assert result.subtotal + result.tax == result.total


@pure
@given(taxed_lines)
def test_the_tax_is_each_lines_own_rounded_half_up(lines: list[tuple[int, int]]) -> None:
    """The rounding rule applies once per line: the tax is the sum of every line's rounded share, never a
    rounding of a rate's or the order's total."""
    assert totals(lines).tax == sum(included_tax(line, rate) for line, rate in lines)


def test_rounding_per_line_can_differ_from_rounding_the_total() -> None:
    """Two lines of 0.03 at 20 % each hold 0.005, rounded up to 0.01: 0.02 in all, where 0.06 would hold 0.01."""
    assert totals(at([3, 3], 2000)).tax == 2
    assert included_tax(6, 2000) == 1


def test_a_takeaway_burger_and_a_cola_in_germany() -> None:
    """Food at 7 % and a drink at 19 %, as a German takeaway is taxed: each rate on its own line of the receipt."""
    result = totals([(1070, 700), (1190, 1900)])
    assert result == Totals(2000, 260, 2260, (RateTax(700, 1070, 70), RateTax(1900, 1190, 190)))
    assert [(rate.net, rate.tax) for rate in result.taxes] == [(1000, 70), (1000, 190)]
