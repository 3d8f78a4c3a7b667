"""What the simulator's customers put in their carts: a service mode, one to three items of the menu, options.

A customer takes the default options of an item, now and then another choice of a group
that takes exactly one (a larger drink), fills a combo's slots with any available choice,
and sometimes switches language half way (`cart.set_locale`).
"""

from __future__ import annotations

import random
from typing import Any

# The share of carts whose customer switches language before ordering (cart.set_locale).
SWITCH_LOCALE = 0.2


class Carts:
    """The carts a run's customers fill, from the branch's menu (`menu.get`), picked with the run's `rng`.

    `kiosk_locales` are the languages the kiosks greet in (the fleet's): a cart takes its kiosk's then.
    """

    def __init__(self, rng: random.Random, kiosk_locales: tuple[str, ...]) -> None:
        self.rng = rng
        self.kiosk_locales = kiosk_locales
        self.menu: list[dict[str, Any]] = []
        # The branch's service modes: each cart is eaten in or taken away at random, as customers choose.
        self.service_modes: list[str] = []
        self.locales: list[str] = []

    def take_menu(self, menu: dict[str, Any]) -> None:
        """Learn what the branch sells from its `menu.get` reply: the orderable items, service modes and languages."""
        self.menu = [item for category in menu["categories"] for item in category["items"] if item["orderable"]]
        self.service_modes = list(menu["service_modes"])
        self.locales = list(menu.get("locales", []))

    def new_cart(self) -> dict[str, Any]:
        """`cart.create` data: a random service mode of those the branch offers; the cart's locale is its kiosk's
        (said in its hello) unless the fleet knew none, then a random one the branch offers."""
        data: dict[str, Any] = {}
        if self.service_modes:
            data["service_mode"] = self.rng.choice(self.service_modes)
        if self.locales and not self.kiosk_locales:
            data["locale"] = self.rng.choice(self.locales)
        return data

    def lines(self) -> list[dict[str, Any]]:
        """`cart.add` data of one to three items of the menu (without the cart), each with its options."""
        lines = []
        for item in self.rng.sample(self.menu, k=min(len(self.menu), self.rng.randint(1, 3))):
            line = {"item_id": item["id"], "qty": self.rng.randint(1, 2), "options": self._options(item)}
            if item.get("combo_slots"):
                line["components"] = self._components(item["combo_slots"])
            lines.append(line)
        return lines

    def switch_locale(self, cart: dict[str, Any]) -> str | None:
        """For a `SWITCH_LOCALE` share of carts, another language the branch offers than `cart`'s; else None."""
        if len(self.locales) > 1 and self.rng.random() < SWITCH_LOCALE:
            return self.rng.choice([locale for locale in self.locales if locale != cart["locale"]])
        return None

    def _options(self, item: dict[str, Any]) -> list[int]:
        """An item's options as a customer picks them: the defaults, or now and then another choice of a group that
        takes exactly one (a larger drink)."""
        options: list[int] = []
        for group in item["option_groups"]:
            picked = [c["id"] for c in group["choices"] if c["is_default"]][: group["max_select"]]
            others = [c["id"] for c in group["choices"] if c["id"] not in picked]
            if group["min_select"] == group["max_select"] == 1 and others and self.rng.random() < 0.3:
                picked = [self.rng.choice(others)]
            picked += others[: max(0, group["min_select"] - len(picked))]
            options += [choice for choice in picked if choice not in options]
        return options

    def _components(self, slots: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """A combo's slots filled as a customer fills them: any available choice of each, with its options."""
        components = []
        for slot in slots:
            available = [choice for choice in slot["choices"] if choice["available"]] or slot["choices"]
            choice = self.rng.choice(available)
            components.append(
                {"slot_id": slot["id"], "item_id": choice["item_id"], "choice_ids": self._options(choice)}
            )
        return components
