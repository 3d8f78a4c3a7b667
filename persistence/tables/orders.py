"""Carts, orders with their priced lines, order numbers, and payments."""

from __future__ import annotations

from datetime import date, datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import CheckConstraint, Date, ForeignKey, Index, String, UniqueConstraint, text
from sqlalchemy.orm import Mapped, mapped_column, relationship

from persistence.base import Base, Json, Timestamps, UTCDateTime, Versioned, str_enum
from persistence.enums import CartStatus, OrderStatus, PaymentMethod, PaymentStatus, ServiceMode

if TYPE_CHECKING:
    pass


class Cart(Versioned, Timestamps, Base):
    """What a kiosk is building; priced by the server whenever it changes."""

    __tablename__ = "carts"

    id: Mapped[int] = mapped_column(primary_key=True)
    branch_id: Mapped[int] = mapped_column(ForeignKey("branches.id", ondelete="CASCADE"), index=True)
    device_id: Mapped[int] = mapped_column(ForeignKey("devices.id", ondelete="CASCADE"), index=True)
    customer_id: Mapped[int | None] = mapped_column(ForeignKey("known_customers.id", ondelete="SET NULL"))
    # The phone typed at the kiosk, kept even when it matches no known customer.
    customer_phone: Mapped[str | None] = mapped_column(String(20))
    status: Mapped[CartStatus] = mapped_column(str_enum(CartStatus, "cart_status"), default=CartStatus.OPEN)
    service_mode: Mapped[ServiceMode] = mapped_column(str_enum(ServiceMode, "service_mode"), default=ServiceMode.EAT_IN)
    # The language the kiosk shows it in, one the branch offers; None: the branch's default.
    locale: Mapped[str | None] = mapped_column(String(16))

    lines: Mapped[list[CartLine]] = relationship(order_by="CartLine.id", cascade="all, delete-orphan", lazy="selectin")

    # The idle-cart sweep looks only at open carts, oldest change first.
    __table_args__ = (
        Index(
            "ix_carts_open_updated_at",
            "updated_at",
            postgresql_where=text("status = 'open'"),
            sqlite_where=text("status = 'open'"),
        ),
    )


class CartLine(Base):
    """An item in a cart with the option choices picked for it."""

    __tablename__ = "cart_lines"

    id: Mapped[int] = mapped_column(primary_key=True)
    cart_id: Mapped[int] = mapped_column(ForeignKey("carts.id", ondelete="CASCADE"), index=True)
    item_id: Mapped[int] = mapped_column(ForeignKey("items_live.id", ondelete="CASCADE"))
    qty: Mapped[int]
    choice_ids: Mapped[list[int]] = mapped_column(Json, default=list)
    # What the customer asked the kitchen to mind ("no peanuts please"): a line adds to another only with the same.
    note: Mapped[str | None] = mapped_column(String(200))
    # A combo's slots as filled: [{"slot_id", "item_id", "choice_ids"}], in slot order; [] for any other item.
    components: Mapped[list[dict[str, Any]]] = mapped_column(Json, default=list)

    __table_args__ = (CheckConstraint("qty > 0", name="qty_positive"),)


class OrderNumber(Base):
    """The last order number given out by a branch on a business day (its own time zone).

    Incremented with one UPDATE inside the placing transaction, so numbers never repeat.
    """

    __tablename__ = "order_numbers"

    branch_id: Mapped[int] = mapped_column(ForeignKey("branches.id", ondelete="CASCADE"), primary_key=True)
    business_date: Mapped[date] = mapped_column(Date(), primary_key=True)
    last_number: Mapped[int] = mapped_column(default=0)


class Order(Versioned, Timestamps, Base):
    """A placed cart: its lines priced and frozen, its stock reserved."""

    __tablename__ = "orders"

    id: Mapped[int] = mapped_column(primary_key=True)
    branch_id: Mapped[int] = mapped_column(ForeignKey("branches.id", ondelete="RESTRICT"))
    device_id: Mapped[int | None] = mapped_column(ForeignKey("devices.id", ondelete="SET NULL"), index=True)
    cart_id: Mapped[int | None] = mapped_column(ForeignKey("carts.id", ondelete="SET NULL"), unique=True)
    customer_id: Mapped[int | None] = mapped_column(ForeignKey("known_customers.id", ondelete="SET NULL"))
    customer_name: Mapped[str | None] = mapped_column(String(120))
    number: Mapped[int]
    business_date: Mapped[date] = mapped_column(Date())
    status: Mapped[OrderStatus] = mapped_column(str_enum(OrderStatus, "order_status"))
    currency: Mapped[str] = mapped_column(String(3))
    service_mode: Mapped[ServiceMode] = mapped_column(str_enum(ServiceMode, "service_mode"), default=ServiceMode.EAT_IN)
    # The customer's language, its cart's at placement; None: placed before languages (its lines' names only).
    locale: Mapped[str | None] = mapped_column(String(16))
    subtotal: Mapped[int]
    tax: Mapped[int]
    total: Mapped[int]
    # [{"rate_bp", "net", "tax", "total"}], one per rate its lines were taxed at, lowest rate first.
    taxes: Mapped[list[dict[str, Any]]] = mapped_column(Json, default=list)
    paid_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    started_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    ready_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    completed_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    cancelled_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    cancel_reason: Mapped[str | None] = mapped_column(String(64))
    refunded_at: Mapped[datetime | None] = mapped_column(UTCDateTime())

    lines: Mapped[list[OrderLine]] = relationship(
        order_by="OrderLine.id", cascade="all, delete-orphan", lazy="selectin"
    )

    __table_args__ = (
        UniqueConstraint("branch_id", "business_date", "number"),
        CheckConstraint("total >= 0 AND subtotal >= 0 AND tax >= 0", name="money_not_negative"),
        Index("ix_orders_branch_id_status", "branch_id", "status"),
        Index("ix_orders_branch_id_created_at", "branch_id", "created_at"),
    )


class OrderLine(Base):
    """One line of an order, with name, options and prices as they were at placement."""

    __tablename__ = "order_lines"

    id: Mapped[int] = mapped_column(primary_key=True)
    order_id: Mapped[int] = mapped_column(ForeignKey("orders.id", ondelete="CASCADE"), index=True)
    item_id: Mapped[int] = mapped_column(ForeignKey("items_live.id", ondelete="RESTRICT"))
    name: Mapped[str] = mapped_column(String(120))
    qty: Mapped[int]
    unit_price: Mapped[int]
    # [{"choice_id", "group_id", "group", "name", "price_delta"}] as chosen and priced at placement.
    options: Mapped[list[dict[str, Any]]] = mapped_column(Json, default=list)
    line_total: Mapped[int]
    # The tax rate the line was charged at (None for orders placed before rates per line).
    tax_rate_bp: Mapped[int | None]
    # The customer's note of the cart line: the kitchen's flag on the ticket.
    note: Mapped[str | None] = mapped_column(String(200))
    # A combo's components as priced at placement, in slot order: [{"slot_id", "slot", "item_id", "name",
    # "upcharge", "options"}], each naming its own item; [] for any other item.
    components: Mapped[list[dict[str, Any]]] = mapped_column(Json, default=list)
    # The components in the order's locale; None: as `components` (in the kitchen's).
    display_components: Mapped[list[dict[str, Any]] | None] = mapped_column(Json)
    # The code of the kitchen station the line was routed to at placement; None in a branch without stations.
    station: Mapped[str | None] = mapped_column(String(32))
    # `name` and `options` are in the branch's kitchen locale at placement (the ticket's); these, in the order's
    # locale (the kiosk's and the receipt's). None: as `name` and `options` (the same in both, or from before
    # languages).
    display_name: Mapped[str | None] = mapped_column(String(120))
    display_options: Mapped[list[dict[str, Any]] | None] = mapped_column(Json)

    __table_args__ = (CheckConstraint("qty > 0", name="qty_positive"),)


class Payment(Versioned, Timestamps, Base):
    """One attempt to take an order's money, by terminal, gateway or cash.

    The partial unique indexes are the rules no code path may break: an order has at
    most one approved payment, and a terminal at most one payment in flight.
    """

    __tablename__ = "payments"

    id: Mapped[int] = mapped_column(primary_key=True)
    order_id: Mapped[int] = mapped_column(ForeignKey("orders.id", ondelete="RESTRICT"), index=True)
    branch_id: Mapped[int] = mapped_column(ForeignKey("branches.id", ondelete="RESTRICT"), index=True)
    method: Mapped[PaymentMethod] = mapped_column(str_enum(PaymentMethod, "payment_method"))
    kiosk_id: Mapped[int | None] = mapped_column(ForeignKey("devices.id", ondelete="SET NULL"))
    terminal_id: Mapped[int | None] = mapped_column(ForeignKey("devices.id", ondelete="SET NULL"))
    amount: Mapped[int]
    currency: Mapped[str] = mapped_column(String(3))
    status: Mapped[PaymentStatus] = mapped_column(str_enum(PaymentStatus, "payment_status"))
    # Sent to a payment API so that a retried create never charges twice.
    idempotency_key: Mapped[str] = mapped_column(String(64), unique=True)
    # The payment API's id for it; webhooks without our metadata are matched by it.
    provider_ref: Mapped[str | None] = mapped_column(String(255), index=True)
    message: Mapped[str | None] = mapped_column(String(500))
    approved_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime())

    __table_args__ = (
        CheckConstraint("amount > 0", name="amount_positive"),
        Index(
            "uq_payments_one_approved_per_order",
            "order_id",
            unique=True,
            postgresql_where=text("status = 'approved'"),
            sqlite_where=text("status = 'approved'"),
        ),
        Index(
            "uq_payments_one_in_flight_per_terminal",
            "terminal_id",
            unique=True,
            postgresql_where=text("status IN ('pending', 'processing')"),
            sqlite_where=text("status IN ('pending', 'processing')"),
        ),
    )
