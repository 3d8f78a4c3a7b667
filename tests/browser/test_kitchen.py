"""The kitchen display in Chromium over the demo: the grill's display shows only the grill's part of a paid order
(a combo with only its grill components, a customer's note flagged) and bumps by tap and by the bump bar's keys; the
whole-kitchen display starts and readies orders by tap and narrows to a station with its filter."""

from __future__ import annotations

import re
from typing import Any

import httpx
from playwright.async_api import Page, expect
from sqlalchemy import select, update

from channels import names
from channels.client import DeviceClient
from persistence.enums import DeviceKind
from persistence.tables import Station
from server.demo import DemoResult
from tests.browser.conftest import screenshot
from tests.browser.floor import Orders, enrol_link, staff_token
from tests.flows.test_demo_walk_through import token
from tests.live import Live

# Counts the tones the page starts (the beep is two), without a sound card.
COUNT_TONES = """
window.tones = 0;
const create = AudioContext.prototype.createOscillator;
AudioContext.prototype.createOscillator = function () { window.tones += 1; return create.call(this); };
"""


async def open_display(page: Page, live: Live, demo: DemoResult, station: str | None, query: str = "") -> None:
    """Enrol the demo's display of `station` (None: the whole kitchen) by its link and wait until it is online."""
    path, fragment = await enrol_link(live, demo, DeviceKind.KITCHEN_DISPLAY, station)
    await page.set_viewport_size({"width": 1280, "height": 800})  # a landscape kitchen screen
    await page.add_init_script(COUNT_TONES)
    await page.goto(f"{path}?{query}{fragment}")
    await expect(page.locator("#display")).to_be_visible()
    await expect(page.locator("#status")).to_be_hidden()


def ticket(page: Page, order: dict[str, Any]) -> Any:
    return page.locator(f'.ticket[data-order="{order["id"]}"]')


async def test_the_grill_display_shows_its_part_and_bumps_by_tap_and_by_key(
    page: Page, live: Live, demo: DemoResult
) -> None:
    prefix = live.services.settings.API_V1_STR
    async with (
        DeviceClient(live.ws, token(live.services, demo, DeviceKind.KIOSK)) as kiosk,
        DeviceClient(live.ws, await staff_token(live.http, prefix, demo)) as staff,
    ):
        orders = Orders(kiosk, staff)
        # The display is titled with the station's name, which its channel's snapshot carries.
        async with live.services.db.session() as session:
            await session.execute(
                update(Station)
                .where(Station.branch_id == demo.branch_id, Station.code == "grill")
                .values(name="Grill & Burger")
            )
        await open_display(page, live, demo, "grill")
        await expect(page.locator("#title")).to_have_text("Grill & Burger")
        # The browser lets the page make a sound once it was touched.
        await page.locator("#title").click()
        await expect(page.locator("#sound-hint")).to_be_hidden()
        first = await orders.paid(
            {"item": "Cheeseburger", "options": ["Bacon"], "note": "no sesame, allergy"},
            {
                "item": "Breakfast Combo",
                "components": {"Main": "Breakfast Muffin", "Side": "Hash Brown", "Drink": "Cola"},
            },
            {"item": "Cola"},
        )
        card = ticket(page, first)
        await expect(card).to_be_visible()
        # A new ticket beeps.
        await page.wait_for_function("window.tones === 2")
        # Only the grill's lines, in the kitchen's German: the combo with its muffin and hash brown, no cola.
        await expect(card.locator(".line > .line-head .name")).to_have_text(["Cheeseburger", "Frühstücksmenü"])
        await expect(card.locator(".component .name")).to_have_text(["Frühstücksmuffin", "Rösti"])
        await expect(card.locator(".line.has-note .note")).to_contain_text("no sesame, allergy")
        await expect(card.locator(".option")).to_have_text(["+ Bacon"])
        await expect(card.locator(".waiting")).to_contain_text("drinks")

        # Bumped by tap: the grill's part is done, the order waits for the drinks station.
        await card.locator('button[data-action="bump"]').click()
        await expect(card).to_have_class(re.compile(r"\bdone\b"))
        # Recalled by key (1 selects it, U recalls) and bumped again by Enter.
        await page.keyboard.press("1")
        await expect(card).to_have_class(re.compile(r"\bselected\b"))
        await page.keyboard.press("u")
        await expect(card).not_to_have_class(re.compile(r"\bdone\b"))
        await expect(card.locator('button[data-action="bump"]')).to_be_visible()

        # A second order, all grill, comes in silently once muted (M); bumped by key it is ready for the branch.
        await page.keyboard.press("m")
        await expect(page.locator("#mute")).to_have_attribute("aria-pressed", "true")
        second = await orders.paid({"item": "Classic Burger", "qty": 2})
        await expect(ticket(page, second)).to_be_visible()
        assert await page.evaluate("window.tones") == 2
        await page.keyboard.press("2")
        await page.keyboard.press("b")
        kiosk_channel = names.device(kiosk.welcome["principal"]["id"])
        ready = await kiosk.next_event(kiosk_channel, "order.ready")
        assert ready["data"]["id"] == second["id"]
        await expect(ticket(page, second)).to_have_class(re.compile(r"\bdone\b"))


async def test_the_whole_kitchen_display_starts_and_readies_by_tap_and_filters_by_station(
    page: Page, live: Live, demo: DemoResult
) -> None:
    prefix = live.services.settings.API_V1_STR
    async with (
        DeviceClient(live.ws, token(live.services, demo, DeviceKind.KIOSK)) as kiosk,
        DeviceClient(live.ws, await staff_token(live.http, prefix, demo)) as staff,
    ):
        orders = Orders(kiosk, staff)
        # Amber after 3 s, red after 6 s.
        await open_display(page, live, demo, None, "warn=0.05&late=0.1")
        await expect(page.locator("#title")).to_have_text("Küche")
        first = await orders.paid({"item": "Cheeseburger", "note": "peanut allergy"}, {"item": "Fries"})
        second = await orders.paid(
            {"item": "Breakfast Combo", "components": {"Main": "Pancakes", "Side": "Hash Brown", "Drink": "Cola"}},
            {"item": "Cola", "options": ["Large"]},
        )
        third = await orders.paid({"item": "Classic Burger", "options": ["Extra patty"]})
        # Oldest first, every line of every station.
        await expect(page.locator(".ticket")).to_have_count(3)
        assert await page.locator(".ticket").evaluate_all("(nodes) => nodes.map((n) => Number(n.dataset.order))") == [
            first["id"],
            second["id"],
            third["id"],
        ]
        await expect(ticket(page, first).locator(".line > .line-head .name")).to_have_text(["Cheeseburger", "Pommes"])
        await expect(ticket(page, first)).to_have_class(re.compile(r"\bflagged\b"))

        # Start and ready by tap: the whole order moves, as the staff's orders channel hears.
        orders_channel = names.branch_orders(demo.branch_id)
        await staff.command("subscribe", {"channel": orders_channel})
        card = ticket(page, first)
        await card.locator('button[data-action="start"]').click()
        await expect(card).to_have_attribute("data-status", "preparing")
        assert (await staff.next_event(orders_channel, "order.preparing"))["data"]["id"] == first["id"]
        await card.locator('button[data-action="ready"]').click()
        await expect(card).to_have_attribute("data-status", "ready")
        assert (await staff.next_event(orders_channel, "order.ready"))["data"]["id"] == first["id"]
        # The waiting tickets' timers turn amber, then red; a ready one is done.
        await expect(ticket(page, third)).to_have_attribute("data-age", "warn")
        await expect(ticket(page, third)).to_have_attribute("data-age", "late", timeout=8000)
        await expect(card).to_have_attribute("data-age", "done")
        await screenshot(page, "kitchen")
        assert (await staff.command("order.complete", {"order_id": first["id"]}))["status"] == "completed"
        await expect(card).to_have_count(0)

        # The station filter narrows the tickets to a station's lines: the drinks of the combo and the cola.
        await page.locator("#filter").select_option("drinks")
        await expect(page.locator(".ticket")).to_have_count(1)
        await expect(ticket(page, second).locator(".line > .line-head .name")).to_have_text(["Frühstücksmenü", "Cola"])
        await expect(ticket(page, second).locator(".component .name")).to_have_text(["Cola"])
        await page.locator("#filter").select_option("")
        await expect(page.locator(".ticket")).to_have_count(2)


async def test_a_display_moved_to_another_station_reconnects_and_shows_that_stations_part(
    page: Page, live: Live, demo: DemoResult
) -> None:
    prefix = live.services.settings.API_V1_STR
    admin = await staff_token(live.http, prefix, demo)
    async with (
        DeviceClient(live.ws, token(live.services, demo, DeviceKind.KIOSK)) as kiosk,
        DeviceClient(live.ws, admin) as staff,
    ):
        orders = Orders(kiosk, staff)
        order = await orders.paid({"item": "Cheeseburger"}, {"item": "Lemonade"})
        await open_display(page, live, demo, "grill")
        await expect(ticket(page, order).locator(".line-head .name")).to_have_text(["Cheeseburger"])
        await page.evaluate(
            """() => { window.banners = [];
                new MutationObserver(() => window.banners.push(document.querySelector('#status').dataset.status))
                  .observe(document.querySelector('#status'), {attributes: true}); }"""
        )

        # The server closes the display's socket (1001, station changed); the shared client says hello again.
        grill = next(d for d in demo.devices if d.kind == DeviceKind.KITCHEN_DISPLAY and d.station == "grill")
        async with live.services.db.session() as session:
            drinks = await session.scalar(select(Station.id).where(Station.code == "drinks"))
        async with httpx.AsyncClient(base_url=live.http, headers={"Authorization": f"Bearer {admin}"}) as http:
            moved = await http.patch(f"{prefix}/devices/{grill.id}", json={"station_id": drinks})
        assert moved.status_code == 200, moved.text
        await expect(page.locator("#title")).to_have_text("Drinks")
        await expect(ticket(page, order).locator(".line-head .name")).to_have_text(["Limonade"])
        await expect(page.locator("#status")).to_be_hidden()
        # The offline banner showed while it was away.
        assert {"offline", "connecting"} & set(await page.evaluate("window.banners"))
