"""Refund routes (server/api/refunds.py): a paid order or a `needs_refund` payment given back."""

from __future__ import annotations

from datetime import timedelta

import httpx
from sqlalchemy import select

from channels import names
from persistence.base import utcnow
from persistence.tables import OutboxEvent
from tests.shop import Shop
from tests.world import World

PREFIX = "/api/v1"
LIMIT_S = 10


async def events_since(shop: Shop, since: int) -> list[tuple[str, str]]:
    """Channel and name of the outbox events after the first `since`."""
    async with shop.services.db.session() as session:
        rows = (await session.scalars(select(OutboxEvent).order_by(OutboxEvent.id))).all()
    return [(row.channel, row.event) for row in rows][since:]


async def test_a_manager_refunds_a_paid_order_and_the_kitchen_drops_it(
    client: httpx.AsyncClient, shop: Shop, world: World
) -> None:
    """The order and its cash payment become refunded; kitchen, board, kiosk and staff hear it."""
    order = await shop.paid_order()
    before = len(await events_since(shop, 0))
    response = await client.post(f"{PREFIX}/orders/{order['id']}/refund", headers=world.manager_a.headers)
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["status"] == "refunded"
    assert [p["status"] for p in body["payments"]] == ["refunded"]
    heard = set(await events_since(shop, before))
    assert (names.branch_kitchen(shop.branch_id), "order.cancelled") in heard
    assert (names.branch_board(shop.branch_id), "board.updated") in heard
    assert (names.device(shop.kiosk.id), "order.refunded") in heard
    assert (names.branch_orders(shop.branch_id), "payment.refunded") in heard
    again = await client.post(f"{PREFIX}/orders/{order['id']}/refund", headers=world.manager_a.headers)
    assert (again.status_code, again.json()["error"]["code"]) == (409, "conflict")


async def test_refunds_are_for_admins_and_the_branch_manager(
    client: httpx.AsyncClient, shop: Shop, world: World
) -> None:
    """Staff lack the permission; another branch's manager is told the order is not found; an admin may."""
    order = await shop.paid_order()
    path = f"{PREFIX}/orders/{order['id']}/refund"
    assert (await client.post(path, headers=world.staff_a.headers)).status_code == 403
    assert (await client.post(path, headers=world.manager_b.headers)).status_code == 404
    assert (await client.post(path, headers=world.admin.headers)).status_code == 200
    assert (await client.post(f"{PREFIX}/orders/999999/refund", headers=world.admin.headers)).status_code == 404


async def test_an_order_the_kitchen_started_is_not_refunded(
    client: httpx.AsyncClient, shop: Shop, world: World
) -> None:
    """PROTOCOL.md refunds `paid` orders only: a preparing one is `conflict` and nothing changes."""
    order = await shop.paid_order()
    await shop.send(shop.kitchen, "order.start", {"order_id": order["id"]})
    response = await client.post(f"{PREFIX}/orders/{order['id']}/refund", headers=world.manager_a.headers)
    assert (response.status_code, response.json()["error"]["details"]["status"]) == (409, "preparing")
    detail = await client.get(f"{PREFIX}/orders/{order['id']}", headers=world.manager_a.headers)
    assert [p["status"] for p in detail.json()["payments"]] == ["approved"]


async def test_a_payment_that_needs_a_refund_is_refunded_on_its_own(
    client: httpx.AsyncClient, shop: Shop, world: World
) -> None:
    """A late approval for an order paid in cash is listed as needs_refund, and refunding it settles it."""
    await shop.terminal_online()
    order = await shop.placed_order()
    payment = await shop.send(shop.kiosk, "payment.start", {"order_id": order["id"]})
    await shop.services.deadlines.run_once(utcnow() + timedelta(seconds=shop.services.settings.PAYMENT_TIMEOUT_S + 1))
    await shop.send(shop.staff, "order.mark_paid", {"order_id": order["id"]})
    await shop.send(shop.terminal, "payment.result", {"payment_id": payment["id"], "status": "approved"})
    listed = await client.get(f"{PREFIX}/payments", params={"status": "needs_refund"}, headers=world.manager_a.headers)
    assert [p["id"] for p in listed.json()["items"]] == [payment["id"]]
    response = await client.post(f"{PREFIX}/payments/{payment['id']}/refund", headers=world.manager_a.headers)
    assert (response.status_code, response.json()["status"]) == (200, "refunded")
    cash = [
        p
        for p in (await client.get(f"{PREFIX}/orders/{order['id']}", headers=world.admin.headers)).json()["payments"]
        if p["id"] != payment["id"]
    ]
    conflict = await client.post(f"{PREFIX}/payments/{cash[0]['id']}/refund", headers=world.manager_a.headers)
    assert (conflict.status_code, conflict.json()["error"]["code"]) == (409, "conflict")
