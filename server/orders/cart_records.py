"""A cart as its commands and its pricing need it: its columns, its lines, and what they need of its branch (currency,
tax rates, service modes, time zone, languages), of its known customer (the name) and of the catalogue (its version,
server/orders/catalogue.py); read and written by server/orders/cart_rows.py."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from persistence.enums import CartStatus, ServiceMode
from persistence.stock import Level
from server.domain.translations import fallback_chain


@dataclass
class CartLineRecord:
    """A cart line: an item, how many, the choice ids picked for it, the customer's note (None: none), and a combo's
    slots as filled (`[{"slot_id", "item_id", "choice_ids"}]`, in slot order; [] for any other item)."""

    id: int
    item_id: int
    qty: int
    choice_ids: list[int]
    note: str | None = None
    components: list[dict[str, Any]] = field(default_factory=list)

    @property
    def component_items(self) -> list[int]:
        """The items its components are (one per slot)."""
        return [int(component["item_id"]) for component in self.components]


@dataclass
class CartRecord:
    """A cart as its commands and its pricing need it, with its lines and the branch's and customer's fields."""

    id: int
    version: int
    status: CartStatus
    branch_id: int
    device_id: int
    customer_id: int | None
    customer_phone: str | None
    updated_at: datetime
    service_mode: ServiceMode
    currency: str  # the branch's
    tax_rate_bp: int  # the branch's default rate
    tax_rates: list[dict[str, Any]]  # the branch's, per tax category and service mode (persistence/tables/people.py)
    service_modes: list[str]  # the branch's, its default first
    timezone: str  # the branch's
    customer_name: str | None  # the known customer's, when one is attached
    catalogue_version: int  # as this transaction read it with the cart
    lines: list[CartLineRecord]
    # How the branch offers the lines' items (and the item a command is about to add): an item it does not offer
    # has no level.
    levels: dict[int, Level]
    locale: str | None = None  # the cart's own; None: the branch's default
    default_locale: str = "en"  # the branch's
    locales: list[str] = field(default_factory=lambda: ["en"])  # the branch's, its default first
    kitchen_locale: str = "en"  # the branch's

    @property
    def display_locale(self) -> str:
        """The locale the kiosk shows the cart in: its own, or the branch's default."""
        return self.locale or self.default_locale

    def chain(self, kitchen: bool = False) -> tuple[str, ...]:
        """Where its names are looked up (`fallback_chain`): in the cart's locale, or with `kitchen` the branch's
        kitchen locale, then the branch's default."""
        return fallback_chain(self.kitchen_locale if kitchen else self.display_locale, self.default_locale)

    def tax_rate_of(self, tax_category_id: int | None) -> int:
        """The rate (basis points) of an item of this tax category in the cart's service mode: the branch's rate
        for both, or its default rate."""
        for rate in self.tax_rates:
            if rate["tax_category_id"] == tax_category_id and rate["service_mode"] == self.service_mode:
                return int(rate["rate_bp"])
        return self.tax_rate_bp
