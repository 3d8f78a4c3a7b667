"""Orders for the kitchen display's and the order board's browser tests, made through the device protocol alone: a
kiosk places them over a real socket and a member of staff marks them paid in cash (`order.mark_paid`)."""

from __future__ import annotations

from typing import Any

import httpx

from channels.client import DeviceClient
from persistence.base import utcnow
from persistence.enums import DeviceKind
from persistence.tables import Device
from server.auth.enrolment import APP_OF_KIND, issue_link
from server.demo import DemoResult
from tests.flows.test_demo_walk_through import menu_item
from tests.live import Live


async def enrol_link(live: Live, demo: DemoResult, kind: DeviceKind, station: str | None = None) -> tuple[str, str]:
    """The one-step enrolment link of the demo's device of this kind (and station): its path and its fragment."""
    wanted = next(d for d in demo.devices if d.kind == kind and d.station == station)
    async with live.services.db.session() as session:
        device = await session.get(Device, wanted.id)
        assert device is not None
        issued = await issue_link(session, device, utcnow())
    return f"/apps/{APP_OF_KIND[kind]}/", f"#enrol={issued.token}"


async def staff_token(http: str, prefix: str, demo: DemoResult) -> str:
    """The demo admin's access token, by REST login."""
    async with httpx.AsyncClient(base_url=http) as client:
        answer = await client.post(
            f"{prefix}/auth/login", json={"username": demo.admin_username, "password": demo.admin_password}
        )
    answer.raise_for_status()
    token: str = answer.json()["access_token"]
    return token


class Orders:
    """A kiosk that places orders of the demo's menu (in English) and a member of staff who marks them paid."""

    def __init__(self, kiosk: DeviceClient, staff: DeviceClient) -> None:
        self.kiosk = kiosk
        self.staff = staff
        self.menu: dict[str, Any] = {}

    async def paid(self, *lines: dict[str, Any]) -> dict[str, Any]:
        """Place an order of `lines` and mark it paid; the paid order.

        Each line: `item` (an English name), optionally `qty`, `note`, `options` (choice names) and, for a combo,
        `components` ({slot name: item name}, each with its default options).
        """
        if not self.menu:
            self.menu = await self.kiosk.command("menu.get", {"locale": "en"})
        cart = await self.kiosk.command("cart.create", {"service_mode": "takeaway"})
        await self.kiosk.command("cart.set_locale", {"cart_id": cart["id"], "locale": "en"})
        for line in lines:
            item = menu_item(self.menu, line["item"])
            data: dict[str, Any] = {"cart_id": cart["id"], "item_id": item["id"], "qty": line.get("qty", 1)}
            if "note" in line:
                data["note"] = line["note"]
            if "options" in line:
                choices = [c for group in item["option_groups"] for c in group["choices"]]
                data["options"] = [c["id"] for c in choices if c["name"] in line["options"]]
            if "components" in line:
                data["components"] = [
                    {
                        "slot_id": slot["id"],
                        "item_id": next(
                            c["item_id"] for c in slot["choices"] if c["name"] == line["components"][slot["name"]]
                        ),
                    }
                    for slot in item["combo_slots"]
                ]
            await self.kiosk.command("cart.add", data)
        order = await self.kiosk.command("order.place", {"cart_id": cart["id"]})
        paid: dict[str, Any] = await self.staff.command("order.mark_paid", {"order_id": order["id"]})
        return paid
