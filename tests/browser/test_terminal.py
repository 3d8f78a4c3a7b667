"""The virtual payment terminal: enrolled by its one-step link, it shows the charge the demo kiosk asks for, and
approving it pays the order."""

from __future__ import annotations

import asyncio
import re

from playwright.async_api import Page, expect

from channels import names
from channels.client import DeviceClient
from persistence.base import utcnow
from persistence.enums import DeviceKind
from persistence.tables import Device
from server.auth.enrolment import issue_link
from server.demo import DemoResult
from tests.browser.conftest import screenshot
from tests.flows.test_demo_walk_through import menu_item, token
from tests.live import Live


async def enrol_link(live: Live, device_id: int, app: str) -> str:
    """The one-step enrolment link of a device, as `enrol-links` prints it."""
    async with live.services.db.session() as session:
        device = await session.get(Device, device_id)
        assert device is not None
        issued = await issue_link(session, device, utcnow())
    return f"/apps/{app}/#enrol={issued.token}"


async def test_the_terminal_enrols_by_link_shows_the_kiosks_charge_and_approves_it(
    page: Page, live: Live, demo: DemoResult
) -> None:
    terminal = next(device for device in demo.devices if device.kind == DeviceKind.PAYMENT_TERMINAL)
    await page.goto(await enrol_link(live, terminal.id, "terminal"))
    await expect(page.get_by_test_id("idle")).to_be_visible()
    await expect(page.get_by_test_id("status")).to_be_hidden()
    assert "enrol=" not in page.url
    stored = await page.evaluate("localStorage.getItem('kiosk-device:terminal')")
    assert f'"device_id":{terminal.id}' in stored

    async with asyncio.timeout(30), DeviceClient(live.ws, token(live.services, demo, DeviceKind.KIOSK)) as kiosk:
        kiosk_channel = names.device(kiosk.welcome["principal"]["id"])
        drink = menu_item(await kiosk.command("menu.get", {"locale": "en"}), "Still Water")
        cart = await kiosk.command("cart.create", {"service_mode": "takeaway"})
        cart = await kiosk.command("cart.add", {"cart_id": cart["id"], "item_id": drink["id"], "qty": 2})
        order = await kiosk.command("order.place", {"cart_id": cart["id"], "expected_total": cart["total"]})
        payment = await kiosk.command("payment.start", {"order_id": order["id"]})

        amount = page.get_by_test_id("amount")
        await expect(amount).to_have_text(re.compile(rf"{order['total'] // 100},{order['total'] % 100:02d}\s*€"))
        await expect(page.get_by_test_id("charge-order")).to_contain_text(str(order["id"]))
        await screenshot(page, "terminal-charge")

        await page.get_by_test_id("approve").click()
        await expect(page.get_by_test_id("charge-state")).to_have_attribute("data-state", "approved")
        approved = await kiosk.next_event(kiosk_channel, "payment.approved")
        assert approved["data"]["id"] == payment["id"]
        assert approved["data"]["provider_ref"] == f"VT-{terminal.id}-{payment['id']}"
        paid = await kiosk.next_event(kiosk_channel, "order.paid")
        assert paid["data"]["id"] == order["id"]
