"""The demo branch as a customer meets it, through the device protocol alone and real sockets: a kiosk switches
from German to English, chooses take away, buys the breakfast combo with a large drink at 08:00 branch time (and the
same is refused at 11:01), sees allergens, pays at its terminal and prints a receipt with the take-away tax, while
the grill and the drinks displays each see and bump only their part, in the kitchen's German, and the board shows
the order ready once both are done."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from typing import Any

from channels import names
from channels.client import DeviceClient
from persistence.database import Database
from persistence.enums import DeviceKind
from server.app import build_services
from server.demo import DemoResult, seed_demo
from server.services import Services
from server.settings import Settings
from tests.live import live_server
from tests.test_demo import cheap_hash

# The demo branch is in Berlin: in December 07:00 UTC is 08:00 there, 10:01 UTC is 11:01.
EIGHT_AM = datetime(2026, 12, 7, 7, 0, tzinfo=UTC)
ELEVEN_O_ONE = datetime(2026, 12, 7, 10, 1, tzinfo=UTC)


@asynccontextmanager
async def demo_services(settings: Settings, db: Database, clock: Callable[[], datetime]) -> AsyncIterator[Services]:
    """Services over `db` whose business clock is `clock`."""
    services = build_services(settings, db=db, prefix=f"test:{uuid.uuid4()}", clock=clock)
    try:
        yield services
    finally:
        await services.stop()
        await services.backend.close()


def token(services: Services, demo: DemoResult, kind: DeviceKind, station: str | None = None) -> str:
    """A token of the demo's device of this kind (and station)."""
    device = next(d for d in demo.devices if d.kind == kind and d.station == station)
    return services.tokens.issue("device", device.id, secret_version=1)[0]


async def snapshot_of(client: DeviceClient, channel: str) -> dict[str, Any]:
    """The snapshot a device's hello gave it of `channel`."""
    while (frame := await client.next_frame())["channel"] != channel or frame["type"] != "snapshot":
        pass
    return frame["data"]


def menu_item(menu: dict[str, Any], name: str) -> dict[str, Any]:
    return next(item for category in menu["categories"] for item in category["items"] if item["name"] == name)


def filling(combo: dict[str, Any], picks: dict[str, str], size: str) -> list[dict[str, Any]]:
    """The combo's slots filled with the named items; the drink in `size`."""
    components = []
    for slot in combo["combo_slots"]:
        choice = next(c for c in slot["choices"] if c["name"] == picks[slot["name"]])
        sizes = [c["id"] for g in choice["option_groups"] for c in g["choices"] if c["name"] == size]
        components.append({"slot_id": slot["id"], "item_id": choice["item_id"], "choice_ids": sizes})
    return components


async def test_a_kiosk_buys_a_takeaway_breakfast_combo_and_the_stations_and_the_board_follow(
    db: Database, settings: Settings
) -> None:
    demo = await seed_demo(db, hasher=cheap_hash)
    assert demo is not None
    branch = demo.branch_id
    now = [EIGHT_AM]
    async with demo_services(settings, db, lambda: now[0]) as services, live_server(services) as live:
        async with (
            asyncio.timeout(60),
            DeviceClient(live.ws, token(services, demo, DeviceKind.KIOSK)) as kiosk,
            DeviceClient(live.ws, token(services, demo, DeviceKind.PAYMENT_TERMINAL)) as terminal,
            DeviceClient(live.ws, token(services, demo, DeviceKind.KITCHEN_DISPLAY, "grill")) as grill,
            DeviceClient(live.ws, token(services, demo, DeviceKind.KITCHEN_DISPLAY, "drinks")) as drinks,
            DeviceClient(live.ws, token(services, demo, DeviceKind.ORDER_BOARD)) as board,
        ):
            kiosk_channel = names.device(kiosk.welcome["principal"]["id"])
            # The kiosk starts in the branch's language, German; the customer switches to English.
            german = await snapshot_of(kiosk, names.branch_menu(branch))
            assert (german["locale"], german["locales"]) == ("de", ["de", "en"])
            german_combo = menu_item(german, "Frühstücksmenü")
            assert german_combo["orderable"] is True
            assert [slot["name"] for slot in german_combo["combo_slots"]] == ["Hauptgericht", "Beilage", "Getränk"]
            menu = await kiosk.command("menu.get", {"locale": "en"})
            assert menu["service_modes"] == ["eat_in", "takeaway"]
            combo = menu_item(menu, "Breakfast Combo")
            assert combo["orderable"] is True
            # The allergens of every choice are on the menu, before anything is bought.
            main = next(slot for slot in combo["combo_slots"] if slot["name"] == "Main")
            muffin = next(c for c in main["choices"] if c["name"] == "Breakfast Muffin")
            assert {"gluten", "eggs", "milk"} <= set(muffin["allergens"])

            # Take away, the combo with a large cola at 08:00: 7.90 and 1.10 for the size.
            cart = await kiosk.command("cart.create", {"service_mode": "takeaway"})
            components = filling(combo, {"Main": "Breakfast Muffin", "Side": "Hash Brown", "Drink": "Cola"}, "Large")
            cart = await kiosk.command(
                "cart.add", {"cart_id": cart["id"], "item_id": combo["id"], "components": components}
            )
            assert (cart["service_mode"], cart["total"], cart["lines"][0]["name"]) == (
                "takeaway",
                900,
                "Frühstücksmenü",
            )
            cart = await kiosk.command("cart.set_locale", {"cart_id": cart["id"], "locale": "en"})
            assert [c["name"] for c in cart["lines"][0]["components"]] == ["Breakfast Muffin", "Hash Brown", "Cola"]
            assert (cart["locale"], cart["lines"][0]["name"], cart["total"]) == ("en", "Breakfast Combo", 900)
            # A second customer's same combo, in a cart made at 08:00 too, is placed only at 11:01 below.
            late = await kiosk.command("cart.create", {"service_mode": "takeaway"})
            await kiosk.command("cart.add", {"cart_id": late["id"], "item_id": combo["id"], "components": components})

            order = await kiosk.command("order.place", {"cart_id": cart["id"], "expected_total": 900})
            payment = await kiosk.command("payment.start", {"order_id": order["id"]})
            asked = await terminal.next_event(names.device(terminal.welcome["principal"]["id"]), "payment.requested")
            assert (asked["data"]["id"], asked["data"]["amount"]) == (payment["id"], 900)
            await terminal.command(
                "payment.result", {"payment_id": payment["id"], "status": "approved", "provider_ref": "ACQ-0800"}
            )
            paid = await kiosk.next_event(kiosk_channel, "order.paid")
            assert [c["name"] for c in paid["data"]["lines"][0]["components"]][0] == "Breakfast Muffin"

            # Each station sees the combo's line with only its own components, in the kitchen's German.
            grill_channel, drinks_channel = (
                names.branch_station(branch, "grill"),
                names.branch_station(branch, "drinks"),
            )
            grill_ticket = (await grill.next_event(grill_channel, "order.queued"))["data"]
            drinks_ticket = (await drinks.next_event(drinks_channel, "order.queued"))["data"]
            assert [[c["name"] for c in line["components"]] for line in grill_ticket["lines"]] == [
                ["Frühstücksmuffin", "Rösti"]
            ]
            assert [c["slot"] for c in grill_ticket["lines"][0]["components"]] == ["Hauptgericht", "Beilage"]
            assert [[c["name"] for c in line["components"]] for line in drinks_ticket["lines"]] == [["Cola"]]
            assert [o["name"] for o in drinks_ticket["lines"][0]["components"][0]["options"]] == ["Groß"]

            preparing = await board.next_event(names.branch_board(branch), "board.updated")
            assert (preparing["data"]["number"], preparing["data"]["column"]) == (order["number"], "preparing")
            bumped = await grill.command("station.bump", {"order_id": order["id"]})
            assert bumped["status"] == "preparing"
            bumped = await drinks.command("station.bump", {"order_id": order["id"]})
            assert bumped["status"] == "ready"
            while (shown := await board.next_event(names.branch_board(branch), "board.updated"))["data"]["column"] != (
                "ready"
            ):
                assert shown["data"]["column"] == "preparing"
            assert shown["data"]["order_id"] == order["id"]

            # The receipt, in English: the combo with its parts, the take-away rate of food (7 %), the terminal's
            # payment.
            receipt = await kiosk.command("order.receipt", {"order_id": order["id"]})
            assert (receipt["service_mode"], receipt["total"], receipt["number"]) == ("takeaway", 900, order["number"])
            assert [(t["rate_bp"], t["total"]) for t in receipt["taxes"]] == [(700, 900)]
            assert receipt["lines"][0]["name"] == "Breakfast Combo"
            assert [c["name"] for c in receipt["lines"][0]["components"]] == ["Breakfast Muffin", "Hash Brown", "Cola"]
            assert [o["name"] for o in receipt["lines"][0]["components"][2]["options"]] == ["Large"]
            assert [c["slot"] for c in receipt["lines"][0]["components"]] == ["Main", "Side", "Drink"]
            assert (receipt["payment"]["method"], receipt["payment"]["provider_ref"]) == ("terminal", "ACQ-0800")
            assert receipt["branch"]["name"] == "Demo Diner"

            # 11:01 in Berlin: breakfast is over, even for a cart built at 08:00.
            now[0] = ELEVEN_O_ONE
            refused = await kiosk.request("order.place", {"cart_id": late["id"]})
            assert refused["error"]["code"] == "out_of_stock"
            assert {entry["reason"] for entry in refused["error"]["details"]["items"]} == {"daypart"}
            assert menu_item(await kiosk.command("menu.get"), "Frühstücksmenü")["orderable"] is False
