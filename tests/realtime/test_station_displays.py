"""A kitchen station's display over a real socket: its channel on hello, its tickets, its bumps, and a new station
making it say hello again; every frame held to the AsyncAPI document."""

from __future__ import annotations

import httpx

from channels import frames, names
from channels.client import DeviceClient
from server.api.asyncapi import asyncapi_document
from server.settings import Settings
from tests.api.asyncapi_helpers import COMMANDS, _Frames
from tests.commands.test_stations import stations
from tests.live import live_server
from tests.shop import Shop
from tests.world import World


async def test_a_station_display_gets_its_tickets_bumps_them_and_is_moved_to_another_station(
    shop: Shop, world: World
) -> None:
    kitchen = await stations(shop)
    check = _Frames(asyncapi_document(Settings(_env_file=None), COMMANDS))
    grill, menu = names.branch_station(shop.branch_id, "grill"), names.branch_menu(shop.branch_id)
    async with live_server(shop.services) as live, DeviceClient(live.ws, kitchen.displays["grill"].token) as display:
        check.check("welcome", {"type": "welcome", "data": display.welcome})
        assert display.welcome["principal"]["station"] == "grill"
        assert set(display.welcome["channels"]) == {grill, menu}
        for _ in range(2):
            check.frame(await display.next_frame())  # the two snapshots

        await shop.paid_order([{"item_id": shop.cola, "qty": 1}])  # the drinks station's alone: not the grill's
        order = await shop.paid_order([{"item_id": shop.burger, "qty": 1}, {"item_id": shop.cola, "qty": 1}])
        queued = await display.next_event(grill, "order.queued")
        check.frame(queued)
        assert (queued["data"]["id"], [line["name"] for line in queued["data"]["lines"]]) == (order["id"], ["Burger"])

        reply = await display.request("station.bump", {"order_id": order["id"]})
        check.frame(reply, "station.bump")
        for event in ("order.preparing", "station.bumped"):
            frame = await display.next_event(grill, event)
            check.frame(frame)
            assert frame["data"]["bumped_at"] is not None
        assert reply["data"]["stations"][1] == {"station": "drinks", "is_expo": False, "bumped_at": None}

        # Moved to the drinks station: closed with 1001, it says hello again for its new channel.
        async with httpx.AsyncClient(base_url=live.http, headers=world.admin.headers) as http:
            url = f"/api/v1/devices/{kitchen.displays['grill'].id}"
            moved = await http.patch(url, json={"station_id": kitchen.ids["drinks"]})
            assert moved.status_code == 200, moved.text
        await display.closed.wait()
        assert display.close_code == frames.GOING_AWAY
        async with DeviceClient(live.ws, kitchen.displays["grill"].token) as again:
            assert again.welcome["principal"]["station"] == "drinks"
            assert names.branch_station(shop.branch_id, "drinks") in again.welcome["channels"]
