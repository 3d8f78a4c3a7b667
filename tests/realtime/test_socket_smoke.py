"""End to end through a real server: hello, welcome, snapshots, a command, its event."""

from __future__ import annotations

from channels.client import DeviceClient
from persistence.enums import DeviceKind
from server.services import Services
from tests.live import add_device, live_server
from tests.rows import add_item
from tests.world import World


async def test_kiosk_hears_an_item_86d_by_staff(services: Services, world: World) -> None:
    """A staff 86 over the socket reaches the kiosk of the branch as `stock.changed`."""
    item_id = await add_item(services.db, world.branch_a, stock=5)
    kiosk_id, kiosk_token = await add_device(services, world.branch_a, DeviceKind.KIOSK)
    staff_token = world.staff_a.headers["Authorization"].split()[1]
    async with live_server(services) as live:
        async with DeviceClient(live.ws, kiosk_token) as kiosk, DeviceClient(live.ws, staff_token) as staff:
            menu = f"branch:{world.branch_a}:menu"
            assert set(kiosk.welcome["channels"]) == {menu, f"device:{kiosk_id}"}
            assert (await kiosk.next_frame())["type"] == "snapshot"
            reply = await staff.command("item.set_available", {"item_id": item_id, "available": False})
            assert reply == {
                "branch_id": world.branch_a,
                "item_id": item_id,
                "available": False,
                "stock": 5,
                "orderable": False,
            }
            event = await kiosk.next_event(menu, "stock.changed")
            assert event["data"]["available"] is False
            assert event["seq"] == 1
