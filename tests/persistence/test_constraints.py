"""The migrated schema itself keeps the rules no code path may break, on SQLite and PostgreSQL."""

from __future__ import annotations

import uuid
from datetime import date

import pytest
from sqlalchemy import Date, bindparam, delete, func, select, text, update
from sqlalchemy.exc import IntegrityError

from persistence.database import Database
from persistence.enums import DeviceKind, OrderStatus, PaymentMethod, PaymentStatus
from persistence.tables import (
    Branch,
    CommandLogEntry,
    Device,
    ItemAvailability,
    Order,
    Payment,
)
from tests.rows import add_branch, add_item, stock_of

TODAY = date(2026, 11, 27)


async def _device(db: Database, branch_id: int, kind: DeviceKind, paired_terminal_id: int | None = None) -> int:
    async with db.session() as session:
        device = Device(
            branch_id=branch_id, kind=kind, name=kind.value, secret_hash="x", paired_terminal_id=paired_terminal_id
        )
        session.add(device)
        await session.flush()
        return device.id


async def _add_order(db: Database, branch_id: int, number: int = 1, business_date: date = TODAY) -> int:
    async with db.session() as session:
        order = Order(
            branch_id=branch_id,
            number=number,
            business_date=business_date,
            status=OrderStatus.AWAITING_PAYMENT,
            currency="EUR",
            subtotal=1000,
            tax=190,
            total=1190,
        )
        session.add(order)
        await session.flush()
        return order.id


async def _add_payment(
    db: Database, order_id: int, branch_id: int, status: PaymentStatus, terminal_id: int | None = None
) -> int:
    async with db.session() as session:
        payment = Payment(
            order_id=order_id,
            branch_id=branch_id,
            method=PaymentMethod.TERMINAL if terminal_id is not None else PaymentMethod.GATEWAY,
            terminal_id=terminal_id,
            amount=1190,
            currency="EUR",
            status=status,
            idempotency_key=str(uuid.uuid4()),
        )
        session.add(payment)
        await session.flush()
        return payment.id


async def _payment_statuses(db: Database, order_id: int) -> list[PaymentStatus]:
    async with db.session() as session:
        found = await session.scalars(select(Payment.status).where(Payment.order_id == order_id).order_by(Payment.id))
        return list(found)


# Stock


async def _stocked_item(db: Database, stock: int) -> tuple[int, int]:
    branch_id = await add_branch(db)
    return branch_id, await add_item(db, branch_id, stock=stock)


async def test_stock_cannot_be_set_below_zero(db: Database) -> None:
    """A direct UPDATE to a negative stock is refused by the CHECK constraint and the stock is kept."""
    branch_id, item_id = await _stocked_item(db, stock=2)
    with pytest.raises(IntegrityError):
        async with db.session() as session:
            await session.execute(
                update(ItemAvailability)
                .where(ItemAvailability.branch_id == branch_id, ItemAvailability.item_id == item_id)
                .values(stock=-1)
            )
    assert await stock_of(db, branch_id, item_id) == 2


async def test_conditional_reservation_takes_stock_only_when_enough_is_left(db: Database) -> None:
    """`SET stock = stock - q WHERE stock >= q` touches no row when short and takes exactly q otherwise."""
    branch_id, item_id = await _stocked_item(db, stock=2)
    reserve = text(
        "UPDATE items_live_available SET stock = stock - :qty "
        "WHERE branch_id = :branch_id AND item_id = :item_id AND stock >= :qty"
    )

    async with db.session() as session:
        short = await session.execute(reserve, {"qty": 3, "branch_id": branch_id, "item_id": item_id})
    assert short.rowcount == 0  # type: ignore[attr-defined]
    assert await stock_of(db, branch_id, item_id) == 2

    async with db.session() as session:
        enough = await session.execute(reserve, {"qty": 2, "branch_id": branch_id, "item_id": item_id})
    assert enough.rowcount == 1  # type: ignore[attr-defined]
    assert await stock_of(db, branch_id, item_id) == 0


# Payments


async def test_an_order_has_at_most_one_approved_payment(db: Database) -> None:
    """A second approved payment is refused, whether inserted approved or updated to approved."""
    branch_id = await add_branch(db)
    order_id = await _add_order(db, branch_id)
    await _add_payment(db, order_id, branch_id, PaymentStatus.APPROVED)

    with pytest.raises(IntegrityError):
        await _add_payment(db, order_id, branch_id, PaymentStatus.APPROVED)

    declined_id = await _add_payment(db, order_id, branch_id, PaymentStatus.DECLINED)
    with pytest.raises(IntegrityError):
        async with db.session() as session:
            await session.execute(
                update(Payment).where(Payment.id == declined_id).values(status=PaymentStatus.APPROVED)
            )

    assert await _payment_statuses(db, order_id) == [PaymentStatus.APPROVED, PaymentStatus.DECLINED]


async def test_an_order_may_have_many_unapproved_payments(db: Database) -> None:
    """Declined and failed attempts do not collide, and one of them may still be followed by an approval."""
    branch_id = await add_branch(db)
    order_id = await _add_order(db, branch_id)
    await _add_payment(db, order_id, branch_id, PaymentStatus.DECLINED)
    await _add_payment(db, order_id, branch_id, PaymentStatus.DECLINED)
    await _add_payment(db, order_id, branch_id, PaymentStatus.FAILED)
    await _add_payment(db, order_id, branch_id, PaymentStatus.APPROVED)
    assert len(await _payment_statuses(db, order_id)) == 4


async def test_a_terminal_has_at_most_one_payment_in_flight(db: Database) -> None:
    """While a terminal has a pending or processing payment, another pending one for it is refused."""
    branch_id = await add_branch(db)
    terminal_id = await _device(db, branch_id, DeviceKind.PAYMENT_TERMINAL)
    first_order = await _add_order(db, branch_id, number=1)
    second_order = await _add_order(db, branch_id, number=2)
    first_payment = await _add_payment(db, first_order, branch_id, PaymentStatus.PENDING, terminal_id)

    with pytest.raises(IntegrityError):
        await _add_payment(db, second_order, branch_id, PaymentStatus.PENDING, terminal_id)

    async with db.session() as session:
        await session.execute(
            update(Payment).where(Payment.id == first_payment).values(status=PaymentStatus.PROCESSING)
        )
    with pytest.raises(IntegrityError):
        await _add_payment(db, second_order, branch_id, PaymentStatus.PENDING, terminal_id)

    assert await _payment_statuses(db, second_order) == []


async def test_a_terminal_takes_a_new_payment_once_the_last_one_finished(db: Database) -> None:
    """After the in-flight payment is approved the terminal accepts a new pending one."""
    branch_id = await add_branch(db)
    terminal_id = await _device(db, branch_id, DeviceKind.PAYMENT_TERMINAL)
    first_order = await _add_order(db, branch_id, number=1)
    second_order = await _add_order(db, branch_id, number=2)
    first_payment = await _add_payment(db, first_order, branch_id, PaymentStatus.PENDING, terminal_id)

    async with db.session() as session:
        await session.execute(update(Payment).where(Payment.id == first_payment).values(status=PaymentStatus.APPROVED))
    await _add_payment(db, second_order, branch_id, PaymentStatus.PENDING, terminal_id)

    assert await _payment_statuses(db, second_order) == [PaymentStatus.PENDING]


async def test_in_flight_payments_do_not_collide_across_terminals_or_without_one(db: Database) -> None:
    """Two terminals each hold a pending payment, and terminal-less (gateway) payments never collide."""
    branch_id = await add_branch(db)
    terminals = [await _device(db, branch_id, DeviceKind.PAYMENT_TERMINAL) for _ in range(2)]
    orders = [await _add_order(db, branch_id, number=number) for number in (1, 2, 3, 4)]

    await _add_payment(db, orders[0], branch_id, PaymentStatus.PENDING, terminals[0])
    await _add_payment(db, orders[1], branch_id, PaymentStatus.PENDING, terminals[1])
    await _add_payment(db, orders[2], branch_id, PaymentStatus.PENDING)
    await _add_payment(db, orders[3], branch_id, PaymentStatus.PROCESSING)

    async with db.session() as session:
        assert await session.scalar(select(func.count()).select_from(Payment)) == 4


# Order numbers and the command log


async def test_order_numbers_are_unique_per_branch_and_business_date(db: Database) -> None:
    """Number 1 twice on one branch and day is refused; another day or another branch may reuse it."""
    alpha = await add_branch(db, "Alpha")
    beta = await add_branch(db, "Beta")
    await _add_order(db, alpha, number=1)

    with pytest.raises(IntegrityError):
        await _add_order(db, alpha, number=1)

    await _add_order(db, alpha, number=1, business_date=date(2026, 11, 28))
    await _add_order(db, beta, number=1)

    async with db.session() as session:
        numbers = await session.execute(select(Order.branch_id, Order.business_date, Order.number).order_by(Order.id))
        assert [tuple(row) for row in numbers] == [
            (alpha, TODAY, 1),
            (alpha, date(2026, 11, 28), 1),
            (beta, TODAY, 1),
        ]


async def test_command_ids_are_unique_per_principal(db: Database) -> None:
    """A principal cannot log one command id twice; another principal may use the same id."""

    def entry(principal: str) -> CommandLogEntry:
        return CommandLogEntry(principal=principal, command_id="c-1", command="cart.add", reply={"ok": True})

    async with db.session() as session:
        session.add(entry("device:1"))

    with pytest.raises(IntegrityError):
        async with db.session() as session:
            session.add(entry("device:1"))

    async with db.session() as session:
        session.add(entry("device:2"))

    async with db.session() as session:
        principals = await session.scalars(select(CommandLogEntry.principal).order_by(CommandLogEntry.principal))
        assert list(principals) == ["device:1", "device:2"]


# Enums


async def _insert_raw_order(db: Database, branch_id: int, status: str) -> None:
    # Raw SQL, because the ORM would refuse an unknown status before the database sees it.
    statement = text(
        "INSERT INTO orders (branch_id, number, business_date, status, currency, subtotal, tax, total) "
        "VALUES (:branch_id, 1, :business_date, :status, 'EUR', 0, 0, 0)"
    ).bindparams(bindparam("business_date", type_=Date()))
    async with db.session() as session:
        await session.execute(statement, {"branch_id": branch_id, "business_date": TODAY, "status": status})


async def test_an_unknown_enum_value_is_refused_by_the_database(db: Database) -> None:
    """An order status outside OrderStatus fails the CHECK constraint; a known one goes in."""
    branch_id = await add_branch(db)
    with pytest.raises(IntegrityError):
        await _insert_raw_order(db, branch_id, "lost")

    await _insert_raw_order(db, branch_id, OrderStatus.PAID.value)
    async with db.session() as session:
        assert list(await session.scalars(select(Order.status))) == [OrderStatus.PAID]


# Devices and branches


async def test_a_kiosk_cannot_be_paired_to_itself(db: Database) -> None:
    """Setting a device's paired terminal to its own id is refused."""
    branch_id = await add_branch(db)
    kiosk_id = await _device(db, branch_id, DeviceKind.KIOSK)
    with pytest.raises(IntegrityError):
        async with db.session() as session:
            await session.execute(update(Device).where(Device.id == kiosk_id).values(paired_terminal_id=kiosk_id))

    async with db.session() as session:
        assert await session.scalar(select(Device.paired_terminal_id).where(Device.id == kiosk_id)) is None


async def test_two_kiosks_cannot_share_a_terminal(db: Database) -> None:
    """Pairing a second kiosk to a terminal already paired is refused; the first pairing stays."""
    branch_id = await add_branch(db)
    terminal_id = await _device(db, branch_id, DeviceKind.PAYMENT_TERMINAL)
    first_kiosk = await _device(db, branch_id, DeviceKind.KIOSK, paired_terminal_id=terminal_id)

    with pytest.raises(IntegrityError):
        await _device(db, branch_id, DeviceKind.KIOSK, paired_terminal_id=terminal_id)

    async with db.session() as session:
        paired = await session.execute(select(Device.id).where(Device.paired_terminal_id == terminal_id))
        assert [row.id for row in paired] == [first_kiosk]


async def test_a_branch_with_devices_cannot_be_deleted(db: Database) -> None:
    """Deleting a branch that still has devices is refused (RESTRICT); an empty branch can be deleted."""
    with_device = await add_branch(db, "Alpha")
    empty = await add_branch(db, "Beta")
    await _device(db, with_device, DeviceKind.KIOSK)

    with pytest.raises(IntegrityError):
        async with db.session() as session:
            await session.execute(delete(Branch).where(Branch.id == with_device))

    async with db.session() as session:
        await session.execute(delete(Branch).where(Branch.id == empty))

    async with db.session() as session:
        assert list(await session.scalars(select(Branch.id))) == [with_device]
        assert await session.scalar(select(func.count()).select_from(Device)) == 1
