"""What is in an item as REST writes it: its allergens (the 14 of EU law) and calories, and an option choice's.

Allergens are a list of `persistence.enums.Allergen` values, each at most once: an unknown value is `invalid` on
its place in the list (`allergens.2`), a repeated one on the list (`allergens`). They are stored, and shown, in the
order of the EU's list, whatever order they were sent in. Calories are kcal: an item's are at least 0, a choice's
are what it adds to its item's, negative for one that takes something away ("no cheese"); null is not known.
"""

from __future__ import annotations

from typing import Annotated

from pydantic import AfterValidator, Field

from persistence.enums import Allergen
from server.validation import INT32_MAX

_EU_ORDER = {allergen: position for position, allergen in enumerate(Allergen)}


def _each_once_in_eu_order(allergens: list[Allergen]) -> list[Allergen]:
    repeated = sorted({a for a in allergens if allergens.count(a) > 1}, key=_EU_ORDER.__getitem__)
    if repeated:
        raise ValueError(f"listed more than once: {', '.join(repeated)}")
    return sorted(allergens, key=_EU_ORDER.__getitem__)


Allergens = Annotated[
    list[Allergen],
    Field(max_length=len(Allergen), description="the EU's 14 allergens it contains, each once"),
    AfterValidator(_each_once_in_eu_order),
]
Calories = Annotated[int, Field(strict=True, ge=0, le=INT32_MAX, description="kcal; null: not known")]
CaloriesDelta = Annotated[
    int,
    Field(
        strict=True,
        ge=-INT32_MAX,
        le=INT32_MAX,
        description="kcal it adds to its item's, negative for one that takes some away; null: not known",
    ),
]
