"""The order board in Chromium over the demo: a paid order's number shows under preparing, then under ready,
highlighted for a few seconds, and leaves the board when the order is collected."""

from __future__ import annotations

import re

from playwright.async_api import Page, expect

from channels.client import DeviceClient
from persistence.enums import DeviceKind
from server.demo import DemoResult
from tests.browser.conftest import screenshot
from tests.browser.floor import Orders, enrol_link, staff_token
from tests.flows.test_demo_walk_through import token
from tests.live import Live


async def test_the_board_shows_a_number_preparing_then_ready_highlighted(
    page: Page, live: Live, demo: DemoResult
) -> None:
    prefix = live.services.settings.API_V1_STR
    async with (
        DeviceClient(live.ws, token(live.services, demo, DeviceKind.KIOSK)) as kiosk,
        DeviceClient(live.ws, await staff_token(live.http, prefix, demo)) as staff,
        DeviceClient(live.ws, token(live.services, demo, DeviceKind.KITCHEN_DISPLAY)) as kitchen,
    ):
        orders = Orders(kiosk, staff)
        # One order ready before the board starts: on its first snapshot it is ready, but not news.
        earlier = await orders.paid({"item": "Cola"})
        await kitchen.command("order.start", {"order_id": earlier["id"]})
        await kitchen.command("order.ready", {"order_id": earlier["id"]})

        path, fragment = await enrol_link(live, demo, DeviceKind.ORDER_BOARD)
        await page.goto(f"{path}?highlight=3{fragment}")
        await expect(page.locator("#ready-title")).to_have_text("Abholbereit")
        number = page.locator('#ready .number[data-order="{}"]'.format(earlier["id"]))
        await expect(number).to_have_text(str(earlier["number"]))
        await expect(number).not_to_have_class(re.compile(r"\bfresh\b"))

        order = await orders.paid({"item": "Cheeseburger"}, {"item": "Fries"})
        preparing = page.locator(f'#preparing .number[data-order="{order["id"]}"]')
        await expect(preparing).to_have_text(str(order["number"]))
        await kitchen.command("order.start", {"order_id": order["id"]})
        await expect(preparing).to_be_visible()
        await kitchen.command("order.ready", {"order_id": order["id"]})
        ready = page.locator(f'#ready .number[data-order="{order["id"]}"]')
        await expect(ready).to_have_class(re.compile(r"\bfresh\b"))
        await expect(preparing).to_have_count(0)
        await screenshot(page, "board")
        # The highlight fades after its few seconds; collected, the number leaves the board.
        await expect(ready).not_to_have_class(re.compile(r"\bfresh\b"), timeout=6000)
        await kitchen.command("order.complete", {"order_id": order["id"]})
        await expect(ready).to_have_count(0)
