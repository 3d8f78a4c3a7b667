"""The whole restaurant in Chromium: four fresh screens enrol by pairing code, a customer orders a meal at the kiosk
by tapping, pays at the terminal, the kitchen bumps it and the board shows its number ready.

Only the admin's REST calls (claiming the codes, pairing the terminal with the kiosk) happen outside the pages, as
they would on the ops page or in an integrator's script.
"""

from __future__ import annotations

import re
from typing import Any

import httpx
import pytest
from playwright.async_api import Page, expect

from server.demo import DemoResult
from tests.browser.conftest import PageOpener, screenshot
from tests.conftest import BACKENDS
from tests.live import Live


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    """The whole restaurant runs on both backends, unlike the other browser tests."""
    return str(request.param)


# The kiosk is a portrait screen (1080×1920) at half size; the others landscape.
KIOSK_SIZE = {"width": 540, "height": 960}
SCREEN_SIZE = {"width": 1024, "height": 700}


async def enrol(page: Page, app: str, admin: httpx.AsyncClient, demo: DemoResult, **device: Any) -> int:
    """Open `app` on a fresh page, claim the code it shows as the admin would, wait until it is enrolled; its id."""
    await page.goto(f"/apps/{app}/")
    code_box = page.get_by_test_id("pairing-code")
    await expect(code_box).to_have_text(re.compile(r"^\d{6}$"))
    claim = await admin.post(
        f"/api/v1/pairing-codes/{await code_box.inner_text()}/claim", json={"branch_id": demo.branch_id, **device}
    )
    assert claim.status_code == 201, claim.text
    await expect(code_box).to_have_count(0)
    device_id: int = claim.json()["device"]["id"]
    return device_id


async def test_a_meal_ordered_at_the_kiosk_is_paid_at_the_terminal_bumped_and_shown_ready(
    open_page: PageOpener, live: Live, demo: DemoResult
) -> None:
    kiosk, terminal = await open_page(**KIOSK_SIZE), await open_page(**SCREEN_SIZE)
    kitchen, board = await open_page(**SCREEN_SIZE), await open_page(**SCREEN_SIZE)

    async with httpx.AsyncClient(base_url=live.http) as http:
        login = await http.post(
            "/api/v1/auth/login", json={"username": demo.admin_username, "password": demo.admin_password}
        )
        http.headers["Authorization"] = f"Bearer {login.json()['access_token']}"
        terminal_id = await enrol(terminal, "terminal", http, demo, kind="payment_terminal", name="Terminal 2")
        await enrol(kitchen, "kitchen", http, demo, kind="kitchen_display", name="Kitchen 2")
        await enrol(board, "board", http, demo, kind="order_board", name="Board 2")
        kiosk_id = await enrol(kiosk, "kiosk", http, demo, kind="kiosk", name="Kiosk 2")
        paired = await http.post(f"/api/v1/devices/{kiosk_id}/pair", json={"terminal_id": terminal_id})
        assert paired.status_code == 200, paired.text
    await expect(terminal.get_by_test_id("idle")).to_be_visible()
    await expect(kitchen.locator("#display")).to_be_visible()
    await expect(board.locator("#ready-title")).to_be_visible()

    # The customer switches to English, takes away, and taps a breakfast combo with its default components.
    await kiosk.get_by_test_id("start-language-en").click()
    await kiosk.get_by_test_id("mode-takeaway").click()
    await kiosk.locator('[data-testid^="category-"]', has_text="Breakfast").click()
    await kiosk.locator('[data-testid^="item-"][data-name="Breakfast Combo"]').click()
    await kiosk.get_by_test_id("dialog-add").click()
    await expect(kiosk.get_by_test_id("cart-line")).to_have_count(1)
    await expect(kiosk.get_by_test_id("cart-total")).to_contain_text("7.90")
    await screenshot(kiosk, "restaurant-kiosk")
    await kiosk.get_by_test_id("checkout").click()
    await expect(kiosk.get_by_test_id("pay-waiting")).to_be_visible()

    # The terminal shows the charge; the person at the till approves it.
    await expect(terminal.get_by_test_id("amount")).to_have_text(re.compile(r"7,90\s*€"))
    await screenshot(terminal, "restaurant-terminal")
    await terminal.get_by_test_id("approve").click()
    number = kiosk.get_by_test_id("order-number")
    await expect(number).to_have_text(re.compile(r"\d+"))
    shown = (await number.inner_text()).strip()
    await screenshot(kiosk, "restaurant-kiosk-paid")

    # The kitchen sees the ticket and moves it through; the board follows.
    card = kitchen.locator(".ticket")
    await expect(card).to_have_count(1)
    await expect(card.locator(".line-head .name")).to_have_text(["Frühstücksmenü"])
    await expect(board.locator("#preparing .number")).to_have_text([shown])
    await card.locator('button[data-action="start"]').click()
    await screenshot(kitchen, "restaurant-kitchen")
    await card.locator('button[data-action="ready"]').click()
    await expect(board.locator("#ready .number")).to_have_text([shown])
    await expect(board.locator("#preparing .number")).to_have_count(0)
    await screenshot(board, "restaurant-board")
