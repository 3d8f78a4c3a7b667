"""Combos (meal deals): an item sold as slots (main, side, drink), each filled with one of its choices of items.

A combo is an item of the catalogue like any other (price, tax category, daypart, stock in `items_live_available`)
that has slots. Each slot is filled exactly once, with one of its choices: another item, at the choice's
`upcharge` (0 or more) on top of the combo's price, with that item's own options (a drink's size). Slots and
choices are catalogue tables: their changes raise `catalogue_version` like the items' (migration 0011).
"""

from __future__ import annotations

from sqlalchemy import CheckConstraint, ForeignKey, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship

from persistence.base import Base, Json
from persistence.tables.menu import Item


class ComboSlot(Base):
    """A slot of a combo item ("Main", "Side", "Drink"), shown in `position` order; filled by exactly one choice."""

    __tablename__ = "combo_slots"

    id: Mapped[int] = mapped_column(primary_key=True)
    item_id: Mapped[int] = mapped_column(ForeignKey("items_live.id", ondelete="CASCADE"), index=True)
    name: Mapped[str] = mapped_column(String(120))
    position: Mapped[int] = mapped_column(default=0)
    # {locale: {"name"}}: its name in other languages (server/domain/translations.py), as the menu's rows have.
    translations: Mapped[dict[str, dict[str, str]]] = mapped_column(Json, default=dict)

    choices: Mapped[list[ComboSlotChoice]] = relationship(
        back_populates="slot",
        order_by="ComboSlotChoice.position, ComboSlotChoice.id",
        cascade="all, delete-orphan",
        lazy="selectin",
    )


class ComboSlotChoice(Base):
    """An item a slot may be filled with, at `upcharge` minor units over the combo's price; `is_default` fills the
    slot when a cart adds the combo without saying."""

    __tablename__ = "combo_slot_choices"

    id: Mapped[int] = mapped_column(primary_key=True)
    slot_id: Mapped[int] = mapped_column(ForeignKey("combo_slots.id", ondelete="CASCADE"), index=True)
    item_id: Mapped[int] = mapped_column(ForeignKey("items_live.id"), index=True)
    upcharge: Mapped[int] = mapped_column(default=0)
    is_default: Mapped[bool] = mapped_column(default=False)
    position: Mapped[int] = mapped_column(default=0)

    slot: Mapped[ComboSlot] = relationship(back_populates="choices")
    item: Mapped[Item] = relationship(lazy="selectin")

    __table_args__ = (
        CheckConstraint("upcharge >= 0", name="upcharge_not_negative"),
        UniqueConstraint("slot_id", "item_id"),
    )
