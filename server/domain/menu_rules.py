"""What makes an item's option groups sound, and a pick of choices a valid selection.

A group asks the customer to pick between `min_select` and `max_select` of its choices:
"Size" is exactly one (1..1), "Extras" up to three (0..3). The same limits decide
whether a group's default choices, and later a cart line's picked choices, are valid.
Groups and choices are read through small protocols, so request bodies and stored
rows are checked alike.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol


class ChoiceLike(Protocol):
    """A choice as the rules see it."""

    @property
    def is_default(self) -> bool:
        """True when the choice is picked unless the customer changes it."""
        ...


class GroupLike(Protocol):
    """An option group as the rules see it."""

    @property
    def min_select(self) -> int:
        """The fewest choices the customer must pick."""
        ...

    @property
    def max_select(self) -> int:
        """The most choices the customer may pick."""
        ...

    @property
    def choices(self) -> Sequence[ChoiceLike]:
        """The group's choices."""
        ...


@dataclass(frozen=True)
class RuleBreach:
    """One broken rule: the field it concerns (path from the list of groups), a stable rule name and why."""

    path: tuple[int | str, ...]
    rule: str
    message: str


def selection_problem(group: GroupLike, picked: int) -> str | None:
    """Why picking `picked` choices of `group` is not a valid selection, or None when it is."""
    if picked < group.min_select:
        return f"pick at least {group.min_select}"
    if picked > group.max_select:
        return f"pick at most {group.max_select}"
    return None


def group_breaches(group: GroupLike) -> list[RuleBreach]:
    """Every rule `group` breaks, with paths relative to the group."""
    breaches: list[RuleBreach] = []
    count = len(group.choices)
    if group.min_select < 0:
        breaches.append(RuleBreach(("min_select",), "min_not_negative", "min_select must be 0 or more"))
    if group.max_select < 1:
        breaches.append(RuleBreach(("max_select",), "max_at_least_one", "max_select must be 1 or more"))
    if group.min_select > group.max_select:
        breaches.append(
            RuleBreach(("min_select",), "min_above_max", f"min_select exceeds max_select ({group.max_select})")
        )
    if group.max_select > count:
        breaches.append(
            RuleBreach(("max_select",), "max_above_choices", f"max_select exceeds the number of choices ({count})")
        )
    if group.min_select > count:
        breaches.append(
            RuleBreach(("min_select",), "min_above_choices", f"min_select exceeds the number of choices ({count})")
        )
    defaults = sum(1 for choice in group.choices if choice.is_default)
    # No defaults means the customer must choose; defaults, when there are any, must be a selection by themselves.
    problem = selection_problem(group, defaults) if defaults else None
    if problem is not None:
        breaches.append(
            RuleBreach(
                ("choices",), "defaults_not_a_selection", f"the default choices are not a valid selection: {problem}"
            )
        )
    return breaches


def option_groups_breaches(groups: Sequence[GroupLike]) -> list[RuleBreach]:
    """Every rule the option groups of one item break, with paths starting at the group's index."""
    return [
        RuleBreach((index, *breach.path), breach.rule, breach.message)
        for index, group in enumerate(groups)
        for breach in group_breaches(group)
    ]
