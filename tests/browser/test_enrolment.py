"""Enrolment by pairing code in the browser: a fresh screen shows a six-digit code, an admin claims it over REST, and
the screen goes on as the new device, with its credentials kept across a reload."""

from __future__ import annotations

import json
import re

import httpx
from playwright.async_api import Page, expect

from server.demo import DemoResult
from tests.browser.conftest import screenshot
from tests.live import Live


async def test_a_fresh_screen_shows_a_code_an_admin_claims_and_it_stays_enrolled(
    page: Page, live: Live, demo: DemoResult
) -> None:
    await page.goto("/apps/terminal/")
    code_box = page.get_by_test_id("pairing-code")
    await expect(code_box).to_have_text(re.compile(r"^\d{6}$"))
    await expect(page.locator(".enrol-countdown")).to_contain_text(re.compile(r"\d+:\d\d"))
    await expect(page.get_by_test_id("idle")).to_be_hidden()
    await screenshot(page, "enrolment-code")
    code = await code_box.inner_text()

    async with httpx.AsyncClient(base_url=live.http) as http:
        login = await http.post(
            "/api/v1/auth/login", json={"username": demo.admin_username, "password": demo.admin_password}
        )
        headers = {"Authorization": f"Bearer {login.json()['access_token']}"}
        claim = await http.post(
            f"/api/v1/pairing-codes/{code}/claim",
            json={"branch_id": demo.branch_id, "kind": "payment_terminal", "name": "Terminal 2"},
            headers=headers,
        )
        assert claim.status_code == 201, claim.text
        device_id = claim.json()["device"]["id"]

        await expect(page.get_by_test_id("idle")).to_be_visible()
        await expect(page.get_by_test_id("device-name")).to_have_text(f"#{device_id}")
        stored = json.loads(await page.evaluate("localStorage.getItem('kiosk-device:terminal')"))
        assert stored["device_id"] == device_id and len(stored["secret"]) >= 20

        devices = await http.get(f"/api/v1/devices/{device_id}", headers=headers)
        assert devices.json()["secret_version"] == 2  # the secret was made at pick-up, once

    await page.reload()
    await expect(page.get_by_test_id("idle")).to_be_visible()
    await expect(page.get_by_test_id("device-name")).to_have_text(f"#{device_id}")
    await expect(page.get_by_test_id("pairing-code")).to_have_count(0)
    assert json.loads(await page.evaluate("localStorage.getItem('kiosk-device:terminal')")) == stored
