"""REST orders and payments, read-only: newest first, filters, lines and payments, branch scoping."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta

import httpx
import pytest

from persistence.enums import DeviceKind, OrderStatus, PaymentMethod, PaymentStatus
from persistence.tables import Category, Device, Item, Order, OrderLine, Payment
from server.services import Services
from tests.world import World

ORDERS = "/api/v1/orders"
PAYMENTS = "/api/v1/payments"
T0 = datetime(2026, 11, 26, 12, 0, tzinfo=UTC)
TODAY = date(2026, 11, 26)


@dataclass
class Shop:
    """Ids of what `_shop` stored."""

    kiosk_a: int
    orders_a: list[int]  # oldest first
    order_b: int
    payments_a: list[int]  # oldest first
    payment_b: int


async def _shop(services: Services, world: World) -> Shop:
    """Three orders in branch a (one a day earlier), one in branch b, and payments for them."""
    async with services.db.session() as session:
        kiosk = Device(branch_id=world.branch_a, kind=DeviceKind.KIOSK, name="Kiosk A", secret_hash="-")
        category = Category(name="Burgers")
        session.add_all([kiosk, category])
        await session.flush()
        item = Item(category_id=category.id, name="Burger", price=500)
        session.add(item)
        await session.flush()

        def order(branch_id: int, number: int, minutes: int, status: OrderStatus, device: int | None) -> Order:
            created = T0 + timedelta(minutes=minutes)
            line = OrderLine(
                item_id=item.id,
                name="Burger",
                qty=2,
                unit_price=500,
                options=[{"choice_id": 1, "group_id": 1, "group": "Size", "name": "Large", "price_delta": 0}],
                line_total=1000,
            )
            return Order(
                branch_id=branch_id,
                device_id=device,
                number=number,
                business_date=created.date(),
                status=status,
                currency="EUR",
                subtotal=1000,
                tax=0,
                total=1000,
                created_at=created,
                lines=[line],
            )

        orders_a = [
            order(world.branch_a, 7, -24 * 60, OrderStatus.COMPLETED, None),
            order(world.branch_a, 1, 0, OrderStatus.PAID, kiosk.id),
            order(world.branch_a, 2, 5, OrderStatus.AWAITING_PAYMENT, kiosk.id),
        ]
        order_b = order(world.branch_b, 1, 1, OrderStatus.PAID, None)
        session.add_all([*orders_a, order_b])
        await session.flush()

        def payment(placed: Order, status: PaymentStatus, method: PaymentMethod, minutes: int) -> Payment:
            return Payment(
                order_id=placed.id,
                branch_id=placed.branch_id,
                method=method,
                amount=placed.total,
                currency=placed.currency,
                status=status,
                idempotency_key=str(uuid.uuid4()),
                created_at=T0 + timedelta(minutes=minutes),
            )

        payments_a = [
            payment(orders_a[1], PaymentStatus.DECLINED, PaymentMethod.TERMINAL, 1),
            payment(orders_a[1], PaymentStatus.APPROVED, PaymentMethod.TERMINAL, 2),
            payment(orders_a[2], PaymentStatus.NEEDS_REFUND, PaymentMethod.TERMINAL, 6),
            payment(orders_a[0], PaymentStatus.APPROVED, PaymentMethod.CASH, 7),
        ]
        payment_b = payment(order_b, PaymentStatus.APPROVED, PaymentMethod.CASH, 3)
        session.add_all([*payments_a, payment_b])
        await session.flush()
        return Shop(kiosk.id, [o.id for o in orders_a], order_b.id, [p.id for p in payments_a], payment_b.id)


def _ids(response: httpx.Response) -> list[int]:
    assert response.status_code == 200, response.text
    return [row["id"] for row in response.json()["items"]]


async def test_orders_list_newest_first_within_the_callers_branch(
    client: httpx.AsyncClient, services: Services, world: World
) -> None:
    """Branch users see their branch's orders, newest first, with lines; admins see every branch."""
    shop = await _shop(services, world)
    staff = await client.get(ORDERS, headers=world.staff_a.headers)
    assert _ids(staff) == shop.orders_a[::-1]
    first = staff.json()["items"][0]
    assert (first["number"], first["status"], first["total"], first["currency"]) == (2, "awaiting_payment", 1000, "EUR")
    assert first["lines"][0]["options"][0]["name"] == "Large"
    assert "payments" not in first
    admin = await client.get(ORDERS, headers=world.admin.headers)
    assert _ids(admin) == [shop.orders_a[2], shop.order_b, shop.orders_a[1], shop.orders_a[0]]
    only_b = await client.get(ORDERS, params={"branch_id": world.branch_b}, headers=world.admin.headers)
    assert _ids(only_b) == [shop.order_b]


@pytest.mark.parametrize(
    ("params", "expected"),
    [
        ({"status": "paid"}, [1]),
        ({"business_date": (TODAY - timedelta(days=1)).isoformat()}, [0]),
        ({"business_date": TODAY.isoformat()}, [2, 1]),
        ({"number": 2}, [2]),
        ({"created_from": T0.isoformat()}, [2, 1]),
        ({"created_from": "2026-11-26T12:00:00+01:00", "created_to": (T0 + timedelta(minutes=1)).isoformat()}, [1]),
    ],
)
async def test_orders_filters(
    client: httpx.AsyncClient, services: Services, world: World, params: dict[str, str | int], expected: list[int]
) -> None:
    """Status, business date, number and a created-at window narrow the list."""
    shop = await _shop(services, world)
    response = await client.get(ORDERS, params=params, headers=world.manager_a.headers)
    assert _ids(response) == [shop.orders_a[i] for i in expected]


async def test_orders_filter_by_device(client: httpx.AsyncClient, services: Services, world: World) -> None:
    """device_id lists the orders placed at one kiosk."""
    shop = await _shop(services, world)
    response = await client.get(ORDERS, params={"device_id": shop.kiosk_a}, headers=world.admin.headers)
    assert _ids(response) == [shop.orders_a[2], shop.orders_a[1]]


@pytest.mark.parametrize(
    "params",
    [
        {"created_from": "2026-11-26T12:00:00"},
        {"status": "lost"},
        {"business_date": "yesterday"},
        {"device_id": 2**40},
        {"colour": "red"},
    ],
)
async def test_bad_order_filters_are_invalid(
    client: httpx.AsyncClient, world: World, params: dict[str, str | int]
) -> None:
    """A time without a zone, an unknown status, a bad date, an id out of range or an unknown filter is `invalid`."""
    response = await client.get(ORDERS, params=params, headers=world.admin.headers)
    assert response.status_code == 422, response.text
    assert response.json()["error"]["code"] == "invalid"


async def test_orders_paginate(client: httpx.AsyncClient, services: Services, world: World) -> None:
    """limit and offset cut the newest-first list; total counts all of it."""
    shop = await _shop(services, world)
    page = (await client.get(ORDERS, params={"limit": 1, "offset": 1}, headers=world.staff_a.headers)).json()
    assert [o["id"] for o in page["items"]] == [shop.orders_a[1]]
    assert page["total"] == 3


async def test_read_order_with_lines_and_payments(client: httpx.AsyncClient, services: Services, world: World) -> None:
    """One order comes with its lines and all its payments, oldest payment first."""
    shop = await _shop(services, world)
    response = await client.get(f"{ORDERS}/{shop.orders_a[1]}", headers=world.staff_a.headers)
    assert response.status_code == 200, response.text
    order = response.json()
    assert (order["number"], order["status"], order["device_id"]) == (1, "paid", shop.kiosk_a)
    assert [(line["qty"], line["unit_price"], line["line_total"]) for line in order["lines"]] == [(2, 500, 1000)]
    assert [(p["id"], p["status"]) for p in order["payments"]] == [
        (shop.payments_a[0], "declined"),
        (shop.payments_a[1], "approved"),
    ]


@pytest.mark.parametrize("actor", ["manager_b", "staff_b"])
async def test_another_branch_may_not_read_orders(
    client: httpx.AsyncClient, services: Services, world: World, actor: str
) -> None:
    """Branch b's users get 404 on a branch-a order (as if there were none), 403 on a's list, never a's orders."""
    shop = await _shop(services, world)
    headers = getattr(world, actor).headers
    assert (await client.get(f"{ORDERS}/{shop.orders_a[0]}", headers=headers)).status_code == 404
    assert (await client.get(ORDERS, params={"branch_id": world.branch_a}, headers=headers)).status_code == 403
    assert _ids(await client.get(ORDERS, headers=headers)) == [shop.order_b]


async def test_unknown_order_or_payment_is_not_found(client: httpx.AsyncClient, world: World) -> None:
    """Reading an order or a payment that does not exist is `not_found`."""
    for url in (f"{ORDERS}/999", f"{PAYMENTS}/999"):
        response = await client.get(url, headers=world.admin.headers)
        assert response.status_code == 404
        assert response.json()["error"]["code"] == "not_found"


async def test_payments_list_newest_first_within_the_callers_branch(
    client: httpx.AsyncClient, services: Services, world: World
) -> None:
    """Branch users see their branch's payments, newest first; admins see every branch's."""
    shop = await _shop(services, world)
    staff = await client.get(PAYMENTS, headers=world.staff_a.headers)
    assert _ids(staff) == shop.payments_a[::-1]
    first = staff.json()["items"][0]
    assert (first["method"], first["status"], first["amount"], first["order_id"]) == (
        "cash",
        "approved",
        1000,
        shop.orders_a[0],
    )
    assert "idempotency_key" not in first
    admin = await client.get(PAYMENTS, headers=world.admin.headers)
    assert _ids(admin) == [*shop.payments_a[:1:-1], shop.payment_b, *shop.payments_a[1::-1]]


@pytest.mark.parametrize(
    ("params", "expected"),
    [
        ({"status": "needs_refund"}, [2]),
        ({"method": "cash"}, [3]),
        ({"status": "approved", "method": "terminal"}, [1]),
    ],
)
async def test_payments_filters(
    client: httpx.AsyncClient, services: Services, world: World, params: dict[str, str | int], expected: list[int]
) -> None:
    """Staff find payments by status (e.g. the ones that need a refund) and method."""
    shop = await _shop(services, world)
    response = await client.get(PAYMENTS, params=params, headers=world.staff_a.headers)
    assert _ids(response) == [shop.payments_a[i] for i in expected]


async def test_payments_of_one_order(client: httpx.AsyncClient, services: Services, world: World) -> None:
    """order_id lists one order's payments; pages cut the list."""
    shop = await _shop(services, world)
    params = {"order_id": shop.orders_a[1], "limit": 1}
    page = (await client.get(PAYMENTS, params=params, headers=world.admin.headers)).json()
    assert ([p["id"] for p in page["items"]], page["total"]) == ([shop.payments_a[1]], 2)


async def test_read_payment(client: httpx.AsyncClient, services: Services, world: World) -> None:
    """One payment of the caller's branch, with its order and amount."""
    shop = await _shop(services, world)
    response = await client.get(f"{PAYMENTS}/{shop.payments_a[2]}", headers=world.staff_a.headers)
    assert response.status_code == 200, response.text
    assert (response.json()["status"], response.json()["order_id"]) == ("needs_refund", shop.orders_a[2])


@pytest.mark.parametrize("actor", ["manager_b", "staff_b"])
async def test_another_branch_may_not_read_payments(
    client: httpx.AsyncClient, services: Services, world: World, actor: str
) -> None:
    """Branch b's users get 404 on a branch-a payment (as if it did not exist), 403 on a's list, never a's payments."""
    shop = await _shop(services, world)
    headers = getattr(world, actor).headers
    assert (await client.get(f"{PAYMENTS}/{shop.payments_a[0]}", headers=headers)).status_code == 404
    assert (await client.get(PAYMENTS, params={"branch_id": world.branch_a}, headers=headers)).status_code == 403
    assert _ids(await client.get(PAYMENTS, headers=headers)) == [shop.payment_b]
