"""The kiosk in Chromium over the demo at 08:00: enrolled by its link, a customer picks English and take away,
orders a breakfast combo and a burger with extras (the option groups' limits enforced), sees the total the server
priced, and pays at the paired terminal (a protocol client here) to get the order number; a declined payment can be
tried again; a changed price is explained before the customer confirms; an idle kiosk waits while the terminal
charges, then cancels the unpaid order and starts over; a sold-out item greys out live and is named for removal at
checkout; without its terminal the kiosk says so, and cancelling drops the order."""

from __future__ import annotations

import asyncio
import re
from typing import Any

import httpx
from playwright.async_api import Page, expect

from channels import names
from channels.client import DeviceClient
from persistence.enums import DeviceKind
from server.demo import DemoResult
from tests.browser.conftest import screenshot
from tests.browser.floor import enrol_link, staff_token
from tests.flows.test_demo_walk_through import menu_item, token
from tests.live import Live


def euros(minor: int) -> re.Pattern[str]:
    """The German or English way the kiosk shows an amount."""
    return re.compile(rf"{minor // 100}[,.]{minor % 100:02d}\s*€|€\s*{minor // 100}[,.]{minor % 100:02d}")


async def open_kiosk(page: Page, live: Live, demo: DemoResult, query: str = "") -> None:
    """Enrol the demo's kiosk by its link on a portrait screen (1080 × 1920 at half size) and wait for the start."""
    path, fragment = await enrol_link(live, demo, DeviceKind.KIOSK)
    await page.set_viewport_size({"width": 540, "height": 960})
    await page.goto(f"{path}{query}{fragment}")
    await expect(page.get_by_test_id("start-language-en")).to_be_visible()
    await expect(page.get_by_test_id("status")).to_be_hidden()


async def start_in_english(page: Page) -> None:
    await page.get_by_test_id("start-language-en").click()
    await page.get_by_test_id("mode-takeaway").click()
    await expect(page.get_by_test_id("screen-menu")).to_be_visible()


async def english_menu(live: Live, demo: DemoResult) -> dict[str, Any]:
    async with DeviceClient(live.ws, token(live.services, demo, DeviceKind.KIOSK)) as kiosk:
        return await kiosk.command("menu.get", {"locale": "en"})


def choice_id(item: dict[str, Any], name: str) -> int:
    return next(c["id"] for group in item["option_groups"] for c in group["choices"] if c["name"] == name)


async def add_water(page: Page, menu: dict[str, Any]) -> None:
    drinks = next(category for category in menu["categories"] if category["name"] == "Drinks")
    await page.get_by_test_id(f"category-{drinks['id']}").click()
    await page.get_by_test_id(f"item-{menu_item(menu, 'Still Water')['id']}").click()
    await page.get_by_test_id("dialog-add").click()
    await expect(page.get_by_test_id("cart-line")).to_have_count(1)


async def water_in_cart(page: Page, live: Live, demo: DemoResult, query: str) -> dict[str, Any]:
    """Open the kiosk, start in English to take away with a still water in the cart; the English menu."""
    menu = await english_menu(live, demo)
    await open_kiosk(page, live, demo, query)
    await start_in_english(page)
    await add_water(page, menu)
    return menu


async def watch_orders(staff: DeviceClient, demo: DemoResult) -> str:
    """Subscribe `staff` to the demo branch's orders; the channel."""
    channel = names.branch_orders(demo.branch_id)
    await staff.command("subscribe", {"channel": channel})
    return channel


class Terminal:
    """The demo's payment terminal as a protocol client: it answers each charge request with the next result."""

    def __init__(self, client: DeviceClient) -> None:
        self.client = client
        self.channel = names.device(client.welcome["principal"]["id"])

    async def answer(self, result: str) -> dict[str, Any]:
        requested = (await self.client.next_event(self.channel, "payment.requested"))["data"]
        data = {"payment_id": requested["id"], "status": result}
        if result == "approved":
            await self.client.command("payment.progress", {"payment_id": requested["id"], "status": "processing"})
            data["provider_ref"] = f"TEST-{requested['id']}"
        await self.client.command("payment.result", data)
        return requested


async def test_a_customer_orders_a_combo_and_a_burger_and_pays_at_the_terminal(
    page: Page, live: Live, demo: DemoResult
) -> None:
    menu = await english_menu(live, demo)
    combo, burger, fries = (menu_item(menu, name) for name in ("Breakfast Combo", "Cheeseburger", "Fries"))
    await open_kiosk(page, live, demo)
    # German first (the browser's), with the branch's languages to choose from.
    await expect(page.get_by_test_id("mode-takeaway")).to_have_text("Mitnehmen")
    await screenshot(page, "kiosk-start")
    await page.get_by_test_id("start-language-en").click()
    await expect(page.get_by_test_id("start-language-en")).to_have_attribute("aria-pressed", "true")
    await start_in_english(page)
    breakfast = next(category for category in menu["categories"] if category["name"] == "Breakfast")
    await page.get_by_test_id(f"category-{breakfast['id']}").click()
    card = page.get_by_test_id(f"item-{combo['id']}")
    await expect(card).to_have_attribute("data-name", "Breakfast Combo")
    await expect(card).to_contain_text(euros(790))

    # The combo: pancakes (+0.70) and a lemonade (+0.30) in large (+1.10); the drink's size is required.
    await card.click()
    dialog = page.get_by_test_id("item-dialog")
    main, drink = combo["combo_slots"][0], combo["combo_slots"][2]
    pancakes = next(c for c in main["choices"] if c["name"] == "Pancakes")
    await expect(dialog.get_by_test_id(f"slot-{main['id']}")).to_contain_text(euros(70))
    await dialog.get_by_test_id(f"slot-choice-{pancakes['item_id']}").click()
    lemonade = next(c for c in drink["choices"] if c["name"] == "Lemonade")
    await dialog.get_by_test_id(f"slot-choice-{lemonade['item_id']}").click()
    size = lemonade["option_groups"][0]
    small, large = (next(c["id"] for c in size["choices"] if c["name"] == n) for n in ("Small", "Large"))
    slot = dialog.get_by_test_id(f"slot-{drink['id']}")
    await expect(slot.get_by_test_id(f"choice-{small}")).to_have_attribute("aria-pressed", "true")
    await slot.get_by_test_id(f"choice-{small}").click()  # no size at all: not orderable
    await expect(page.get_by_test_id("dialog-add")).to_be_disabled()
    await expect(page.get_by_test_id("dialog-hint")).to_contain_text("Size")
    await slot.get_by_test_id(f"choice-{large}").click()
    await expect(page.get_by_test_id("dialog-add")).to_be_enabled()
    await expect(page.get_by_test_id("dialog-hint")).to_have_text("")
    await screenshot(page, "kiosk-combo")
    await page.get_by_test_id("dialog-add").click()
    await expect(dialog).to_be_hidden()
    await expect(page.get_by_test_id("cart-line")).to_have_count(1)
    await expect(page.get_by_test_id("cart-line")).to_contain_text("Pancakes")

    # Fries take at most two dips: the third cannot be picked; Esc closes the dialog without adding.
    sides = next(category for category in menu["categories"] if category["name"] == "Sides")
    await page.get_by_test_id(f"category-{sides['id']}").click()
    await page.get_by_test_id(f"item-{fries['id']}").click()
    for dip in ("Ketchup", "Mayonnaise"):
        await dialog.get_by_test_id(f"choice-{choice_id(fries, dip)}").click()
    await expect(dialog.get_by_test_id(f"choice-{choice_id(fries, 'Garlic aioli')}")).to_be_disabled()
    await page.keyboard.press("Escape")
    await expect(dialog).to_be_hidden()
    # The keyboard finds its way back: focus returns to the card, Enter opens it again.
    await expect(page.get_by_test_id(f"item-{fries['id']}")).to_be_focused()
    await page.keyboard.press("Enter")
    await expect(dialog).to_be_visible()
    await page.keyboard.press("Escape")
    await expect(dialog).to_be_hidden()

    # Two cheeseburgers with bacon and a note for the kitchen.
    burgers = next(category for category in menu["categories"] if category["name"] == "Burgers")
    await page.get_by_test_id(f"category-{burgers['id']}").click()
    await page.get_by_test_id(f"item-{burger['id']}").click()
    await dialog.get_by_test_id(f"choice-{choice_id(burger, 'Bacon')}").click()
    await page.get_by_test_id("qty-plus").click()
    await page.get_by_test_id("dialog-note").fill("no sesame please")
    await page.get_by_test_id("dialog-add").click()
    await expect(page.get_by_test_id("cart-line")).to_have_count(2)

    # The server's total: 7.90 + 0.70 + 0.30 + 1.10, and 2 × (9.90 + 1.50).
    total = 790 + 70 + 30 + 110 + 2 * (990 + 150)
    await expect(page.get_by_test_id("cart-total")).to_have_attribute("data-total", str(total))
    await expect(page.get_by_test_id("cart-total")).to_have_text(euros(total))
    # Both lines are food (the combo's drink is taxed as the meal): 7 % taken away.
    await expect(page.get_by_test_id("cart-tax")).to_have_attribute("data-rate", "700")

    # Switching the language reads the menu in it and names the cart's lines in it.
    await page.get_by_test_id("language-de").click()
    await expect(page.get_by_test_id("cart-line").first).to_contain_text("Frühstücksmenü")
    await expect(page.get_by_test_id(f"item-{burger['id']}")).to_have_attribute("data-name", "Cheeseburger")
    await expect(page.get_by_test_id(f"category-{sides['id']}")).to_have_text("Beilagen")
    await screenshot(page, "kiosk")

    async with DeviceClient(live.ws, token(live.services, demo, DeviceKind.PAYMENT_TERMINAL)) as client:
        terminal = Terminal(client)
        await page.get_by_test_id("checkout").click()
        await expect(page.get_by_test_id("pay-waiting")).to_be_visible()
        await expect(page.get_by_test_id("pay-amount")).to_contain_text(euros(total))
        requested = await terminal.answer("approved")
    assert requested["amount"] == total
    number = page.get_by_test_id("order-number")
    await expect(number).to_have_text(re.compile(r"^\d+$"))
    await screenshot(page, "kiosk-number")


async def test_a_declined_payment_can_be_tried_again(page: Page, live: Live, demo: DemoResult) -> None:
    await water_in_cart(page, live, demo, "?lang=en&done=1")
    async with DeviceClient(live.ws, token(live.services, demo, DeviceKind.PAYMENT_TERMINAL)) as client:
        terminal = Terminal(client)
        await page.get_by_test_id("checkout").click()
        await terminal.answer("declined")
        await expect(page.get_by_test_id("pay-reason")).to_have_text("The payment was declined.")
        await screenshot(page, "kiosk-declined")
        await page.get_by_test_id("pay-retry").click()
        await expect(page.get_by_test_id("pay-waiting")).to_be_visible()
        await terminal.answer("approved")
    await expect(page.get_by_test_id("order-number")).to_have_text(re.compile(r"^\d+$"))
    # The kiosk starts over by itself (here after 1 s).
    await expect(page.get_by_test_id("screen-start")).to_be_visible()


async def test_a_changed_price_is_explained_and_confirmed(page: Page, live: Live, demo: DemoResult) -> None:
    water = menu_item(await water_in_cart(page, live, demo, "?lang=en"), "Still Water")
    await expect(page.get_by_test_id("cart-total")).to_have_attribute("data-total", "220")
    prefix = live.services.settings.API_V1_STR
    admin = await staff_token(live.http, prefix, demo)
    async with httpx.AsyncClient(base_url=live.http, headers={"Authorization": f"Bearer {admin}"}) as http:
        changed = await http.patch(f"{prefix}/items/{water['id']}", json={"price": 250})
    assert changed.status_code == 200, changed.text
    # The menu shows the new price at once; the cart learns it when the order is placed.
    await expect(page.get_by_test_id(f"item-{water['id']}")).to_contain_text(euros(250))
    async with DeviceClient(live.ws, token(live.services, demo, DeviceKind.PAYMENT_TERMINAL)) as client:
        terminal = Terminal(client)
        await page.get_by_test_id("checkout").click()
        text = page.get_by_test_id("price-text")
        await expect(text).to_contain_text(euros(220))
        await expect(text).to_contain_text(euros(250))
        await expect(page.get_by_test_id("cart-total")).to_have_attribute("data-total", "250")
        await page.get_by_test_id("price-confirm").click()
        requested = await terminal.answer("approved")
    assert requested["amount"] == 250
    await expect(page.get_by_test_id("order-number")).to_have_text(re.compile(r"^\d+$"))


async def test_an_idle_kiosk_waits_for_the_terminal_then_cancels_the_unpaid_order_and_starts_over(
    page: Page, live: Live, demo: DemoResult
) -> None:
    await water_in_cart(page, live, demo, "?lang=en&idle=3")
    admin = await staff_token(live.http, live.services.settings.API_V1_STR, demo)
    async with (
        asyncio.timeout(30),
        DeviceClient(live.ws, token(live.services, demo, DeviceKind.PAYMENT_TERMINAL)) as client,
        DeviceClient(live.ws, admin) as staff,
    ):
        terminal = Terminal(client)
        orders_channel = await watch_orders(staff, demo)
        await page.get_by_test_id("checkout").click()
        await expect(page.get_by_test_id("pay-waiting")).to_be_visible()
        # The customer is at the terminal for longer than the idle time: the kiosk neither warns nor gives up.
        await page.wait_for_timeout(4_000)
        await expect(page.get_by_test_id("idle-warning")).to_be_hidden()
        await expect(page.get_by_test_id("pay-waiting")).to_be_visible()
        # The card is declined and the customer walks away: the countdown shows, then the kiosk cancels the order.
        requested = await terminal.answer("declined")
        await expect(page.get_by_test_id("pay-failed")).to_be_visible()
        await expect(page.get_by_test_id("idle-warning")).to_be_visible()
        await expect(page.get_by_test_id("idle-countdown")).to_contain_text(re.compile(r"\d s"))
        await expect(page.get_by_test_id("screen-start")).to_be_visible()
        order = await staff.next_event(orders_channel, "order.cancelled")
        assert order["data"]["id"] == requested["order_id"]
        assert order["data"]["cancel_reason"] == "cancelled_by_kiosk"


async def test_a_sold_out_item_greys_out_live_and_is_named_for_removal_at_checkout(
    page: Page, live: Live, demo: DemoResult
) -> None:
    menu = await water_in_cart(page, live, demo, "?lang=en")
    combo, hash_brown = menu_item(menu, "Breakfast Combo"), menu_item(menu, "Hash Brown")
    breakfast = next(category for category in menu["categories"] if category["name"] == "Breakfast")
    await page.get_by_test_id(f"category-{breakfast['id']}").click()
    await page.get_by_test_id(f"item-{combo['id']}").click()
    await page.get_by_test_id("dialog-add").click()  # the default filling: muffin, hash brown, small cola
    await expect(page.get_by_test_id("cart-line")).to_have_count(2)

    admin = await staff_token(live.http, live.services.settings.API_V1_STR, demo)
    async with DeviceClient(live.ws, admin) as staff:
        await staff.command(
            "item.set_available", {"item_id": hash_brown["id"], "available": False, "branch_id": demo.branch_id}
        )
    # The hash brown, and the combo whose side it is alone, can no longer be ordered.
    for item in (hash_brown, combo):
        await expect(page.get_by_test_id(f"item-{item['id']}")).to_be_disabled()
    await page.get_by_test_id("checkout").click()
    await expect(page.get_by_test_id("stock-item")).to_contain_text("Hash Brown")
    await screenshot(page, "kiosk-out-of-stock")
    combo_line = page.get_by_test_id("cart-line").filter(has_text="Breakfast Combo")
    line_id = await combo_line.get_attribute("data-line-id")
    await page.get_by_test_id(f"stock-remove-{line_id}").click()
    await expect(page.get_by_test_id("stock-dialog")).to_be_hidden()
    await expect(page.get_by_test_id("cart-line")).to_have_count(1)
    await expect(page.get_by_test_id("cart-total")).to_have_attribute("data-total", "220")
    await expect(page.get_by_test_id("checkout")).to_be_enabled()


async def test_without_its_terminal_the_kiosk_says_so_and_cancelling_drops_the_order(
    page: Page, live: Live, demo: DemoResult
) -> None:
    await water_in_cart(page, live, demo, "?lang=en")
    admin = await staff_token(live.http, live.services.settings.API_V1_STR, demo)
    async with DeviceClient(live.ws, admin) as staff:
        orders_channel = await watch_orders(staff, demo)
        await page.get_by_test_id("checkout").click()  # nobody is at the terminal
        await expect(page.get_by_test_id("pay-reason")).to_have_text("The terminal cannot be reached right now.")
        await expect(page.get_by_test_id("pay-retry")).to_be_visible()
        await page.get_by_test_id("pay-abort").click()
        await expect(page.get_by_test_id("screen-start")).to_be_visible()
        placed = await staff.next_event(orders_channel, "order.placed")
        cancelled = await staff.next_event(orders_channel, "order.cancelled")
        assert cancelled["data"]["id"] == placed["data"]["id"]
