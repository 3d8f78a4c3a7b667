"""Payments through real WebSocket clients: kiosk, paired terminal and kitchen on one server."""

from __future__ import annotations

import asyncio

import pytest

from channels import names
from channels.client import DeviceClient
from tests.live import live_server
from tests.shop import Shop

TIMEOUT_S = 10


async def test_a_card_payment_goes_from_kiosk_to_terminal_to_kitchen(shop: Shop) -> None:
    """payment.start reaches the terminal; its approval pays the order, which the kitchen then sees."""
    async with live_server(shop.services) as live, asyncio.timeout(30):
        async with (
            DeviceClient(live.ws, shop.terminal.token) as terminal,
            DeviceClient(live.ws, shop.kiosk.token) as kiosk,
            DeviceClient(live.ws, shop.kitchen.token) as kitchen,
        ):
            cart = await kiosk.command("cart.create")
            await kiosk.command("cart.add", {"cart_id": cart["id"], "item_id": shop.fries, "qty": 2})
            order = await kiosk.command("order.place", {"cart_id": cart["id"]})
            payment = await kiosk.command("payment.start", {"order_id": order["id"]})
            asked = await terminal.next_event(names.device(shop.terminal.id), "payment.requested")
            assert (asked["data"]["id"], asked["data"]["amount"]) == (payment["id"], 700)

            await terminal.command("payment.progress", {"payment_id": payment["id"], "status": "processing"})
            heard = await kiosk.next_event(names.device(shop.kiosk.id), "payment.processing")
            assert heard["data"]["id"] == payment["id"]
            result = {"payment_id": payment["id"], "status": "approved", "provider_ref": "A1"}
            await terminal.command("payment.result", result)
            await kiosk.next_event(names.device(shop.kiosk.id), "payment.approved")
            paid = await kiosk.next_event(names.device(shop.kiosk.id), "order.paid")
            assert paid["data"]["id"] == order["id"]
            queued = await kitchen.next_event(names.branch_kitchen(shop.branch_id), "order.queued")
            assert queued["data"]["id"] == order["id"]


async def test_a_terminal_that_drops_mid_charge_finds_its_payment_and_reports_later(shop: Shop) -> None:
    """A terminal reconnecting after the request finds the pending payment in its snapshot; its result counts."""
    async with live_server(shop.services) as live, asyncio.timeout(30):
        async with DeviceClient(live.ws, shop.kiosk.token) as kiosk:
            terminal = DeviceClient(live.ws, shop.terminal.token)
            await terminal.connect()
            order = await shop.placed_order()
            payment = await kiosk.command("payment.start", {"order_id": order["id"]})
            await terminal.next_event(names.device(shop.terminal.id), "payment.requested")
            await terminal.close()

            async with DeviceClient(live.ws, shop.terminal.token) as back:
                snapshot = await back.next_frame(TIMEOUT_S)
                assert (snapshot["type"], snapshot["channel"]) == ("snapshot", names.device(shop.terminal.id))
                assert [p["id"] for p in snapshot["data"]["payments"]] == [payment["id"]]
                await back.command("payment.result", {"payment_id": payment["id"], "status": "approved"})
            paid = await kiosk.next_event(names.device(shop.kiosk.id), "order.paid")
            assert paid["data"]["status"] == "paid"


async def test_a_terminal_that_resumes_gets_the_request_it_missed(shop: Shop) -> None:
    """A terminal away while the charge is asked resumes its channel and receives payment.requested then."""
    async with live_server(shop.services) as live, asyncio.timeout(30):
        async with DeviceClient(live.ws, shop.kiosk.token) as kiosk:
            terminal = DeviceClient(live.ws, shop.terminal.token)
            await terminal.connect()
            await terminal.next_frame(TIMEOUT_S)  # its device snapshot
            position = terminal.resume_state()
            # Offline terminals are refused, so the request is made while it is still connected but not reading.
            order = await shop.placed_order()
            payment = await kiosk.command("payment.start", {"order_id": order["id"]})
            await terminal.close()
            async with DeviceClient(live.ws, shop.terminal.token, resume=position) as back:
                missed = await back.next_event(names.device(shop.terminal.id), "payment.requested")
                assert missed["data"]["id"] == payment["id"]
                assert back.welcome["channels"][names.device(shop.terminal.id)]["resumed"] is True


async def test_a_terminal_is_online_by_the_time_it_has_its_welcome(shop: Shop, monkeypatch: pytest.MonkeyPatch) -> None:
    """A kiosk may start a payment the moment its terminal is welcomed, even when presence is slow to answer."""
    presence = shop.services.presence
    registered = presence.connected

    async def slow_connected(device_id: int, branch_id: int, connection_id: str) -> None:
        await asyncio.sleep(0.3)
        await registered(device_id, branch_id, connection_id)

    monkeypatch.setattr(presence, "connected", slow_connected)
    order = await shop.placed_order()
    async with live_server(shop.services) as live, asyncio.timeout(30):
        async with DeviceClient(live.ws, shop.terminal.token):
            assert await presence.is_online(shop.terminal.id)
            payment = await shop.send(shop.kiosk, "payment.start", {"order_id": order["id"]})
            assert payment["terminal_id"] == shop.terminal.id
