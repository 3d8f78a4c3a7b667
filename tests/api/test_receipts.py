"""GET /api/v1/orders/{id}/receipt: staff read a paid order's receipt, the same the kiosk gets with `order.receipt`."""

from __future__ import annotations

import httpx

from server.payloads.receipt import ReceiptView
from tests.shop import Shop
from tests.world import World

ORDERS = "/api/v1/orders"


async def test_staff_read_the_receipt_the_kiosk_gets(client: httpx.AsyncClient, shop: Shop, world: World) -> None:
    """The branch's staff and an admin get exactly the kiosk's receipt of the same order, the terminal's reference in
    it."""
    options = [shop.choices["Large"], shop.choices["Cheese"]]
    order = await shop.placed_order([{"item_id": shop.burger, "options": options}, {"item_id": shop.cola, "qty": 2}])
    await shop.pay_at_terminal(order, "ACQ-99")
    kiosks = await shop.send(shop.kiosk, "order.receipt", {"order_id": order["id"]})
    for actor in (world.staff_a, world.admin):
        response = await client.get(f"{ORDERS}/{order['id']}/receipt", headers=actor.headers)
        assert response.status_code == 200, response.text
        assert response.json() == kiosks
    receipt = ReceiptView.model_validate(kiosks)
    assert receipt.payment is not None and receipt.payment.provider_ref == "ACQ-99"
    assert [(line.name, line.qty, len(line.options)) for line in receipt.lines] == [("Burger", 1, 2), ("Cola", 2, 0)]
    assert (receipt.total, receipt.taxes[0].rate_bp, receipt.taxes[0].total) == (order["total"], 1900, order["total"])


async def test_another_branchs_staff_get_not_found_and_unpaid_is_conflict(
    client: httpx.AsyncClient, shop: Shop, world: World
) -> None:
    """Branch b's staff and manager are told the order does not exist, as for an id of no order; an order awaiting
    payment is `conflict` naming its status."""
    paid = await shop.paid_order()
    for actor in (world.staff_b, world.manager_b):
        response = await client.get(f"{ORDERS}/{paid['id']}/receipt", headers=actor.headers)
        assert (response.status_code, response.json()["error"]["code"]) == (404, "not_found")
    missing = await client.get(f"{ORDERS}/{paid['id'] + 1000}/receipt", headers=world.admin.headers)
    assert missing.status_code == 404

    unpaid = await shop.placed_order()
    response = await client.get(f"{ORDERS}/{unpaid['id']}/receipt", headers=world.staff_a.headers)
    assert response.status_code == 409
    assert response.json()["error"]["details"] == {"order_id": unpaid["id"], "status": "awaiting_payment"}
