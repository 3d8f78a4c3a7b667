"""Every mapped table, imported here so that `Base.metadata` knows them all."""

from persistence.tables.combos import ComboSlot, ComboSlotChoice
from persistence.tables.enrolment import PairingCode
from persistence.tables.kitchen import OrderStation, Station
from persistence.tables.menu import (
    CatalogueVersion,
    Category,
    Daypart,
    Item,
    ItemAvailability,
    OptionChoice,
    OptionGroup,
    TaxCategory,
)
from persistence.tables.orders import Cart, CartLine, Order, OrderLine, OrderNumber, Payment
from persistence.tables.people import Branch, Device, KnownCustomer, Role, Session, User
from persistence.tables.reliability import CommandLogEntry, Deadline, OutboxEvent, PosDelivery, WebhookEvent

__all__ = [
    "Branch",
    "Cart",
    "CatalogueVersion",
    "CartLine",
    "Category",
    "ComboSlot",
    "ComboSlotChoice",
    "CommandLogEntry",
    "Daypart",
    "Deadline",
    "Device",
    "Item",
    "ItemAvailability",
    "KnownCustomer",
    "OptionChoice",
    "OptionGroup",
    "Order",
    "OrderLine",
    "OrderNumber",
    "OrderStation",
    "OutboxEvent",
    "PairingCode",
    "Payment",
    "PosDelivery",
    "Role",
    "Session",
    "Station",
    "TaxCategory",
    "User",
    "WebhookEvent",
]
