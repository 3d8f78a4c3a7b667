"""An item's option groups and choices as the items REST routes (server/api/items.py) read and write them: written
as a whole, a group or choice sent with its `id` updated in place (carts refer to choice ids), one without created,
those left out deleted."""

from __future__ import annotations

from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from persistence.enums import Allergen
from persistence.tables import Item, OptionChoice, OptionGroup
from server.api.fields import Count, FieldError, Position, field_error
from server.api.nutrition import Allergens, CaloriesDelta
from server.api.translations import NameTranslations, TranslationsOut
from server.domain.menu_rules import option_groups_breaches
from server.validation import INT32_MAX, Input, RowId

Name = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=120)]
PriceDelta = Annotated[int, Field(strict=True, ge=-INT32_MAX, le=INT32_MAX, description="minor units, may be negative")]


class ChoiceOut(BaseModel):
    """One answer of an option group; `price_delta` is added to the item's price."""

    model_config = ConfigDict(from_attributes=True)

    id: int
    name: str
    price_delta: int
    is_default: bool
    allergens: list[Allergen] = Field(description="the allergens it adds to its item's")
    calories: int | None = Field(description="the kcal it adds to its item's (may be negative); null: not known")
    position: int
    translations: TranslationsOut


class OptionGroupOut(BaseModel):
    """A choice the customer makes about an item: pick `min_select` to `max_select` of `choices`."""

    model_config = ConfigDict(from_attributes=True)

    id: int
    name: str
    min_select: int
    max_select: int
    position: int
    choices: list[ChoiceOut]
    translations: TranslationsOut


class ChoiceIn(Input):
    """A choice as written: with the `id` of an existing choice of this item to keep it, without to add one."""

    model_config = ConfigDict(extra="forbid")

    id: RowId | None = None
    name: Name
    price_delta: PriceDelta = 0
    is_default: bool = False
    allergens: Allergens = Field(default_factory=list)
    calories: CaloriesDelta | None = None
    position: Position = 0
    translations: NameTranslations = Field(default_factory=dict)


class OptionGroupIn(Input):
    """An option group as written: with the `id` of an existing group of this item to keep it, without to add one."""

    model_config = ConfigDict(extra="forbid")

    id: RowId | None = None
    name: Name
    min_select: Count = Field(default=0, description="the fewest choices the customer must pick")
    max_select: Count = Field(default=1, description="the most choices the customer may pick")
    position: Position = 0
    choices: list[ChoiceIn] = Field(max_length=100)
    translations: NameTranslations = Field(default_factory=dict)


def rule_errors(groups: list[OptionGroupIn]) -> list[FieldError]:
    """The menu rules the groups break (min and max selects, defaults), as field errors."""
    return [
        field_error(("option_groups", *breach.path), breach.message, breach.rule)
        for breach in option_groups_breaches(groups)
    ]


def id_errors(item: Item, groups: list[OptionGroupIn]) -> list[FieldError]:
    """Group and choice ids that are not this item's, or that are sent twice."""
    own_groups = {group.id for group in item.option_groups}
    own_choices = {choice.id for group in item.option_groups for choice in group.choices}
    seen: set[tuple[str, int]] = set()
    errors: list[FieldError] = []

    def check(kind: str, ident: int | None, own: set[int], path: tuple[int | str, ...]) -> None:
        if ident is None:
            return
        if ident not in own:
            errors.append(field_error(path, f"{kind} {ident} is not one of this item's", "unknown_id"))
        elif (kind, ident) in seen:
            errors.append(field_error(path, f"{kind} {ident} is sent twice", "duplicate_id"))
        seen.add((kind, ident))

    for g, group in enumerate(groups):
        check("option group", group.id, own_groups, ("option_groups", g, "id"))
        for c, choice in enumerate(group.choices):
            check("choice", choice.id, own_choices, ("option_groups", g, "choices", c, "id"))
    return errors


def replace_option_groups(item: Item, groups: list[OptionGroupIn]) -> None:
    """Make the item's groups exactly `groups` (ids already checked by `id_errors`)."""
    old_groups = {group.id: group for group in item.option_groups}
    old_choices = {choice.id: choice for group in item.option_groups for choice in group.choices}
    new_groups: list[OptionGroup] = []
    for group_in in groups:
        group = old_groups[group_in.id] if group_in.id is not None else OptionGroup()
        for name, value in group_in.model_dump(mode="json", exclude={"id", "choices"}).items():
            setattr(group, name, value)
        new_choices: list[OptionChoice] = []
        for choice_in in group_in.choices:
            # A kept choice may move to another group of the item; its id goes with it.
            choice = old_choices[choice_in.id] if choice_in.id is not None else OptionChoice()
            for name, value in choice_in.model_dump(mode="json", exclude={"id"}).items():
                setattr(choice, name, value)
            new_choices.append(choice)
        group.choices = new_choices
        new_groups.append(group)
    item.option_groups = new_groups
