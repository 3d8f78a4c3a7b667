"""The ops page in Chromium over the demo: the admin logs in and sees the branch's devices go online and offline, an
order move from awaiting payment to paid, switches an item off (86) for the kiosks, refunds a payment that needs it,
and sets a fresh screen up by its pairing code."""

from __future__ import annotations

import re

import httpx
from playwright.async_api import Browser, ConsoleMessage, Page, expect

from channels.client import DeviceClient
from persistence.enums import DeviceKind
from server.demo import DemoResult
from tests.browser.conftest import WAIT_MS, screenshot
from tests.browser.floor import staff_token
from tests.flows.test_demo_walk_through import menu_item, token
from tests.live import Live


async def log_in(page: Page, demo: DemoResult, username: str = "", password: str = "", role: str = "admin") -> None:
    """Open the ops page and log in, as the demo's admin unless another user is named."""
    await page.goto("/apps/ops/?lang=en")
    await page.get_by_test_id("username").fill(username or demo.admin_username)
    await page.get_by_test_id("password").fill(password or demo.admin_password or "")
    await page.get_by_test_id("login").click()
    await expect(page.get_by_test_id("who")).to_contain_text(f"role {role}")
    await expect(page.get_by_test_id("status")).to_be_hidden()


def demo_device(demo: DemoResult, kind: DeviceKind) -> int:
    return next(d.id for d in demo.devices if d.kind == kind and d.station is None)


async def test_devices_orders_and_the_86_switch_follow_the_branch_live(
    page: Page, live: Live, demo: DemoResult
) -> None:
    await log_in(page, demo)
    kiosk_row = page.get_by_test_id(f"device-{demo_device(demo, DeviceKind.KIOSK)}")
    await expect(kiosk_row).to_have_attribute("data-online", "false")
    await expect(page.get_by_test_id("devices").locator("li")).to_have_count(len(demo.devices))

    prefix = live.services.settings.API_V1_STR
    async with (
        DeviceClient(live.ws, await staff_token(live.http, prefix, demo)) as staff,
        DeviceClient(live.ws, token(live.services, demo, DeviceKind.KIOSK)) as kiosk,
    ):
        await expect(kiosk_row).to_have_attribute("data-online", "true")
        await expect(kiosk_row.get_by_test_id("presence")).to_have_text("online")

        menu = await kiosk.command("menu.get", {"locale": "en"})
        cart = await kiosk.command("cart.create", {})
        await kiosk.command("cart.add", {"cart_id": cart["id"], "item_id": menu_item(menu, "Fries")["id"], "qty": 2})
        order = await kiosk.command("order.place", {"cart_id": cart["id"]})
        awaiting, paid = page.get_by_test_id("orders-awaiting_payment"), page.get_by_test_id("orders-paid")
        card = awaiting.get_by_test_id(f"order-{order['id']}")
        await expect(card).to_be_visible()
        await expect(card).to_contain_text(f"#{order['number']}")
        # Staff read the lines in the kitchen's language (German in the demo).
        await expect(card).to_contain_text("2× Pommes")
        await staff.command("order.mark_paid", {"order_id": order["id"]})
        await expect(paid.get_by_test_id(f"order-{order['id']}")).to_have_attribute("data-status", "paid")
        await expect(awaiting.locator("li")).to_have_count(0)

        cola = menu_item(menu, "Cola")
        row = page.get_by_test_id(f"item-{cola['id']}")
        await expect(row).to_have_attribute("data-available", "true")
        await row.get_by_test_id("item-toggle").click()
        await expect(row).to_have_attribute("data-available", "false")
        await expect(row.get_by_test_id("item-toggle")).to_have_text("86'd – off")
        menu_channel = f"branch:{demo.branch_id}:menu"
        while (heard := await kiosk.next_event(menu_channel, "stock.changed"))["data"]["item_id"] != cola["id"]:
            pass  # the order's stock of fries
        assert (heard["data"]["available"], heard["data"]["orderable"]) == (False, False)
        now = await staff.command("menu.get", {"branch_id": demo.branch_id, "locale": "en"})
        assert menu_item(now, "Cola")["available"] is False
        await page.set_viewport_size({"width": 1280, "height": 960})
        await page.evaluate("window.scrollTo(0, 0)")
        await screenshot(page, "ops")

    await expect(kiosk_row).to_have_attribute("data-online", "false")


async def test_a_payment_that_needs_a_refund_is_refunded_and_leaves_the_list(
    page: Page, live: Live, demo: DemoResult
) -> None:
    await log_in(page, demo)
    await expect(page.get_by_test_id("refunds")).to_have_attribute("data-loaded-branch", str(demo.branch_id))
    await expect(page.get_by_test_id("refunds").locator("li")).to_have_count(0)
    async with (
        DeviceClient(live.ws, token(live.services, demo, DeviceKind.KIOSK)) as kiosk,
        DeviceClient(live.ws, token(live.services, demo, DeviceKind.PAYMENT_TERMINAL)) as terminal,
    ):
        # Declined, paid by a second payment, then approved after all: the first payment took money it must give back.
        menu = await kiosk.command("menu.get", {"locale": "en"})
        cart = await kiosk.command("cart.create", {})
        await kiosk.command("cart.add", {"cart_id": cart["id"], "item_id": menu_item(menu, "Cola")["id"]})
        order = await kiosk.command("order.place", {"cart_id": cart["id"]})
        first = await kiosk.command("payment.start", {"order_id": order["id"]})
        await terminal.command("payment.result", {"payment_id": first["id"], "status": "declined"})
        second = await kiosk.command("payment.start", {"order_id": order["id"]})
        await terminal.command("payment.result", {"payment_id": second["id"], "status": "approved"})
        late = await terminal.command("payment.result", {"payment_id": first["id"], "status": "approved"})
        assert late["status"] == "needs_refund"

    row = page.get_by_test_id(f"refund-{first['id']}")
    await expect(row).to_contain_text(f"#{order['id']}")
    await row.get_by_test_id("refund").click()
    await expect(row).to_have_count(0)
    await expect(page.get_by_test_id("error")).to_contain_text(f"#{first['id']}")
    async with httpx.AsyncClient(base_url=live.http) as http:
        headers = {"Authorization": f"Bearer {await staff_token(live.http, live.services.settings.API_V1_STR, demo)}"}
        payment = (await http.get(f"/api/v1/payments/{first['id']}", headers=headers)).json()
    assert payment["status"] == "refunded"


async def test_a_fresh_screen_is_set_up_by_claiming_its_code(
    page: Page, browser: Browser, live: Live, demo: DemoResult
) -> None:
    await log_in(page, demo)
    screen_context = await browser.new_context(base_url=live.http, locale="de-DE")
    screen_context.set_default_timeout(WAIT_MS)
    try:
        screen = await screen_context.new_page()
        await screen.goto("/apps/terminal/")
        code_box = screen.get_by_test_id("pairing-code")
        await expect(code_box).to_have_text(re.compile(r"^\d{6}$"))
        code = await code_box.inner_text()

        await page.get_by_test_id("claim-code").fill(code)
        await page.get_by_test_id("claim-kind").select_option("payment_terminal")
        await page.get_by_test_id("claim-name").fill("Terminal 2")
        await page.get_by_test_id("claim-submit").click()
        result = page.get_by_test_id("claim-result")
        await expect(result).to_have_attribute("data-state", "ok")
        device_id = await result.get_attribute("data-device")
        assert device_id is not None
        await expect(result).to_contain_text(f"#{device_id}")
        await expect(screen.get_by_test_id("idle")).to_be_visible()
        await expect(screen.get_by_test_id("device-name")).to_have_text(f"#{device_id}")
        # The new terminal is on the list, online once it says hello.
        await expect(page.get_by_test_id(f"device-{device_id}")).to_have_attribute("data-online", "true")

        # The same code again, on a second ops page: refused, with its stable code and reason. The browser logs the
        # 409 answer itself, which is the only thing that second page may report.
        other = await screen_context.new_page()
        problems: list[str] = []

        def console(message: ConsoleMessage) -> None:
            if message.type == "error" and "status of 409" not in message.text:
                problems.append(message.text)

        other.on("console", console)
        other.on("pageerror", lambda error: problems.append(str(error)))
        await log_in(other, demo)
        await other.get_by_test_id("claim-code").fill(code)
        await other.get_by_test_id("claim-name").fill("Terminal 3")
        await other.get_by_test_id("claim-submit").click()
        refused = other.get_by_test_id("claim-result")
        await expect(refused).to_have_attribute("data-state", "error")
        await expect(refused).to_have_attribute("data-code", "conflict")
        await expect(refused).to_contain_text("conflict: ")
        await expect(refused).to_contain_text("(code claimed already)")
        assert problems == []
    finally:
        await screen_context.close()


async def test_a_member_of_staff_sees_what_the_role_allows(page: Page, live: Live, demo: DemoResult) -> None:
    """Staff switch items off but neither refund nor set devices up: those are shown disabled, naming the permission."""
    async with httpx.AsyncClient(base_url=live.http) as http:
        headers = {"Authorization": f"Bearer {await staff_token(live.http, live.services.settings.API_V1_STR, demo)}"}
        roles = (await http.get("/api/v1/roles", headers=headers)).json()["items"]
        staff_role = next(role["id"] for role in roles if role["name"] == "staff")
        user = {"username": "sam", "password": "counter-2026", "role_id": staff_role, "branch_id": demo.branch_id}
        created = await http.post("/api/v1/users", json=user, headers=headers)
        assert created.status_code == 201, created.text

    await log_in(page, demo, "sam", "counter-2026", role="staff")
    await expect(page.get_by_test_id("branch")).to_be_hidden()
    await expect(page.get_by_test_id("branch-name")).to_have_text(demo.branch.name)
    await expect(page.get_by_test_id("devices").locator("li")).to_have_count(len(demo.devices))
    await expect(page.get_by_test_id("claim-note")).to_have_text("Your role lacks the permission devices:write.")
    await expect(page.get_by_test_id("claim-submit")).to_be_disabled()
    await expect(page.get_by_test_id("refunds-note")).to_contain_text("payments:refund")
    toggles = page.get_by_test_id("items").get_by_test_id("item-toggle")
    await expect(toggles.first).to_be_enabled()


async def test_an_admin_switches_between_branches(page: Page, live: Live, demo: DemoResult) -> None:
    """Each branch shows its own devices and menu; coming back to a branch starts again from its snapshots."""
    async with httpx.AsyncClient(base_url=live.http) as http:
        headers = {"Authorization": f"Bearer {await staff_token(live.http, live.services.settings.API_V1_STR, demo)}"}
        branch = {"name": "Second Street", "currency": "EUR", "timezone": "Europe/Berlin"}
        created = await http.post("/api/v1/branches", json=branch, headers=headers)
        assert created.status_code == 201, created.text
        second = created.json()["id"]

    await log_in(page, demo)
    devices, items = page.get_by_test_id("devices"), page.get_by_test_id("items").locator("li")
    await expect(devices.locator("li[data-testid^=device-]")).to_have_count(len(demo.devices))
    await expect(items).to_have_count(demo.items)
    await page.get_by_test_id("branch").select_option(str(second))
    await expect(devices).to_have_attribute("data-loaded-branch", str(second))
    await expect(page.get_by_test_id("items")).to_have_attribute("data-loaded-branch", str(second))
    await expect(devices).to_have_text("No devices")
    await expect(items).to_have_count(0)
    await expect(page.get_by_test_id("claim-branch")).to_have_value(str(second))
    await page.get_by_test_id("branch").select_option(str(demo.branch_id))
    await expect(devices.locator("li[data-testid^=device-]")).to_have_count(len(demo.devices))
    await expect(items).to_have_count(demo.items)
