"""Frames after the hello through a real server: ping, bad frames and their limit, the frame size
limit, one reply per command, and the command rate limit (docs/protocol.md).
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import AsyncIterator

import pytest

from channels import names
from persistence.database import Database
from persistence.enums import DeviceKind
from server.services import Services
from server.settings import Settings
from tests.live import add_device, live_server, socket_limits
from tests.realtime.socket_helpers import bearer, raw_socket, recv, say_hello, services_with, still_open, until_closed
from tests.world import World

# Small limits, so that abuse and size tests need few and small frames.
STRICT_LIMITS = {"WS_MAX_BAD_FRAMES": 3, "WS_MAX_MESSAGE_BYTES": 1024}


@pytest.fixture
async def strict(settings: Settings, db: Database, world: World) -> AsyncIterator[Services]:
    """Services whose bad-frame and frame-size limits are small (the world's tokens work with them)."""
    async with services_with(settings, db, **STRICT_LIMITS) as built:
        yield built


# -- frames ------------------------------------------------------------------------------


async def test_ping_gets_pong(services: Services, world: World) -> None:
    """`{"type":"ping"}` is answered with `{"type":"pong"}`, for clients that cannot see control frames."""
    _, token = await add_device(services, world.branch_a, DeviceKind.PAYMENT_TERMINAL)
    async with live_server(services) as live, raw_socket(live.ws) as ws:
        await say_hello(ws, token)
        assert (await recv(ws))["type"] == "snapshot"
        await still_open(ws)


BAD_FRAMES: dict[str, tuple[str, str | None]] = {
    "not-json": ("{not json", None),
    "array": ("[1, 2, 3]", None),
    "string": ('"a string"', None),
    "no-type": ('{"id": "t1", "data": {}}', "t1"),
    "type-not-string": ('{"type": 7, "id": "t2"}', "t2"),
    "unknown-type": ('{"type": "no.such.command", "id": "u1", "data": {}}', "u1"),
    "no-id": ('{"type": "item.set_available", "data": {}}', None),
    "empty-id": ('{"type": "item.set_available", "id": "", "data": {}}', None),
    "id-too-long": ('{"type": "item.set_available", "id": "' + "x" * 65 + '", "data": {}}', None),
    "data-not-object": ('{"type": "item.set_available", "id": "d1", "data": [1]}', "d1"),
    # Deep enough to exhaust the JSON decoder's recursion, and merely deeper than the protocol allows.
    "nested-3000": ("[" * 3000 + "]" * 3000, None),
    "nested-data": ('{"type": "item.set_available", "id": "n1", "data": ' + '{"a": ' * 40 + "1" + "}" * 41, "n1"),
}


async def test_a_bad_frame_gets_invalid_and_the_connection_stays(services: Services, world: World) -> None:
    """Each bad frame gets one `invalid` reply (id null when none could be read) and the connection stays open."""
    assert len(BAD_FRAMES) < services.settings.WS_MAX_BAD_FRAMES
    async with live_server(services) as live, raw_socket(live.ws) as ws:
        await say_hello(ws, bearer(world.staff_a.headers))
        for case, (frame, reply_id) in BAD_FRAMES.items():
            await ws.send(frame)
            reply = await recv(ws)
            assert (reply["type"], reply["id"], reply["ok"]) == ("reply", reply_id, False), case
            assert reply["error"]["code"] == "invalid", case
            assert reply["error"]["message"], case
            await still_open(ws)


async def test_a_second_hello_is_invalid(services: Services, world: World) -> None:
    """`hello` after the handshake is answered `invalid`; the connection keeps its first principal."""
    async with live_server(services) as live, raw_socket(live.ws) as ws:
        await say_hello(ws, bearer(world.staff_a.headers))
        await ws.send(json.dumps({"type": "hello", "token": bearer(world.admin.headers)}))
        reply = await recv(ws)
        assert (reply["type"], reply["id"], reply["ok"], reply["error"]["code"]) == ("reply", None, False, "invalid")
        # Still staff of branch a: another branch's channel stays closed to it, as it would not to the admin.
        theirs = {"channel": names.branch_orders(world.branch_b)}
        await ws.send(json.dumps({"type": "subscribe", "id": "s1", "data": theirs}))
        assert (await recv(ws))["error"]["code"] == "forbidden"


async def test_too_many_bad_frames_close_4000_after_their_replies(strict: Services, world: World) -> None:
    """Past WS_MAX_BAD_FRAMES bad frames a minute the connection is closed with 4000; each got its reply first."""
    async with live_server(strict) as live, raw_socket(live.ws) as ws:
        await say_hello(ws, bearer(world.staff_a.headers))
        for index in range(STRICT_LIMITS["WS_MAX_BAD_FRAMES"]):
            await ws.send(json.dumps({"type": "no.such.command", "id": f"b{index}"}))
            assert (await recv(ws))["error"]["code"] == "invalid"
        await still_open(ws)
        await ws.send("not json at all")
        received, code = await until_closed(ws)
        assert [(frame["id"], frame["error"]["code"]) for frame in received] == [(None, "invalid")]
        assert code == 4000


async def test_a_frame_over_the_size_limit_closes_1009(strict: Services, world: World) -> None:
    """A frame of exactly WS_MAX_MESSAGE_BYTES is read; one byte more closes the connection with 1009."""
    limit = STRICT_LIMITS["WS_MAX_MESSAGE_BYTES"]
    head = '{"type":"ping","pad":"'
    exact = head + "é" * ((limit - len(head) - 2) // 2) + '"}'
    exact = exact[:-2] + "x" * (limit - len(exact.encode())) + '"}'
    assert len(exact.encode()) == limit
    async with live_server(strict) as live, raw_socket(live.ws) as ws:
        await say_hello(ws, bearer(world.staff_a.headers))
        await ws.send(exact)
        assert await recv(ws) == {"type": "pong"}
        await ws.send(exact[:-2] + 'x"}')
        assert await until_closed(ws) == ([], 1009)


async def test_every_command_gets_exactly_one_reply_with_its_id(services: Services, world: World) -> None:
    """Commands that succeed, fail validation, are forbidden or refused each get one reply carrying their id."""
    kiosk_id, kiosk_token = await add_device(services, world.branch_a, DeviceKind.KIOSK)
    commands = [
        ("ok-sub", "subscribe", {"channel": names.device(kiosk_id)}, True, None),
        ("bad-channel", "subscribe", {"channel": "branch:1:nothing"}, False, "invalid"),
        ("not-mine", "subscribe", {"channel": names.branch_orders(world.branch_a)}, False, "forbidden"),
        ("ok-unsub", "unsubscribe", {"channel": names.device(kiosk_id)}, True, None),
        ("no-data", "subscribe", {}, False, "invalid"),
        ("staff-only", "item.set_available", {"item_id": 1, "available": False}, False, "forbidden"),
        ("bad-refresh", "auth.refresh", {"token": "nope"}, False, "unauthorized"),
        ("unknown", "no.such.command", {}, False, "invalid"),
    ]
    async with live_server(services) as live, raw_socket(live.ws) as ws:
        channels = (await say_hello(ws, kiosk_token))["data"]["channels"]
        for _ in channels:
            assert (await recv(ws))["type"] == "snapshot"
        for command_id, kind, data, _ok, _code in commands:
            await ws.send(json.dumps({"type": kind, "id": command_id, "data": data}))
        await ws.send('{"type":"ping"}')
        replies = []
        while (frame := await recv(ws)) != {"type": "pong"}:
            if frame["type"] == "reply":
                replies.append(frame)
    assert Counter(reply["id"] for reply in replies) == Counter(command_id for command_id, *_ in commands)
    by_id = {reply["id"]: reply for reply in replies}
    for command_id, _kind, _data, ok, code in commands:
        assert by_id[command_id]["ok"] is ok, by_id[command_id]
        if not ok:
            assert by_id[command_id]["error"]["code"] == code, by_id[command_id]


# -- rate limit --------------------------------------------------------------------------


async def test_commands_faster_than_the_bucket_are_refused_then_closed_4029(services: Services, world: World) -> None:
    """Past the burst, commands get `rate_limited`; a client that keeps going is closed with 4029."""
    burst = 5
    limits = socket_limits(services, command_burst=burst, command_rate_per_s=0.1)
    channel = names.branch_menu(world.branch_a)
    async with live_server(services, limits) as live, raw_socket(live.ws) as ws:
        await say_hello(ws, bearer(world.staff_a.headers))
        for index in range(burst):
            await ws.send(json.dumps({"type": "unsubscribe", "id": f"ok{index}", "data": {"channel": channel}}))
            assert (await recv(ws))["ok"] is True
        await ws.send(json.dumps({"type": "unsubscribe", "id": "over", "data": {"channel": channel}}))
        refused = await recv(ws)
        assert (refused["id"], refused["ok"], refused["error"]["code"]) == ("over", False, "rate_limited")
        await still_open(ws)
        for index in range(burst):
            await ws.send(json.dumps({"type": "unsubscribe", "id": f"again{index}", "data": {"channel": channel}}))
        received, code = await until_closed(ws)
    assert [frame["error"]["code"] for frame in received] == ["rate_limited"] * burst
    assert code == 4029
