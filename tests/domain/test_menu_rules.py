"""Option-group rules: limits that fit the choices, defaults that form a valid selection."""

from __future__ import annotations

from dataclasses import dataclass, field

import pytest

from server.domain.menu_rules import RuleBreach, group_breaches, option_groups_breaches, selection_problem


@dataclass
class Choice:
    """A choice as stored or sent."""

    is_default: bool = False


@dataclass
class Group:
    """An option group as stored or sent."""

    min_select: int
    max_select: int
    choices: list[Choice] = field(default_factory=list)


def group(min_select: int, max_select: int, choices: int, defaults: int = 0) -> Group:
    """A group with `choices` choices, the first `defaults` of them default."""
    return Group(min_select, max_select, [Choice(is_default=i < defaults) for i in range(choices)])


@pytest.mark.parametrize(
    "sound",
    [
        group(1, 1, 3, defaults=1),  # "Size": exactly one, with a default
        group(1, 1, 3),  # exactly one, the customer must choose
        group(0, 3, 5, defaults=2),  # "Extras": up to three, two pre-ticked
        group(0, 1, 1),
        group(2, 2, 2, defaults=2),
    ],
)
def test_sound_groups_break_no_rule(sound: Group) -> None:
    """Groups customers can answer pass."""
    assert group_breaches(sound) == []


@pytest.mark.parametrize(
    ("broken", "rule", "path"),
    [
        (group(-1, 1, 2), "min_not_negative", ("min_select",)),
        (group(0, 0, 2), "max_at_least_one", ("max_select",)),
        (group(2, 1, 3), "min_above_max", ("min_select",)),
        (group(0, 3, 2), "max_above_choices", ("max_select",)),
        (group(0, 1, 0), "max_above_choices", ("max_select",)),
        (group(3, 3, 2), "min_above_choices", ("min_select",)),
        (group(0, 1, 3, defaults=2), "defaults_not_a_selection", ("choices",)),
        (group(2, 3, 3, defaults=1), "defaults_not_a_selection", ("choices",)),
    ],
)
def test_each_broken_rule_is_named_with_its_field(broken: Group, rule: str, path: tuple[str, ...]) -> None:
    """A broken limit is reported with a stable rule name and the field it concerns."""
    breaches = group_breaches(broken)
    assert (path, rule) in [(breach.path, breach.rule) for breach in breaches]


def test_several_broken_rules_are_all_reported() -> None:
    """Every problem of a group comes back at once, so an admin fixes them in one go."""
    rules = {breach.rule for breach in group_breaches(group(4, 3, 2, defaults=2))}
    assert rules == {"min_above_max", "max_above_choices", "min_above_choices", "defaults_not_a_selection"}


def test_breaches_of_a_list_start_at_the_group_index() -> None:
    """Paths of a list of groups point at the group that broke the rule."""
    breaches = option_groups_breaches([group(1, 1, 2), group(0, 5, 2)])
    assert breaches == [RuleBreach((1, "max_select"), "max_above_choices", breaches[0].message)]
    assert "2" in breaches[0].message


@pytest.mark.parametrize(
    ("picked", "problem"),
    [(0, "pick at least 1"), (1, None), (2, None), (3, "pick at most 2")],
)
def test_a_selection_must_fit_the_limits(picked: int, problem: str | None) -> None:
    """Picking fewer than min_select or more than max_select choices is not a selection."""
    assert selection_problem(group(1, 2, 4), picked) == problem
