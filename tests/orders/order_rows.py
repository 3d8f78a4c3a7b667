"""Orders and payments written straight to the database, for the tests of the changes made to them.

A counter is a branch selling fries (counted, FRIES_LEFT left) and cola (not counted), with
a kiosk paired to a terminal. Rows are written LONG_AGO, so that a change shows in every
timestamp it sets; `Heard` stands in for the unit of work's `emit` and keeps what it hears.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from typing import Any

from sqlalchemy import func, select

from persistence.database import Database
from persistence.enums import DeadlineKind, DeliveryStatus, DeviceKind, OrderStatus, PaymentMethod, PaymentStatus
from persistence.tables import Deadline, Device, Order, OrderLine, Payment, PosDelivery
from server.settings import Settings
from tests.rows import add_branch, add_item

LONG_AGO = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)
TODAY = date(2026, 11, 27)
FRIES_LEFT = 8
UNIT_PRICE = 350
# A POS nobody listens to: only whether an order is queued for it matters here.
POS_URL = "http://127.0.0.1:9/orders"

# The moments an order keeps, and those an order in each status has reached, as a real one would carry them.
MOMENTS = ("paid_at", "started_at", "ready_at", "completed_at", "cancelled_at", "refunded_at")
REACHED: dict[OrderStatus, tuple[str, ...]] = {
    OrderStatus.AWAITING_PAYMENT: (),
    OrderStatus.PAID: ("paid_at",),
    OrderStatus.PREPARING: ("paid_at", "started_at"),
    OrderStatus.READY: ("paid_at", "started_at", "ready_at"),
    OrderStatus.COMPLETED: ("paid_at", "started_at", "ready_at", "completed_at"),
    OrderStatus.CANCELLED: ("cancelled_at",),
    OrderStatus.REFUNDED: ("paid_at", "refunded_at"),
}
# Payments that ended; those that took money also carry `approved_at`.
FINAL = frozenset(PaymentStatus) - {PaymentStatus.PENDING, PaymentStatus.PROCESSING}
TOOK_MONEY = frozenset({PaymentStatus.APPROVED, PaymentStatus.NEEDS_REFUND, PaymentStatus.REFUNDED})


@dataclass(frozen=True)
class Counter:
    """A branch with its kiosk, the kiosk's terminal, and two items it sells."""

    branch_id: int
    kiosk_id: int
    terminal_id: int
    fries: int
    cola: int


@dataclass
class Heard:
    """An `Emit` that keeps every event it is given, in order."""

    events: list[tuple[str, str, dict[str, Any]]] = field(default_factory=list)

    def __call__(self, channel: str, event: str, data: dict[str, Any]) -> None:
        self.events.append((channel, event, data))

    def pairs(self) -> list[tuple[str, str]]:
        """Channel and name of each event, sorted (channels are ordered each on its own)."""
        return sorted((channel, event) for channel, event, _ in self.events)

    def data(self, channel: str, event: str) -> dict[str, Any]:
        """The data of the one event of that name on that channel."""
        [data] = [data for c, e, data in self.events if (c, e) == (channel, event)]
        return data


def settings(*, pos: bool = False) -> Settings:
    """Settings of a test server, with a POS to push paid orders to when `pos`."""
    return Settings(_env_file=None, ENVIRONMENT="test", POS_API_URL=POS_URL if pos else None)


async def add_counter(db: Database) -> Counter:
    """A new branch with fries, cola, and a kiosk paired to a terminal."""
    branch_id = await add_branch(db)
    fries = await add_item(db, branch_id, stock=FRIES_LEFT)
    cola = await add_item(db, branch_id, stock=None)
    async with db.session() as session:
        terminal = Device(branch_id=branch_id, kind=DeviceKind.PAYMENT_TERMINAL, name="terminal", secret_hash="x")
        session.add(terminal)
        await session.flush()
        kiosk = Device(
            branch_id=branch_id, kind=DeviceKind.KIOSK, name="kiosk", secret_hash="x", paired_terminal_id=terminal.id
        )
        session.add(kiosk)
        await session.flush()
        return Counter(branch_id, kiosk.id, terminal.id, fries, cola)


async def add_order(
    db: Database,
    counter: Counter,
    status: OrderStatus = OrderStatus.AWAITING_PAYMENT,
    lines: Sequence[tuple[int, int]] | None = None,
    *,
    from_kiosk: bool = True,
) -> int:
    """An order of the counter's kiosk (or of no device) in `status`, every moment it reached LONG_AGO;
    `lines` are (item id, qty), one cola by default. Its id."""
    lines = lines or [(counter.cola, 1)]
    total = sum(qty * UNIT_PRICE for _, qty in lines)
    async with db.session() as session:
        count = await session.scalar(
            select(func.count()).select_from(Order).where(Order.branch_id == counter.branch_id)
        )
        order = Order(
            branch_id=counter.branch_id,
            device_id=counter.kiosk_id if from_kiosk else None,
            number=(count or 0) + 1,
            business_date=TODAY,
            status=status,
            currency="EUR",
            subtotal=total,
            tax=0,
            total=total,
            cancel_reason="cancelled_by_kiosk" if status == OrderStatus.CANCELLED else None,
            created_at=LONG_AGO,
            updated_at=LONG_AGO,
            lines=[
                OrderLine(
                    item_id=item_id, name=f"item {item_id}", qty=qty, unit_price=UNIT_PRICE, line_total=qty * UNIT_PRICE
                )
                for item_id, qty in lines
            ],
            **dict.fromkeys(REACHED[status], LONG_AGO),
        )
        session.add(order)
        await session.flush()
        return order.id


async def add_payment(
    db: Database,
    counter: Counter,
    order_id: int,
    status: PaymentStatus,
    *,
    method: PaymentMethod = PaymentMethod.TERMINAL,
    provider_ref: str | None = None,
) -> int:
    """A payment of the order's total in `status`, started by the kiosk (a terminal payment: at its terminal), its
    moments LONG_AGO as far as it got. Its id."""
    async with db.session() as session:
        order = await session.get(Order, order_id)
        assert order is not None
        payment = Payment(
            order_id=order_id,
            branch_id=counter.branch_id,
            method=method,
            kiosk_id=None if method == PaymentMethod.CASH else counter.kiosk_id,
            terminal_id=counter.terminal_id if method == PaymentMethod.TERMINAL else None,
            amount=order.total,
            currency=order.currency,
            status=status,
            idempotency_key=f"key-{order_id}-{status.value}-{method.value}",
            provider_ref=provider_ref,
            message="as it was",
            approved_at=LONG_AGO if status in TOOK_MONEY else None,
            finished_at=LONG_AGO if status in FINAL else None,
            created_at=LONG_AGO,
            updated_at=LONG_AGO,
        )
        session.add(payment)
        await session.flush()
        return payment.id


async def order_row(db: Database, order_id: int) -> Order:
    """The order as stored, read in a transaction of its own."""
    async with db.session() as session:
        order = await session.get(Order, order_id)
    assert order is not None
    return order


async def payment_row(db: Database, payment_id: int) -> Payment:
    """The payment as stored, read in a transaction of its own."""
    async with db.session() as session:
        payment = await session.get(Payment, payment_id)
    assert payment is not None
    return payment


def moments(order: Order) -> dict[str, datetime | None]:
    """The moments the order keeps, by name."""
    return {name: getattr(order, name) for name in MOMENTS}


async def open_deadline(db: Database, kind: DeadlineKind, ref_id: int) -> None:
    """An open deadline of `kind` for `ref_id`, due LONG_AGO."""
    async with db.session() as session:
        session.add(Deadline(kind=kind, ref_id=ref_id, due_at=LONG_AGO))


async def deadline_done_at(db: Database, kind: DeadlineKind, ref_id: int) -> datetime | None:
    """When the deadline of `kind` for `ref_id` was marked done (None: still open)."""
    async with db.session() as session:
        deadline = (
            await session.scalars(select(Deadline).where(Deadline.kind == kind, Deadline.ref_id == ref_id))
        ).one()
    return deadline.done_at


async def pos_queue(db: Database) -> list[tuple[int, DeliveryStatus, int]]:
    """The POS deliveries: order id, status and attempts of each."""
    async with db.session() as session:
        rows = (await session.scalars(select(PosDelivery).order_by(PosDelivery.id))).all()
    return [(row.order_id, row.status, row.attempts) for row in rows]
