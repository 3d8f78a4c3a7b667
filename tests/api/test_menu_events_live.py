"""Menu events over a real server: a sold-out item leaves every kiosk of its branch at once, and
`menu.get` answers a kiosk exactly what its `branch:{b}:menu` snapshot showed.
"""

from __future__ import annotations

import httpx

from channels import names
from channels.client import DeviceClient
from persistence.enums import DeviceKind
from server.services import Services
from tests.api.menu_event_helpers import ITEMS, TIMEOUT_S, Catalogue, stock_url
from tests.live import add_device, live_server
from tests.world import World


async def test_a_sold_out_item_disappears_from_every_kiosk_of_its_branch_at_once(
    services: Services, world: World, catalogue: Catalogue
) -> None:
    """Both kiosks of branch a hear the stock running out; branch b's kiosk hears only its own menu's changes."""
    tokens = [
        (await add_device(services, branch_id, DeviceKind.KIOSK))[1]
        for branch_id in (world.branch_a, world.branch_a, world.branch_b)
    ]
    menu_a, menu_b = names.branch_menu(world.branch_a), names.branch_menu(world.branch_b)
    async with (
        live_server(services) as live,
        DeviceClient(live.ws, tokens[0]) as kiosk_a1,
        DeviceClient(live.ws, tokens[1]) as kiosk_a2,
        DeviceClient(live.ws, tokens[2]) as kiosk_b,
        httpx.AsyncClient(base_url=live.http, timeout=TIMEOUT_S) as http,
    ):
        body = {"branch_id": world.branch_a, "mode": "set", "quantity": 0}
        response = await http.post(stock_url(catalogue.burger), json=body, headers=world.staff_a.headers)
        assert response.status_code == 200, response.text
        for kiosk in (kiosk_a1, kiosk_a2):
            event = await kiosk.next_event(menu_a, "stock.changed", timeout=TIMEOUT_S)
            assert (event["data"]["item_id"], event["data"]["orderable"]) == (catalogue.burger, False)
        response = await http.patch(f"{ITEMS}/{catalogue.burger}", json={"price": 990}, headers=world.admin.headers)
        assert response.status_code == 200, response.text
        first_on_b = await kiosk_b.next_event(menu_b, timeout=TIMEOUT_S)
        assert (first_on_b["seq"], first_on_b["event"]) == (1, "menu.item_updated")
        assert (first_on_b["data"]["price"], first_on_b["data"]["orderable"]) == (990, True)
        on_a = await kiosk_a1.next_event(menu_a, timeout=TIMEOUT_S)
        assert (on_a["seq"], on_a["event"], on_a["data"]["orderable"]) == (2, "menu.item_updated", False)


async def test_menu_get_answers_what_the_menu_snapshot_shows(
    services: Services, world: World, catalogue: Catalogue
) -> None:
    """A kiosk's `menu.get` reply is its menu snapshot's data; a terminal is refused, an admin must name a branch."""
    _, kiosk_token = await add_device(services, world.branch_a, DeviceKind.KIOSK)
    _, kitchen_token = await add_device(services, world.branch_a, DeviceKind.KITCHEN_DISPLAY)
    _, terminal_token = await add_device(services, world.branch_a, DeviceKind.PAYMENT_TERMINAL)
    admin_token = world.admin.headers["Authorization"].split()[1]
    menu_a = names.branch_menu(world.branch_a)
    async with live_server(services) as live, DeviceClient(live.ws, kiosk_token) as kiosk:
        snapshot = await kiosk.next_frame(timeout=TIMEOUT_S)
        assert (snapshot["type"], snapshot["channel"]) == ("snapshot", menu_a)
        assert [item["id"] for item in snapshot["data"]["categories"][0]["items"]] == [catalogue.burger, catalogue.soup]
        assert await kiosk.command("menu.get", {}, timeout=TIMEOUT_S) == snapshot["data"]
        async with DeviceClient(live.ws, kitchen_token) as kitchen:
            assert await kitchen.command("menu.get", {}, timeout=TIMEOUT_S) == snapshot["data"]
        async with DeviceClient(live.ws, terminal_token) as terminal:
            refused = await terminal.request("menu.get", {}, timeout=TIMEOUT_S)
            assert (refused["ok"], refused["error"]["code"]) == (False, "forbidden")
        async with DeviceClient(live.ws, admin_token) as admin:
            refused = await admin.request("menu.get", {}, timeout=TIMEOUT_S)
            assert (refused["ok"], refused["error"]["code"]) == (False, "invalid")
            named = await admin.command("menu.get", {"branch_id": world.branch_a}, timeout=TIMEOUT_S)
            assert named == snapshot["data"]
