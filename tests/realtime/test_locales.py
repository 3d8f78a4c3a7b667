"""A kiosk's locale over a real socket: named in `hello`, reported in `welcome`, and its menu snapshot in it.

Kiosks of one branch in different languages connecting together each get the snapshot in their
own; those of one language still share one read of it (channels/shared_snapshots.py).
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

from sqlalchemy import update

from channels import names
from channels.client import DeviceClient
from persistence.enums import DeviceKind
from persistence.tables import Branch, Item
from server.services import Services
from tests.live import add_device, live_server
from tests.realtime.socket_helpers import raw_socket, recv, say_hello
from tests.rows import add_item
from tests.world import World


async def _german_branch(services: Services, world: World) -> int:
    """Branch a offers de (default) and en; its one item is named in both. The item's id."""
    item_id = await add_item(services.db, world.branch_a, stock=None)
    async with services.db.session() as session:
        await session.execute(
            update(Branch).where(Branch.id == world.branch_a).values(default_locale="de", locales=["de", "en"])
        )
        texts = {"de": {"name": "Käseburger"}, "en": {"name": "Cheeseburger (en)"}}
        await session.execute(update(Item).where(Item.id == item_id).values(translations=texts))
    return item_id


async def _menu_snapshot(ws: Any) -> dict[str, Any]:
    """The data of the `branch:{b}:menu` snapshot among the frames after the welcome."""
    for _ in range(10):
        frame = await recv(ws)
        if frame["type"] == "snapshot" and frame["channel"].endswith(":menu"):
            data: dict[str, Any] = frame["data"]
            return data
    raise AssertionError("no menu snapshot")


async def test_a_kiosks_hello_locale_names_its_menu_snapshot_and_one_not_offered_falls_back(
    services: Services, world: World
) -> None:
    """en is offered: the welcome says en and the menu comes in English; fr is not, and neither is a malformed code:
    the welcome says null and the menu comes in German, the default; no locale at all is as before."""
    await _german_branch(services, world)
    _, token = await add_device(services, world.branch_a, DeviceKind.KIOSK)
    async with live_server(services) as live:
        for asked, welcomed, name in (
            ({"locale": "EN"}, "en", "Cheeseburger (en)"),
            ({"locale": "fr"}, None, "Käseburger"),
            ({"locale": "no locale"}, None, "Käseburger"),
            ({"locale": 42}, None, "Käseburger"),
            ({"locale": "x" * 100}, None, "Käseburger"),
            ({}, None, "Käseburger"),
        ):
            async with raw_socket(live.ws) as ws:
                welcome = await say_hello(ws, token, **asked)
                assert welcome["data"]["locale"] == welcomed, asked
                menu = await _menu_snapshot(ws)
                assert menu["locale"] == (welcomed or "de")
                assert menu["categories"][0]["items"][0]["name"] == name, asked


async def test_kiosks_of_two_locales_connecting_together_each_get_their_own_snapshot(
    services: Services, world: World
) -> None:
    """Three kiosks at once, two in en and one in de: each reads its own language's menu at the same position."""
    await _german_branch(services, world)
    tokens = [(await add_device(services, world.branch_a, DeviceKind.KIOSK, f"k{n}"))[1] for n in range(3)]
    async with live_server(services) as live:

        async def connect(token: str, locale: str) -> tuple[int, str]:
            async with raw_socket(live.ws) as ws:
                welcome = await say_hello(ws, token, locale=locale)
                menu = await _menu_snapshot(ws)
                seq = welcome["data"]["channels"][names.branch_menu(world.branch_a)]["seq"]
                return seq, menu["categories"][0]["items"][0]["name"]

        got = await asyncio.gather(*(connect(t, loc) for t, loc in zip(tokens, ("en", "de", "en"), strict=True)))
    assert [name for _, name in got] == ["Cheeseburger (en)", "Käseburger", "Cheeseburger (en)"]
    assert len({seq for seq, _ in got}) == 1, json.dumps(got)


async def test_the_device_client_says_its_locale_in_hello(services: Services, world: World) -> None:
    """`DeviceClient(locale=...)` is welcomed in it and reads the menu in it."""
    await _german_branch(services, world)
    _, token = await add_device(services, world.branch_a, DeviceKind.KIOSK)
    async with live_server(services) as live, DeviceClient(live.ws, token, locale="en") as client:
        assert client.welcome["locale"] == "en"
        menu = await client.command("menu.get")
        assert menu["categories"][0]["items"][0]["name"] == "Cheeseburger (en)"
