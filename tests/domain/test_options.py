"""Option picks: left out means the defaults, given means exactly those choices, and every problem is reported."""

from __future__ import annotations

import itertools

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from server.domain.options import Choice, Chosen, Group, InvalidOptions, choose

# No example database on disk, and no deadline: these tests do no I/O and must not flake on a busy machine.
pure = settings(database=None, deadline=None)

SIZE = Group(
    id=1,
    name="Size",
    min_select=1,
    max_select=1,
    choices=(Choice(11, "Small", 0, is_default=True), Choice(12, "Medium", 50), Choice(13, "Large", 100)),
)
EXTRAS = Group(
    id=2,
    name="Extras",
    min_select=0,
    max_select=2,
    choices=(Choice(21, "Cheese", 50, is_default=True), Choice(22, "Bacon", 80), Choice(23, "Onion", 30)),
)
SAUCE = Group(
    id=3,
    name="Sauce",
    min_select=1,
    max_select=2,
    choices=(Choice(31, "Ketchup", 0), Choice(32, "Mayo", 0)),
)
BURGER = [SIZE, EXTRAS]


def ids(chosen: list[Chosen]) -> list[int]:
    """The choice ids of a line's options, in the order given."""
    return [c.choice.id for c in chosen]


def problems_of(groups: list[Group], picked: list[int] | None) -> set[tuple[str, int | None, int | None]]:
    """The (rule, choice_id, group_id) of every problem `choose` reports for `picked`."""
    with pytest.raises(InvalidOptions) as caught:
        choose(groups, picked)
    return {(p.rule, p.choice_id, p.group_id) for p in caught.value.problems}


def test_no_pick_gives_the_defaults() -> None:
    """Leaving options out puts every group's default choices on the line."""
    assert ids(choose(BURGER, None)) == [11, 21]


def test_chosen_choices_carry_their_group() -> None:
    """Each chosen choice comes with the group it belongs to, for naming it on the receipt."""
    chosen = choose(BURGER, [13, 22])
    assert [(c.choice, c.group) for c in chosen] == [(SIZE.choices[2], SIZE), (EXTRAS.choices[1], EXTRAS)]


def test_no_pick_fails_when_a_group_has_no_defaults_but_needs_a_choice() -> None:
    """Defaults are checked like any pick: a required group without defaults makes the customer choose."""
    assert problems_of([SIZE, SAUCE], None) == {("selection", None, 3)}


@pytest.mark.parametrize("picked", list(itertools.permutations([23, 13, 22])))
def test_a_pick_comes_back_in_menu_order(picked: tuple[int, ...]) -> None:
    """The chosen choices follow the menu's group and choice order, whatever order they were picked in."""
    assert ids(choose(BURGER, list(picked))) == [13, 22, 23]


def test_a_pick_replaces_the_defaults() -> None:
    """Given options are exactly the line's options: unpicked defaults are not added."""
    assert ids(choose(BURGER, [12])) == [12]


def test_a_group_with_defaults_and_min_zero_allows_picking_none() -> None:
    """The customer may untick every default of an optional group."""
    assert choose([EXTRAS], []) == []


def test_a_required_group_with_a_default_still_needs_a_pick() -> None:
    """A default does not excuse an empty pick when min_select is above 0."""
    assert problems_of([SIZE], []) == {("selection", None, 1)}


def test_an_unknown_choice_is_named() -> None:
    """A choice id of no group of the item is refused, naming the id."""
    assert problems_of(BURGER, [11, 99]) == {("unknown_choice", 99, None)}


def test_a_choice_of_another_item_is_unknown() -> None:
    """A real choice that belongs to a different item's group is not an option of this one."""
    assert problems_of(BURGER, [11, 31]) == {("unknown_choice", 31, None)}


def test_a_repeated_choice_is_named() -> None:
    """Picking the same choice twice is refused, naming the choice."""
    assert problems_of(BURGER, [11, 22, 22]) == {("repeated_choice", 22, None)}


def test_too_few_choices_name_the_group() -> None:
    """Picking fewer than min_select of a group is refused, naming the group and the limit."""
    with pytest.raises(InvalidOptions) as caught:
        choose([SIZE, SAUCE], [11])
    [problem] = caught.value.problems
    assert (problem.rule, problem.group_id, problem.choice_id) == ("selection", 3, None)
    assert "Sauce" in problem.message and "at least 1" in problem.message


def test_too_many_choices_name_the_group() -> None:
    """Picking more than max_select of a group is refused, naming the group and the limit."""
    with pytest.raises(InvalidOptions) as caught:
        choose(BURGER, [11, 12])
    [problem] = caught.value.problems
    assert (problem.rule, problem.group_id, problem.choice_id) == ("selection", 1, None)
    assert "Size" in problem.message and "at most 1" in problem.message


def test_every_problem_is_reported_at_once() -> None:
    """An unknown id, a repeat, and groups out of limits all come back in one error."""
    assert problems_of([SIZE, EXTRAS, SAUCE], [99, 11, 12, 21, 21, 22, 23]) == {
        ("unknown_choice", 99, None),
        ("repeated_choice", 21, None),
        ("selection", None, 1),  # Small and Medium
        ("selection", None, 2),  # three extras
        ("selection", None, 3),  # no sauce
    }


def test_the_error_message_joins_every_problem() -> None:
    """The error's text lists each problem's message, so a log line explains the whole refusal."""
    with pytest.raises(InvalidOptions) as caught:
        choose(BURGER, [99, 11, 12])
    assert isinstance(caught.value, ValueError)
    text = str(caught.value)
    for problem in caught.value.problems:
        assert problem.message in text
    assert "99" in text and "Size" in text


@st.composite
def menus(draw: st.DrawFn) -> list[Group]:
    """Sound option groups (0 <= min <= max <= choices, max >= 1) with ids unique across the item."""
    groups: list[Group] = []
    next_id = 1
    for group_id in range(draw(st.integers(min_value=0, max_value=4))):
        count = draw(st.integers(min_value=1, max_value=5))
        max_select = draw(st.integers(min_value=1, max_value=count))
        min_select = draw(st.integers(min_value=0, max_value=max_select))
        choices = tuple(
            Choice(next_id + i, f"choice {next_id + i}", draw(st.integers(-500, 500)), draw(st.booleans()))
            for i in range(count)
        )
        next_id += count
        groups.append(Group(group_id, f"group {group_id}", min_select, max_select, choices))
    return groups


@pure
@given(st.data())
def test_a_pick_is_accepted_exactly_when_every_group_is_within_its_limits(data: st.DataObject) -> None:
    """For any sound groups and pick of known ids, choose succeeds iff each group's count fits, and returns the pick."""
    groups = data.draw(menus())
    all_ids = [choice.id for group in groups for choice in group.choices]
    picked = data.draw(st.lists(st.sampled_from(all_ids), unique=True)) if all_ids else []
    counts = {group.id: sum(1 for choice in group.choices if choice.id in picked) for group in groups}
    failing = {group.id for group in groups if not group.min_select <= counts[group.id] <= group.max_select}
    if not failing:
        chosen = choose(groups, picked)
        assert ids(chosen) == [i for i in all_ids if i in picked]
        assert all(c.choice in c.group.choices for c in chosen)
    else:
        assert problems_of(groups, picked) == {("selection", None, group_id) for group_id in failing}
