"""The demo's menu (server/demo.py seeds it): categories and items with their prices, stock, option groups,
allergens and calories; the breakfast combo and daypart; tax categories and rates; kitchen stations and routing.

Names are the English base names; server/demo_texts.py holds their German.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import time

from persistence.enums import Allergen, ServiceMode


@dataclass(frozen=True)
class DemoChoice:
    """One answer of a demo option group; `price_delta` in minor units; the allergens and kcal it adds."""

    name: str
    price_delta: int = 0
    is_default: bool = False
    allergens: frozenset[Allergen] = frozenset()
    calories: int = 0


@dataclass(frozen=True)
class DemoGroup:
    """A demo option group: between `min_select` and `max_select` of its choices."""

    name: str
    min_select: int
    max_select: int
    choices: tuple[DemoChoice, ...]


@dataclass(frozen=True)
class DemoItem:
    """A demo menu item; `stock` None means unlimited; `calories` in kcal, without its choices."""

    name: str
    description: str
    price: int
    stock: int | None
    groups: tuple[DemoGroup, ...] = ()
    allergens: frozenset[Allergen] = frozenset()
    calories: int = 0


def in_eu_order(allergens: frozenset[Allergen]) -> list[str]:
    """The allergens as an item or choice stores them: each once, in the EU's order (as the REST routes store them)."""
    return [allergen.value for allergen in Allergen if allergen in allergens]


BURGER_EXTRAS = DemoGroup(
    "Extras",
    min_select=0,
    max_select=3,
    choices=(
        DemoChoice("Cheese", 80, allergens=frozenset({Allergen.MILK}), calories=110),
        DemoChoice("Bacon", 150, calories=90),
        DemoChoice("Jalapeños", 60, calories=5),
        DemoChoice("Avocado", 120, calories=80),
        DemoChoice("Extra patty", 250, calories=250),
    ),
)
FRIES_DIPS = DemoGroup(
    "Dips",
    min_select=0,
    max_select=2,
    choices=(
        DemoChoice("Ketchup", calories=30),
        DemoChoice("Mayonnaise", allergens=frozenset({Allergen.EGGS, Allergen.MUSTARD}), calories=100),
        DemoChoice("Garlic aioli", 50, allergens=frozenset({Allergen.EGGS}), calories=110),
    ),
)
DRINK_SIZE = DemoGroup(
    "Size",
    min_select=1,
    max_select=1,
    choices=(
        DemoChoice("Small", 0, is_default=True),
        DemoChoice("Medium", 60, calories=70),
        DemoChoice("Large", 110, calories=150),
    ),
)

LOW_STOCK = 3
# Every burger: a bun of wheat and milk with sesame seeds, and a sauce of egg and mustard.
BURGER = frozenset({Allergen.GLUTEN, Allergen.EGGS, Allergen.MILK, Allergen.MUSTARD, Allergen.SESAME})


def _burger(name: str, description: str, price: int, stock: int, calories: int) -> DemoItem:
    """A demo burger: with the burger extras and the allergens every burger has."""
    return DemoItem(name, description, price, stock, (BURGER_EXTRAS,), BURGER, calories)


# Categories in display order, each with its items in display order.
DEMO_MENU: tuple[tuple[str, tuple[DemoItem, ...]], ...] = (
    (
        "Burgers",
        (
            _burger("Classic Burger", "Beef patty, lettuce, tomato, pickles, house sauce", 890, 40, 560),
            _burger("Cheeseburger", "Beef patty, double cheddar, onions, pickles", 990, 40, 680),
            _burger("Chicken Burger", "Crispy chicken, slaw, chipotle mayo", 950, LOW_STOCK, 610),
            _burger("Veggie Burger", "Grilled halloumi, roasted peppers, rocket", 920, 25, 590),
        ),
    ),
    (
        "Sides",
        (
            DemoItem("Fries", "Skin-on, sea salt", 350, 100, (FRIES_DIPS,), calories=320),
            DemoItem("Sweet Potato Fries", "With smoked paprika", 420, 60, (FRIES_DIPS,), calories=360),
            DemoItem("Onion Rings", "Beer-battered", 390, 40, allergens=frozenset({Allergen.GLUTEN}), calories=410),
        ),
    ),
    (
        "Drinks",
        (
            DemoItem("Cola", "From the fountain", 290, None, (DRINK_SIZE,), calories=130),
            DemoItem("Lemonade", "Freshly squeezed", 320, 50, (DRINK_SIZE,), calories=120),
            DemoItem("Still Water", "0.5 l bottle", 220, 80),
        ),
    ),
    (
        "Breakfast",
        (
            DemoItem(
                "Breakfast Muffin",
                "Egg, cheddar and bacon in a toasted muffin",
                450,
                30,
                allergens=frozenset({Allergen.GLUTEN, Allergen.EGGS, Allergen.MILK}),
                calories=380,
            ),
            DemoItem(
                "Pancakes",
                "Three, with maple syrup",
                520,
                30,
                allergens=frozenset({Allergen.GLUTEN, Allergen.EGGS, Allergen.MILK}),
                calories=610,
            ),
            DemoItem("Hash Brown", "Crispy grated potato", 220, 40, calories=150),
            # Its stock is its components': each is taken from when it is ordered.
            DemoItem("Breakfast Combo", "A breakfast sandwich or pancakes, a hash brown and a drink", 790, None),
        ),
    ),
)

# The combos: each slot's name with its choices (item name, upcharge, default), in display order.
DEMO_COMBOS: dict[str, tuple[tuple[str, tuple[tuple[str, int, bool], ...]], ...]] = {
    "Breakfast Combo": (
        ("Main", (("Breakfast Muffin", 0, True), ("Pancakes", 70, False))),
        ("Side", (("Hash Brown", 0, True),)),
        ("Drink", (("Cola", 0, True), ("Lemonade", 30, False), ("Still Water", 0, False))),
    ),
}

# Categories sold only in a daypart, with its name and hours in the branch's local time.
DEMO_DAYPARTS: dict[str, tuple[str, time, time]] = {"Breakfast": ("Breakfast", time(6), time(11))}

# Each menu category's tax category, and the branch's rates per tax category and service mode: a German restaurant's
# food is taxed at 19 % eaten in and 7 % taken away, its drinks at 19 % either way.
DEMO_TAX_CATEGORY = {"Burgers": "food", "Sides": "food", "Drinks": "drinks", "Breakfast": "food"}
DEMO_TAX_RATES: dict[str, dict[ServiceMode, int]] = {
    "food": {ServiceMode.EAT_IN: 1900, ServiceMode.TAKEAWAY: 700},
    "drinks": {ServiceMode.EAT_IN: 1900, ServiceMode.TAKEAWAY: 1900},
}

# The branch's kitchen stations (code, name) in position order, and the station code of each menu category (none:
# the default station, the first).
DEMO_STATIONS: tuple[tuple[str, str], ...] = (("grill", "Grill"), ("fryer", "Fryer"), ("drinks", "Drinks"))
DEMO_CATEGORY_STATION = {"Burgers": "grill", "Sides": "fryer", "Drinks": "drinks"}
