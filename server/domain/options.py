"""Which option choices a cart line may carry: the customer's pick checked against the item's groups.

`options` left out means "the defaults": every group's default choices. `options` given
is exactly what the customer picked, and must be a valid selection in every group
(between `min_select` and `max_select` of its choices), with no unknown or repeated
choice. A group with defaults therefore lets the customer pick none of them only when
its `min_select` is 0.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from server.domain.menu_rules import selection_problem


@dataclass(frozen=True)
class Choice:
    """One answer of an option group, with its price difference in minor units."""

    id: int
    name: str
    price_delta: int
    is_default: bool = False


@dataclass(frozen=True)
class Group:
    """An option group of an item: pick between `min_select` and `max_select` of `choices`."""

    id: int
    name: str
    min_select: int
    max_select: int
    choices: tuple[Choice, ...]


@dataclass(frozen=True)
class Chosen:
    """A choice as picked for a line, with the name of its group."""

    choice: Choice
    group: Group


@dataclass(frozen=True)
class OptionProblem:
    """Why a pick is not valid: a stable rule name, a message, and the choice or group concerned."""

    rule: str
    message: str
    choice_id: int | None = None
    group_id: int | None = None


class InvalidOptions(ValueError):
    """A pick of options that the item's groups do not allow; `problems` says each reason."""

    def __init__(self, problems: Sequence[OptionProblem]) -> None:
        super().__init__("; ".join(problem.message for problem in problems))
        self.problems = tuple(problems)


def choose(groups: Sequence[Group], picked: Sequence[int] | None) -> list[Chosen]:
    """The choices a line carries, in menu order; `InvalidOptions` listing every problem of the pick."""
    if picked is None:
        picked = [choice.id for group in groups for choice in group.choices if choice.is_default]
    owner = {choice.id: (group, choice) for group in groups for choice in group.choices}
    problems: list[OptionProblem] = []
    seen: set[int] = set()
    for choice_id in picked:
        if choice_id not in owner:
            problems.append(
                OptionProblem("unknown_choice", f"choice {choice_id} is not an option of this item", choice_id)
            )
        elif choice_id in seen:
            problems.append(OptionProblem("repeated_choice", f"choice {choice_id} is picked twice", choice_id))
        seen.add(choice_id)
    for group in groups:
        count = sum(1 for choice in group.choices if choice.id in seen)
        problem = selection_problem(group, count)
        if problem is not None:
            problems.append(OptionProblem("selection", f"{group.name}: {problem}", group_id=group.id))
    if problems:
        raise InvalidOptions(problems)
    return [Chosen(choice, group) for group in groups for choice in group.choices if choice.id in seen]
