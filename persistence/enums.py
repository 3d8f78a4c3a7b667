"""The closed sets of values stored in the database, shared by every layer."""

from __future__ import annotations

import enum


class DeviceKind(enum.StrEnum):
    """What a device is; decides its channels and commands."""

    KIOSK = "kiosk"
    PAYMENT_TERMINAL = "payment_terminal"
    KITCHEN_DISPLAY = "kitchen_display"
    ORDER_BOARD = "order_board"


class CartStatus(enum.StrEnum):
    """A cart is open until it becomes an order or idles out."""

    OPEN = "open"
    ORDERED = "ordered"
    EXPIRED = "expired"


class OrderStatus(enum.StrEnum):
    """Order states of PROTOCOL.md."""

    AWAITING_PAYMENT = "awaiting_payment"
    PAID = "paid"
    PREPARING = "preparing"
    READY = "ready"
    COMPLETED = "completed"
    CANCELLED = "cancelled"
    REFUNDED = "refunded"


class PaymentStatus(enum.StrEnum):
    """Payment states of PROTOCOL.md, plus `needs_refund` for a late approval that found no order to pay."""

    PENDING = "pending"
    PROCESSING = "processing"
    APPROVED = "approved"
    DECLINED = "declined"
    FAILED = "failed"
    CANCELLED = "cancelled"
    EXPIRED = "expired"
    NEEDS_REFUND = "needs_refund"
    REFUNDED = "refunded"


class PaymentMethod(enum.StrEnum):
    """How a payment is taken."""

    TERMINAL = "terminal"
    GATEWAY = "gateway"
    CASH = "cash"


class DeadlineKind(enum.StrEnum):
    """What a stored deadline ends."""

    ORDER_PAYMENT = "order_payment"
    PAYMENT = "payment"
    CART_IDLE = "cart_idle"


class DeliveryStatus(enum.StrEnum):
    """State of one push to an outside system (the POS)."""

    PENDING = "pending"
    DELIVERED = "delivered"
    FAILED = "failed"


class ServiceMode(enum.StrEnum):
    """How the customer takes the order: it decides the tax rate of what is in it."""

    EAT_IN = "eat_in"
    TAKEAWAY = "takeaway"


class Allergen(enum.StrEnum):
    """The 14 allergens EU law has food sellers declare (Regulation 1169/2011, Annex II), in the order it lists them."""

    GLUTEN = "gluten"
    CRUSTACEANS = "crustaceans"
    EGGS = "eggs"
    FISH = "fish"
    PEANUTS = "peanuts"
    SOYBEANS = "soybeans"
    MILK = "milk"
    NUTS = "nuts"
    CELERY = "celery"
    MUSTARD = "mustard"
    SESAME = "sesame"
    SULPHITES = "sulphites"
    LUPIN = "lupin"
    MOLLUSCS = "molluscs"
