"""Which components a combo line may carry: the customer's filling of its slots checked against the combo.

A combo (meal deal) has slots (main, side, drink); each must be filled exactly once, with one of the slot's
choices (an item), and that item's own options are checked by its own groups (server/domain/options.py).
`components` left out means "the defaults": every slot's default choice with that item's default options, which
needs a default in every slot. A component's options left out likewise mean that item's defaults.

The line's unit price is the combo's price, plus the chosen items' upcharges, plus the deltas of the combo's own
options and of every component's options (domain/pricing.py, `unit_price`, never below zero).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from server.domain.options import Chosen, Group, InvalidOptions, choose


@dataclass(frozen=True)
class SlotChoice:
    """An item a slot may be filled with, at `upcharge` over the combo's price."""

    item_id: int
    upcharge: int
    is_default: bool = False


@dataclass(frozen=True)
class Slot:
    """A slot of a combo: filled by exactly one of `choices`."""

    id: int
    name: str
    choices: tuple[SlotChoice, ...]
    # Its name in other languages (server/domain/translations.py); not part of what it is.
    translations: Mapping[str, Mapping[str, str]] = field(default_factory=dict, compare=False, hash=False)


@dataclass(frozen=True)
class Pick:
    """A slot as the customer filled it: the item and that item's option choice ids (None: its defaults)."""

    slot_id: int
    item_id: int
    choice_ids: tuple[int, ...] | None = None


@dataclass(frozen=True)
class Component:
    """A slot as filled: the slot, the choice, and the item's chosen options."""

    slot: Slot
    choice: SlotChoice
    chosen: tuple[Chosen, ...]

    @property
    def choice_ids(self) -> list[int]:
        """The chosen options' ids, sorted (as cart lines keep them)."""
        return sorted(c.choice.id for c in self.chosen)


@dataclass(frozen=True)
class ComponentProblem:
    """Why a filling is not valid: a stable rule name, a message, and the slot, item or option concerned."""

    rule: str
    message: str
    slot_id: int | None = None
    item_id: int | None = None
    choice_id: int | None = None


class InvalidComponents(ValueError):
    """A filling of slots that the combo does not allow; `problems` says each reason."""

    def __init__(self, problems: Sequence[ComponentProblem]) -> None:
        super().__init__("; ".join(problem.message for problem in problems))
        self.problems = tuple(problems)


def default_picks(slots: Sequence[Slot]) -> list[Pick]:
    """Every slot filled with its default choice (a slot without one is left out: `fill` says it is missing)."""
    picks = []
    for slot in slots:
        default = next((choice for choice in slot.choices if choice.is_default), None)
        if default is not None:
            picks.append(Pick(slot.id, default.item_id))
    return picks


def fill(
    slots: Sequence[Slot], picks: Sequence[Pick] | None, groups_of: Mapping[int, tuple[Group, ...]]
) -> list[Component]:
    """The components of a combo line, in slot order; `InvalidComponents` listing every problem of the filling.

    `groups_of`: the option groups of each item the slots offer (an item missing from it has none).
    """
    if picks is None:
        picks = default_picks(slots)
    by_id = {slot.id: slot for slot in slots}
    problems: list[ComponentProblem] = []
    filled: dict[int, Component] = {}
    seen: set[int] = set()
    for pick in picks:
        slot = by_id.get(pick.slot_id)
        if slot is None:
            problems.append(
                ComponentProblem("unknown_slot", f"slot {pick.slot_id} is not a slot of this combo", pick.slot_id)
            )
            continue
        if slot.id in seen:
            problems.append(ComponentProblem("repeated_slot", f"{slot.name} is filled twice", slot.id))
            continue
        seen.add(slot.id)
        choice = next((c for c in slot.choices if c.item_id == pick.item_id), None)
        if choice is None:
            message = f"{slot.name}: item {pick.item_id} is not one of its choices"
            problems.append(ComponentProblem("unknown_choice", message, slot.id, pick.item_id))
            continue
        try:
            chosen = choose(groups_of.get(choice.item_id, ()), pick.choice_ids)
        except InvalidOptions as exc:
            for problem in exc.problems:
                message = f"{slot.name}: {problem.message}"
                problems.append(ComponentProblem(problem.rule, message, slot.id, pick.item_id, problem.choice_id))
            filled[slot.id] = Component(slot, choice, ())
            continue
        filled[slot.id] = Component(slot, choice, tuple(chosen))
    for slot in slots:
        if slot.id not in seen:
            problems.append(ComponentProblem("missing_slot", f"{slot.name} is not filled", slot.id))
    if problems:
        raise InvalidComponents(problems)
    return [filled[slot.id] for slot in slots]


def price_deltas(components: Sequence[Component]) -> list[int]:
    """What the components add to the combo's price: each upcharge and each chosen option's delta."""
    return [c.choice.upcharge for c in components] + [o.choice.price_delta for c in components for o in c.chosen]
