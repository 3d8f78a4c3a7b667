"""The menu: categories, items with option groups and choices, and per-branch stock.

Categories and items are the chain's catalogue, each item of a tax category, with its allergens and calories (and
each option choice with those it adds); `items_live_available` says which items
a branch offers, whether they are on (not 86'd) and how many are left. `catalogue_version`
counts the catalogue's changes, so that a process can keep a copy of it
(server/orders/catalogue.py).
"""

from __future__ import annotations

from datetime import datetime, time

from sqlalchemy import CheckConstraint, ForeignKey, String, Time
from sqlalchemy.orm import Mapped, mapped_column, relationship

from persistence.base import Base, Json, Timestamps, UTCDateTime, utcnow


class TaxCategory(Timestamps, Base):
    """What kind of goods an item is for tax (food, drinks, alcohol): each branch rates it per service mode."""

    __tablename__ = "tax_categories"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(40), unique=True)


class Daypart(Timestamps, Base):
    """A time window of the day, in each branch's own time zone, when the items and categories of it are sold
    (breakfast 06:00-11:00); `ends_at` before `starts_at` crosses midnight, equal ones are the whole day."""

    __tablename__ = "dayparts"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(60), unique=True)
    starts_at: Mapped[time] = mapped_column(Time())
    ends_at: Mapped[time] = mapped_column(Time())


class Category(Timestamps, Base):
    """A section of the menu, shown in `position` order."""

    __tablename__ = "categories"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(120))
    position: Mapped[int] = mapped_column(default=0)
    # None: at any time of day (its items may still have windows of their own).
    daypart_id: Mapped[int | None] = mapped_column(ForeignKey("dayparts.id"), index=True)
    # The kitchen station code its items go to (`grill`), unless an item names its own; None: the default station.
    station: Mapped[str | None] = mapped_column(String(32))
    # {locale: {"name"}}: its name in other languages (server/domain/translations.py).
    translations: Mapped[dict[str, dict[str, str]]] = mapped_column(Json, default=dict)
    deleted_at: Mapped[datetime | None] = mapped_column(UTCDateTime())


class Item(Timestamps, Base):
    """A menu item; `price` is in minor units of the selling branch's currency."""

    __tablename__ = "items_live"

    id: Mapped[int] = mapped_column(primary_key=True)
    category_id: Mapped[int] = mapped_column(ForeignKey("categories.id", ondelete="RESTRICT"), index=True)
    name: Mapped[str] = mapped_column(String(120))
    description: Mapped[str | None] = mapped_column(String(1000))
    image_url: Mapped[str | None] = mapped_column(String(1000))
    price: Mapped[int]
    # None: taxed at its branch's default rate.
    tax_category_id: Mapped[int | None] = mapped_column(ForeignKey("tax_categories.id"), index=True)
    # persistence.enums.Allergen values, each once, in that enum's order.
    allergens: Mapped[list[str]] = mapped_column(Json, default=list)
    # kcal of one, without its options; None: not known.
    calories: Mapped[int | None]
    # None: at any time of day its category is sold.
    daypart_id: Mapped[int | None] = mapped_column(ForeignKey("dayparts.id"), index=True)
    # The kitchen station code it goes to; None: its category's.
    station: Mapped[str | None] = mapped_column(String(32))
    position: Mapped[int] = mapped_column(default=0)
    # {locale: {"name", "description"}}: its texts in other languages (server/domain/translations.py).
    translations: Mapped[dict[str, dict[str, str]]] = mapped_column(Json, default=dict)
    # Soft delete: orders keep pointing at removed items.
    deleted_at: Mapped[datetime | None] = mapped_column(UTCDateTime())

    option_groups: Mapped[list[OptionGroup]] = relationship(
        back_populates="item",
        order_by="OptionGroup.position, OptionGroup.id",
        cascade="all, delete-orphan",
        lazy="selectin",
    )

    __table_args__ = (
        CheckConstraint("price >= 0", name="price_not_negative"),
        CheckConstraint("calories >= 0", name="calories_not_negative"),
    )


class OptionGroup(Base):
    """A choice the customer makes about an item, e.g. "Size" (exactly one) or "Extras" (up to 3)."""

    __tablename__ = "option_groups"

    id: Mapped[int] = mapped_column(primary_key=True)
    item_id: Mapped[int] = mapped_column(ForeignKey("items_live.id", ondelete="CASCADE"), index=True)
    name: Mapped[str] = mapped_column(String(120))
    min_select: Mapped[int] = mapped_column(default=0)
    max_select: Mapped[int] = mapped_column(default=1)
    position: Mapped[int] = mapped_column(default=0)
    # {locale: {"name"}}: its name in other languages (server/domain/translations.py).
    translations: Mapped[dict[str, dict[str, str]]] = mapped_column(Json, default=dict)

    item: Mapped[Item] = relationship(back_populates="option_groups")
    choices: Mapped[list[OptionChoice]] = relationship(
        back_populates="group",
        order_by="OptionChoice.position, OptionChoice.id",
        cascade="all, delete-orphan",
        lazy="selectin",
    )

    __table_args__ = (
        CheckConstraint("min_select >= 0", name="min_not_negative"),
        CheckConstraint("max_select >= 1 AND max_select >= min_select", name="max_at_least_min"),
    )


class OptionChoice(Base):
    """One answer of an option group, with its price difference in minor units and the allergens and calories it
    adds to its item."""

    __tablename__ = "option_choices"

    id: Mapped[int] = mapped_column(primary_key=True)
    group_id: Mapped[int] = mapped_column(ForeignKey("option_groups.id", ondelete="CASCADE"), index=True)
    name: Mapped[str] = mapped_column(String(120))
    price_delta: Mapped[int] = mapped_column(default=0)
    is_default: Mapped[bool] = mapped_column(default=False)
    # persistence.enums.Allergen values it adds to its item's, each once, in that enum's order.
    allergens: Mapped[list[str]] = mapped_column(Json, default=list)
    # kcal it adds to its item's: negative for one that takes something away ("no cheese"); None: not known.
    calories: Mapped[int | None]
    position: Mapped[int] = mapped_column(default=0)
    # {locale: {"name"}}: its name in other languages (server/domain/translations.py).
    translations: Mapped[dict[str, dict[str, str]]] = mapped_column(Json, default=dict)

    group: Mapped[OptionGroup] = relationship(back_populates="choices")


class ItemAvailability(Base):
    """An item as offered by one branch: on or 86'd, and its stock (None = unlimited).

    Stock is only ever reserved with one conditional UPDATE (`stock >= qty`); the check
    constraint is the last line of defence against overselling.
    """

    __tablename__ = "items_live_available"

    branch_id: Mapped[int] = mapped_column(ForeignKey("branches.id", ondelete="CASCADE"), primary_key=True)
    item_id: Mapped[int] = mapped_column(ForeignKey("items_live.id", ondelete="CASCADE"), primary_key=True, index=True)
    available: Mapped[bool] = mapped_column(default=True)
    stock: Mapped[int | None]
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow, onupdate=utcnow)

    __table_args__ = (CheckConstraint("stock IS NULL OR stock >= 0", name="stock_not_negative"),)


class CatalogueVersion(Base):
    """How many times the catalogue (categories, items, option groups and choices) changed: one row, raised by the
    database's own triggers on those tables (migration 0005), so that no writer can forget it; no row is version 0.
    """

    __tablename__ = "catalogue_version"

    id: Mapped[int] = mapped_column(primary_key=True, autoincrement=False)
    version: Mapped[int]
