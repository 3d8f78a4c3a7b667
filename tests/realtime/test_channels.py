"""Channels over a real server: who may subscribe, what a subscriber gets, and resuming where it left off."""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass
from typing import Any, Literal

import pytest
from websockets.asyncio.client import ClientConnection

from channels import names
from channels.client import DeviceClient
from channels.names import parse
from channels.rules import auto_channels, may_subscribe
from persistence.database import Database
from persistence.enums import DeviceKind
from server.services import Services
from server.settings import Settings
from tests.live import add_device, live_server
from tests.realtime.socket_helpers import (
    TIMEOUT_S,
    bearer,
    raw_socket,
    recv,
    say_hello,
    services_with,
    still_open,
)
from tests.rows import add_item
from tests.world import World

# -- who may subscribe (the table of PROTOCOL.md "Channels") -------------------------------


@dataclass(frozen=True)
class _Audience:
    kind: Literal["user", "device"]
    id: int
    branch_id: int | None
    device_kind: str | None = None
    is_chain_wide: bool = False
    station: str | None = None


BRANCH_1 = [
    "branch:1:menu",
    "branch:1:kitchen",
    "branch:1:kitchen:grill",
    "branch:1:board",
    "branch:1:orders",
    "branch:1:devices",
]
BRANCH_2 = [name.replace(":1:", ":2:") for name in BRANCH_1]
OWN, OTHER_DEVICE = "device:7", "device:8"

VISIBLE: dict[str, tuple[_Audience, set[str]]] = {
    "staff of 1": (_Audience("user", 3, 1), set(BRANCH_1)),
    "admin": (_Audience("user", 1, None, is_chain_wide=True), {*BRANCH_1, *BRANCH_2, OWN, OTHER_DEVICE}),
    "kiosk": (_Audience("device", 7, 1, "kiosk"), {"branch:1:menu", OWN}),
    "payment terminal": (_Audience("device", 7, 1, "payment_terminal"), {"branch:1:menu", OWN}),
    "kitchen display": (
        _Audience("device", 7, 1, "kitchen_display"),
        {"branch:1:menu", "branch:1:kitchen", "branch:1:kitchen:grill", OWN},
    ),
    "grill display": (
        _Audience("device", 7, 1, "kitchen_display", station="grill"),
        {"branch:1:menu", "branch:1:kitchen", "branch:1:kitchen:grill", OWN},
    ),
    "order board": (_Audience("device", 7, 1, "order_board"), {"branch:1:menu", "branch:1:board", OWN}),
}


@pytest.mark.parametrize("who", sorted(VISIBLE))
def test_who_may_subscribe_follows_the_protocol_table(who: str) -> None:
    """Each principal may subscribe to exactly the channels PROTOCOL.md's table lets it see."""
    audience, expected = VISIBLE[who]
    allowed = set()
    for name in [*BRANCH_1, *BRANCH_2, OWN, OTHER_DEVICE]:
        channel = parse(name)
        assert channel is not None
        if may_subscribe(audience, channel):
            allowed.add(name)
    assert allowed == expected


def test_a_station_display_gets_its_stations_kitchen_on_hello_instead_of_the_whole_kitchen() -> None:
    assert auto_channels(_Audience("device", 7, 1, "kitchen_display", station="grill")) == [
        "branch:1:kitchen:grill",
        "branch:1:menu",
    ]
    assert auto_channels(_Audience("device", 7, 1, "kitchen_display")) == ["branch:1:kitchen", "branch:1:menu"]


def test_only_the_kitchen_has_stations_and_station_codes_are_slugs() -> None:
    grill = parse("branch:1:kitchen:grill")
    assert grill is not None and (grill.branch_id, grill.topic, grill.station, grill.kind) == (
        1,
        "kitchen",
        "grill",
        "branch:station",
    )
    for name in ("branch:1:board:grill", "branch:1:kitchen:Grill", "branch:1:kitchen:", "branch:1:kitchen:a:b"):
        assert parse(name) is None


# -- subscribe and unsubscribe -----------------------------------------------------------


async def _subscribe(ws: ClientConnection, command_id: str, **data: Any) -> dict[str, Any]:
    """Send `subscribe` and return its reply (the next frame: nothing of the channel comes before it)."""
    await ws.send(json.dumps({"type": "subscribe", "id": command_id, "data": data}))
    reply = await recv(ws)
    assert (reply["type"], reply["id"]) == ("reply", command_id), reply
    return reply


async def _publish(services: Services, channel: str, event: str = "test.happened") -> None:
    await services.broker.publish(channel, str(uuid.uuid4()), event, "{}", "2026-01-01T00:00:00Z")


async def test_staff_subscribe_gets_the_reply_then_a_snapshot_then_live_events(
    services: Services, world: World
) -> None:
    """Subscribing to its branch's orders answers seq/epoch/resumed, then sends the snapshot, then live events."""
    orders = names.branch_orders(world.branch_a)
    async with live_server(services) as live, raw_socket(live.ws) as ws:
        await say_hello(ws, bearer(world.staff_a.headers))
        reply = await _subscribe(ws, "s1", channel=orders)
        assert reply["ok"] is True
        assert set(reply["data"]) == {"channel", "seq", "epoch", "resumed"}
        assert (reply["data"]["channel"], reply["data"]["seq"], reply["data"]["resumed"]) == (orders, 0, False)
        epoch = reply["data"]["epoch"]
        assert await recv(ws) == {
            "type": "snapshot",
            "channel": orders,
            "seq": 0,
            "epoch": epoch,
            "data": {"orders": []},
        }
        await _publish(services, orders, "order.placed")
        event = await recv(ws)
        assert (event["type"], event["channel"], event["seq"], event["epoch"]) == ("event", orders, 1, epoch)
        assert (event["event"], event["data"], event["ts"]) == ("order.placed", {}, "2026-01-01T00:00:00Z")


async def test_another_branch_channel_is_forbidden_and_nothing_of_it_arrives(services: Services, world: World) -> None:
    """Staff of branch a asking for branch b's orders get `forbidden`, and none of b's events reach them."""
    mine, theirs = names.branch_orders(world.branch_a), names.branch_orders(world.branch_b)
    async with live_server(services) as live, raw_socket(live.ws) as ws:
        await say_hello(ws, bearer(world.staff_a.headers))
        assert (await _subscribe(ws, "mine", channel=mine))["ok"] is True
        assert (await recv(ws))["type"] == "snapshot"
        refused = await _subscribe(ws, "theirs", channel=theirs)
        assert (refused["ok"], refused["error"]["code"], refused["error"]["details"]) == (
            False,
            "forbidden",
            {"channel": theirs},
        )
        # Published in this order, so an event of b that slipped through would arrive before a's.
        await _publish(services, theirs)
        await _publish(services, mine)
        event = await recv(ws)
        assert (event["channel"], event["seq"]) == (mine, 1)
        await still_open(ws)


async def test_a_name_that_is_no_channel_is_invalid(services: Services, world: World) -> None:
    """A channel name that does not parse, or data without a channel, is answered `invalid`."""
    bad: list[dict[str, Any]] = [
        {"channel": "branch:1:nothing"},
        {"channel": "branch:0:menu"},
        {"channel": "device:0"},
        {"channel": "menu"},
        {"channel": ""},
        {"channel": f"branch:{world.branch_a}:menu:extra"},
        {"channel": f"branch:{world.branch_a}:menu\n"},
        {"channel": f"device:{world.branch_a}\n"},
        {"channel": 42},
        {},
    ]
    async with live_server(services) as live, raw_socket(live.ws) as ws:
        await say_hello(ws, bearer(world.admin.headers))
        for index, data in enumerate(bad):
            reply = await _subscribe(ws, f"bad{index}", **data)
            assert (reply["ok"], reply["error"]["code"]) == (False, "invalid"), data
        await still_open(ws)


async def test_devices_are_refused_channels_not_made_for_them(services: Services, world: World) -> None:
    """A kiosk may not see the kitchen, the orders, another branch or another device; a terminal may see the menu."""
    _, kiosk_token = await add_device(services, world.branch_a, DeviceKind.KIOSK)
    other_id, _ = await add_device(services, world.branch_a, DeviceKind.KIOSK)
    _, terminal_token = await add_device(services, world.branch_a, DeviceKind.PAYMENT_TERMINAL)
    refused = [
        names.branch_kitchen(world.branch_a),
        names.branch_orders(world.branch_a),
        names.branch_devices(world.branch_a),
        names.branch_menu(world.branch_b),
        names.device(other_id),
    ]
    async with live_server(services) as live:
        async with DeviceClient(live.ws, kiosk_token) as kiosk:
            for channel in refused:
                reply = await kiosk.request("subscribe", {"channel": channel}, timeout=TIMEOUT_S)
                assert (reply["ok"], reply["error"]["code"]) == (False, "forbidden"), channel
        async with DeviceClient(live.ws, terminal_token) as terminal:
            menu = names.branch_menu(world.branch_a)
            reply = await terminal.request("subscribe", {"channel": menu}, timeout=TIMEOUT_S)
            assert reply["ok"] is True
            await terminal.next_frame(TIMEOUT_S)  # the terminal's own channel's snapshot, from hello
            snapshot = await terminal.next_frame(TIMEOUT_S)
            assert (snapshot["type"], snapshot["channel"]) == ("snapshot", menu)


async def test_unsubscribe_stops_the_channel(services: Services, world: World) -> None:
    """After `unsubscribe` is answered, no event of that channel arrives."""
    kitchen = names.branch_kitchen(world.branch_a)
    async with live_server(services) as live, raw_socket(live.ws) as ws:
        await say_hello(ws, bearer(world.staff_a.headers))
        assert (await _subscribe(ws, "s1", channel=kitchen))["ok"] is True
        assert (await recv(ws))["type"] == "snapshot"
        await ws.send(json.dumps({"type": "unsubscribe", "id": "u1", "data": {"channel": kitchen}}))
        assert await recv(ws) == {"type": "reply", "id": "u1", "ok": True, "data": {"channel": kitchen}}
        await _publish(services, kitchen)
        await still_open(ws)


# -- resume ------------------------------------------------------------------------------


async def _set_available(staff: DeviceClient, item_id: int, available: bool) -> None:
    await staff.command("item.set_available", {"item_id": item_id, "available": available}, timeout=TIMEOUT_S)


async def test_subscribe_with_since_sends_exactly_the_missed_events_then_live(services: Services, world: World) -> None:
    """Resuming with `since` and the current epoch sends seq since+1 onwards in order, then live events."""
    item_id = await add_item(services.db, world.branch_a, stock=5)
    menu = names.branch_menu(world.branch_a)
    async with live_server(services) as live, DeviceClient(live.ws, bearer(world.manager_a.headers)) as staff:
        async with raw_socket(live.ws) as ws:
            await say_hello(ws, bearer(world.staff_a.headers))
            epoch = (await _subscribe(ws, "s1", channel=menu))["data"]["epoch"]
            assert (await recv(ws))["type"] == "snapshot"
        for available in (False, True, False):
            await _set_available(staff, item_id, available)
        async with raw_socket(live.ws) as ws:
            await say_hello(ws, bearer(world.staff_a.headers))
            reply = await _subscribe(ws, "s2", channel=menu, since=1, epoch=epoch)
            assert reply["data"] == {"channel": menu, "seq": 3, "epoch": epoch, "resumed": True}
            missed = [await recv(ws), await recv(ws)]
            assert [(frame["type"], frame["seq"], frame["epoch"]) for frame in missed] == [
                ("event", 2, epoch),
                ("event", 3, epoch),
            ]
            assert [frame["data"]["available"] for frame in missed] == [True, False]
            await _set_available(staff, item_id, True)
            live_event = await recv(ws)
            assert (live_event["seq"], live_event["event"], live_event["data"]["available"]) == (
                4,
                "stock.changed",
                True,
            )
            await still_open(ws)


async def test_subscribe_with_a_wrong_epoch_or_a_seq_from_the_future_gets_a_snapshot(
    services: Services, world: World
) -> None:
    """A `since` that cannot be resumed (another epoch, or a seq the channel never had) gets a fresh snapshot."""
    menu = names.branch_menu(world.branch_a)
    for _ in range(2):
        await _publish(services, menu)
    async with live_server(services) as live, raw_socket(live.ws) as ws:
        await say_hello(ws, bearer(world.staff_a.headers))
        current = (await _subscribe(ws, "probe", channel=menu))["data"]["epoch"]
        assert (await recv(ws))["type"] == "snapshot"
        for index, (since, epoch) in enumerate([(1, "not-the-epoch"), (9, current)]):
            reply = await _subscribe(ws, f"s{index}", channel=menu, since=since, epoch=epoch)
            assert reply["data"] == {"channel": menu, "seq": 2, "epoch": current, "resumed": False}
            snapshot = await recv(ws)
            assert (snapshot["type"], snapshot["seq"], snapshot["epoch"]) == ("snapshot", 2, current)
        await still_open(ws)


async def test_resume_beyond_the_kept_history_gets_a_snapshot(settings: Settings, db: Database, world: World) -> None:
    """With HISTORY_SIZE 2, resuming after seq 2 of 4 replays 3 and 4, but after seq 1 gets a snapshot."""
    async with services_with(settings, db, HISTORY_SIZE=2) as services:
        menu = names.branch_menu(world.branch_a)
        async with live_server(services) as live, raw_socket(live.ws) as ws:
            await say_hello(ws, bearer(world.staff_a.headers))
            epoch = (await _subscribe(ws, "s0", channel=menu))["data"]["epoch"]
            assert (await recv(ws))["type"] == "snapshot"
            for _ in range(4):
                await _publish(services, menu)
            assert [(await recv(ws))["seq"] for _ in range(4)] == [1, 2, 3, 4]
            kept = await _subscribe(ws, "s1", channel=menu, since=2, epoch=epoch)
            assert kept["data"]["resumed"] is True
            assert [(await recv(ws))["seq"] for _ in range(2)] == [3, 4]
            gone = await _subscribe(ws, "s2", channel=menu, since=1, epoch=epoch)
            assert gone["data"] == {"channel": menu, "seq": 4, "epoch": epoch, "resumed": False}
            assert ((await recv(ws))["type"]) == "snapshot"
            await still_open(ws)


async def test_resume_in_hello_sends_the_missed_events_per_channel(services: Services, world: World) -> None:
    """A kiosk's `hello` with `resume` gets its menu's missed events, a snapshot where it had no place, then live."""
    item_id = await add_item(services.db, world.branch_a, stock=5)
    kiosk_id, kiosk_token = await add_device(services, world.branch_a, DeviceKind.KIOSK)
    menu, own = names.branch_menu(world.branch_a), names.device(kiosk_id)
    async with live_server(services) as live, DeviceClient(live.ws, bearer(world.manager_a.headers)) as staff:
        async with raw_socket(live.ws) as ws:
            epoch = (await say_hello(ws, kiosk_token))["data"]["channels"][menu]["epoch"]
        for available in (False, True, False):
            await _set_available(staff, item_id, available)
        async with raw_socket(live.ws) as ws:
            welcome = await say_hello(ws, kiosk_token, resume={menu: {"seq": 1, "epoch": epoch}})
            assert welcome["data"]["channels"][menu] == {"seq": 3, "epoch": epoch, "resumed": True}
            assert welcome["data"]["channels"][own]["resumed"] is False
            frames = [await recv(ws) for _ in range(3)]
            assert [(frame["type"], frame["seq"]) for frame in frames if frame["channel"] == menu] == [
                ("event", 2),
                ("event", 3),
            ]
            assert [frame["type"] for frame in frames if frame["channel"] == own] == ["snapshot"]
            await _set_available(staff, item_id, True)
            live_event = await recv(ws)
            assert (live_event["channel"], live_event["seq"]) == (menu, 4)
            await still_open(ws)


async def test_resume_in_hello_with_a_wrong_epoch_gets_a_snapshot(services: Services, world: World) -> None:
    """A `resume` entry naming an epoch the channel no longer has gets that channel's snapshot instead."""
    _, token = await add_device(services, world.branch_a, DeviceKind.KITCHEN_DISPLAY)
    kitchen = names.branch_kitchen(world.branch_a)
    await _publish(services, kitchen)
    async with live_server(services) as live, raw_socket(live.ws) as ws:
        welcome = await say_hello(ws, token, resume={kitchen: {"seq": 1, "epoch": "old-epoch"}})
        status = welcome["data"]["channels"][kitchen]
        assert (status["seq"], status["resumed"]) == (1, False)
        frames = [await recv(ws) for _ in range(2)]
        assert {(frame["type"], frame["channel"]) for frame in frames} == {
            ("snapshot", kitchen),
            ("snapshot", names.branch_menu(world.branch_a)),
        }
        await still_open(ws)


async def test_a_resume_longer_than_the_send_queue_allows_gets_a_snapshot_not_4008(
    services: Services, world: World
) -> None:
    """A few missed events are replayed; more than max_replay come as a snapshot, so catching up never means 4008."""
    kiosk_id, token = await add_device(services, world.branch_a, DeviceKind.KIOSK)
    menu, own = names.branch_menu(world.branch_a), names.device(kiosk_id)
    services.hub.max_replay = 4
    async with live_server(services) as live:
        async with raw_socket(live.ws) as ws:
            epoch = (await say_hello(ws, token))["data"]["channels"][menu]["epoch"]
        await _publish(services, menu)
        async with raw_socket(live.ws) as ws:
            welcome = await say_hello(ws, token, resume={menu: {"seq": 0, "epoch": epoch}})
            assert welcome["data"]["channels"][menu] == {"seq": 1, "epoch": epoch, "resumed": True}
        for _ in range(40):
            await _publish(services, menu)
        async with raw_socket(live.ws) as ws:
            welcome = await say_hello(ws, token, resume={menu: {"seq": 1, "epoch": epoch}})
            assert welcome["data"]["channels"][menu] == {"seq": 41, "epoch": epoch, "resumed": False}
            frames = [await recv(ws) for _ in range(2)]
            assert {(frame["type"], frame["channel"]) for frame in frames} == {("snapshot", menu), ("snapshot", own)}
            await still_open(ws)
