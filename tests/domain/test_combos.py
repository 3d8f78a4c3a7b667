"""Filling a combo's slots: exactly once each, with one of its choices, with options that fit that item; left out,
the defaults; every problem reported with its rule."""

from __future__ import annotations

import pytest

from server.domain.combos import InvalidComponents, Pick, Slot, SlotChoice, default_picks, fill, price_deltas
from server.domain.options import Choice, Group

SIZE = Group(7, "Size", 1, 1, (Choice(71, "Small", 0, is_default=True), Choice(72, "Large", 120)))
MAIN = Slot(1, "Main", (SlotChoice(100, 0, is_default=True), SlotChoice(101, 150)))
DRINK = Slot(2, "Drink", (SlotChoice(200, 0, is_default=True), SlotChoice(201, 50)))
SLOTS = [MAIN, DRINK]
GROUPS = {201: (SIZE,)}


def test_left_out_every_slot_takes_its_default_with_that_items_default_options() -> None:
    filled = fill(SLOTS, None, GROUPS)
    assert [(c.slot.id, c.choice.item_id, c.choice_ids) for c in filled] == [(1, 100, []), (2, 200, [])]
    assert price_deltas(filled) == [0, 0]


def test_a_filling_is_returned_in_slot_order_and_prices_its_upcharges_and_option_deltas() -> None:
    filled = fill(SLOTS, [Pick(2, 201, (72,)), Pick(1, 101)], GROUPS)
    assert [(c.slot.name, c.choice.item_id, c.choice_ids) for c in filled] == [("Main", 101, []), ("Drink", 201, [72])]
    assert sorted(price_deltas(filled)) == [50, 120, 150]
    # A component's options left out are its item's defaults.
    assert fill(SLOTS, [Pick(1, 100), Pick(2, 201)], GROUPS)[1].choice_ids == [71]


@pytest.mark.parametrize(
    ("picks", "rules"),
    [
        ([Pick(1, 100)], ["missing_slot"]),
        ([Pick(1, 100), Pick(1, 101), Pick(2, 200)], ["repeated_slot"]),
        ([Pick(1, 100), Pick(2, 200), Pick(9, 100)], ["unknown_slot"]),
        ([Pick(1, 200), Pick(2, 200)], ["unknown_choice"]),
        ([Pick(1, 100), Pick(2, 201, (71, 72))], ["selection"]),
        ([Pick(1, 100), Pick(2, 201, (99,))], ["unknown_choice", "selection"]),
        ([], ["missing_slot", "missing_slot"]),
    ],
)
def test_every_problem_of_a_filling_is_named_with_its_rule_and_slot(picks: list[Pick], rules: list[str]) -> None:
    with pytest.raises(InvalidComponents) as refused:
        fill(SLOTS, picks, GROUPS)
    assert [p.rule for p in refused.value.problems] == rules
    assert all(p.slot_id is not None for p in refused.value.problems)


def test_a_slot_without_a_default_must_be_filled() -> None:
    no_default = Slot(3, "Side", (SlotChoice(300, 0),))
    assert default_picks([MAIN, no_default]) == [Pick(1, 100)]
    with pytest.raises(InvalidComponents) as refused:
        fill([MAIN, no_default], None, {})
    assert [(p.rule, p.slot_id) for p in refused.value.problems] == [("missing_slot", 3)]
