"""The demo menu's texts in English and German (server/demo.py): the demo branch is German, offering both.

The menu's rows keep their English names as their base names; `translations` gives each its
English and German texts (an item's description too), so that a kiosk switching language sees
every row in either.
"""

from __future__ import annotations

# English name -> German name, for categories, option groups and choices, and combo slots.
GERMAN_NAMES = {
    "Burgers": "Burger",
    "Sides": "Beilagen",
    "Drinks": "Getränke",
    "Breakfast": "Frühstück",
    "Extras": "Extras",
    "Dips": "Dips",
    "Size": "Größe",
    "Cheese": "Käse",
    "Bacon": "Bacon",
    "Jalapeños": "Jalapeños",
    "Avocado": "Avocado",
    "Extra patty": "Extra-Patty",
    "Ketchup": "Ketchup",
    "Mayonnaise": "Mayonnaise",
    "Garlic aioli": "Knoblauch-Aioli",
    "Small": "Klein",
    "Medium": "Mittel",
    "Large": "Groß",
    "Main": "Hauptgericht",
    "Side": "Beilage",
    "Drink": "Getränk",
}
# English name -> German name and description, for items.
GERMAN_ITEMS = {
    "Classic Burger": ("Klassischer Burger", "Rindfleisch-Patty, Salat, Tomate, Gurken, Haussoße"),
    "Cheeseburger": ("Cheeseburger", "Rindfleisch-Patty, doppelter Cheddar, Zwiebeln, Gurken"),
    "Chicken Burger": ("Hähnchenburger", "Knuspriges Hähnchen, Krautsalat, Chipotle-Mayo"),
    "Veggie Burger": ("Veggie-Burger", "Gegrillter Halloumi, geröstete Paprika, Rucola"),
    "Fries": ("Pommes", "Mit Schale, Meersalz"),
    "Sweet Potato Fries": ("Süßkartoffel-Pommes", "Mit geräuchertem Paprika"),
    "Onion Rings": ("Zwiebelringe", "Im Bierteig"),
    "Cola": ("Cola", "Aus dem Zapfhahn"),
    "Lemonade": ("Limonade", "Frisch gepresst"),
    "Still Water": ("Stilles Wasser", "0,5-l-Flasche"),
    "Breakfast Muffin": ("Frühstücksmuffin", "Ei, Cheddar und Bacon im getoasteten Muffin"),
    "Pancakes": ("Pfannkuchen", "Drei Stück, mit Ahornsirup"),
    "Hash Brown": ("Rösti", "Knusprig geriebene Kartoffel"),
    "Breakfast Combo": ("Frühstücksmenü", "Ein Frühstückssandwich oder Pfannkuchen, ein Rösti und ein Getränk"),
}
DEMO_LOCALES = ("de", "en")


def name_texts(name: str) -> dict[str, dict[str, str]]:
    """The `translations` of a category, option group or choice named `name` in English."""
    return {"de": {"name": GERMAN_NAMES[name]}, "en": {"name": name}}


def item_texts(name: str, description: str) -> dict[str, dict[str, str]]:
    """The `translations` of an item named and described in English."""
    german_name, german_description = GERMAN_ITEMS[name]
    return {
        "de": {"name": german_name, "description": german_description},
        "en": {"name": name, "description": description},
    }
