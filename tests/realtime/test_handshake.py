"""The socket endpoint's handshake through a real server: hello in time, tokens refused with 4001 or
4003, and the welcome with each principal's channels and snapshots (docs/protocol.md).
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from datetime import datetime
from typing import Any

import pytest
from sqlalchemy import update

from channels import names
from persistence.base import utcnow
from persistence.enums import DeviceKind
from persistence.tables import Device, Session, User
from server.auth.tokens import TokenCodec
from server.services import Services
from server.settings import Settings
from tests.live import add_device, live_server, socket_limits
from tests.realtime.socket_helpers import _expired, bearer, raw_socket, recv, say_hello, still_open, until_closed
from tests.world import World


async def _update(services: Services, statement: Any) -> None:
    async with services.db.session() as session:
        await session.execute(statement)


async def test_no_hello_in_time_closes_4001(services: Services, world: World) -> None:
    """A client that says nothing after the upgrade is closed with 4001 and is sent nothing."""
    limits = socket_limits(services, hello_timeout_s=0.2)
    async with live_server(services, limits) as live, raw_socket(live.ws) as ws:
        started = time.monotonic()
        received, code = await until_closed(ws)
        assert (received, code) == ([], 4001)
        assert time.monotonic() - started < 2


NOT_HELLO: dict[str, str | bytes] = {
    "ping": '{"type":"ping"}',
    "command": '{"type":"subscribe","id":"s1","data":{"channel":"branch:1:menu"}}',
    "not-json": "hello",
    "not-object": '["hello"]',
    "binary": b'{"type":"hello"}',
    "nested": '{"type":"hello","token":"x","resume":' + "[" * 3000 + "]" * 3000 + "}",
}


async def test_a_first_frame_that_is_not_hello_closes_4001(services: Services, world: World) -> None:
    """Anything but a text `hello` as the first frame closes with 4001 before any data frame."""
    async with live_server(services) as live:
        for case, first in NOT_HELLO.items():
            async with raw_socket(live.ws) as ws:
                await ws.send(first)
                assert await until_closed(ws) == ([], 4001), case


async def test_a_valid_hello_nesting_deeper_than_allowed_closes_4001(services: Services, world: World) -> None:
    """A hello with a good token but 40 levels of nesting in a key it would ignore is still refused."""
    _, token = await add_device(services, world.branch_a, DeviceKind.KIOSK)
    hello = '{"type":"hello","token":"' + token + '","extra":' + '{"a":' * 40 + "1" + "}" * 41
    async with live_server(services) as live, raw_socket(live.ws) as ws:
        await ws.send(hello)
        assert await until_closed(ws) == ([], 4001)


def _refresh_token(services: Services, device_id: int) -> str:
    token, _ = services.tokens.issue("device", device_id, "refresh", secret_version=1)
    return token


def _foreign_signature(services: Services, device_id: int) -> str:
    other = Settings(_env_file=None, ENVIRONMENT="test", JWT_SECRET_KEY="another-secret-of-a-stranger-0123456789")
    token, _ = TokenCodec(other).issue("device", device_id, secret_version=1)
    return token


BAD_TOKENS: dict[str, Callable[[Services, int], dict[str, Any]]] = {
    "missing": lambda services, device_id: {},
    "empty": lambda services, device_id: {"token": ""},
    "malformed": lambda services, device_id: {"token": "not.a.jwt"},
    "not-a-string": lambda services, device_id: {"token": 42},
    "expired": lambda services, device_id: {"token": _expired(services, device_id)},
    "refresh-token": lambda services, device_id: {"token": _refresh_token(services, device_id)},
    "foreign-signature": lambda services, device_id: {"token": _foreign_signature(services, device_id)},
}


async def test_a_bad_token_closes_4001_before_any_data(services: Services, world: World) -> None:
    """A missing, malformed, expired, wrongly typed or foreign token closes with 4001 and nothing else is sent."""
    device_id, _ = await add_device(services, world.branch_a, DeviceKind.KIOSK)
    async with live_server(services) as live:
        for case, token in BAD_TOKENS.items():
            async with raw_socket(live.ws) as ws:
                await ws.send(json.dumps({"type": "hello", **token(services, device_id)}))
                assert await until_closed(ws) == ([], 4001), case


async def test_a_revoked_device_token_closes_4001(services: Services, world: World) -> None:
    """A device token issued before its secret was rotated (secret_version bumped) is refused with 4001."""
    device_id, token = await add_device(services, world.branch_a, DeviceKind.KIOSK)
    await _update(services, update(Device).where(Device.id == device_id).values(secret_version=2))
    async with live_server(services) as live, raw_socket(live.ws) as ws:
        await ws.send(json.dumps({"type": "hello", "token": token}))
        assert await until_closed(ws) == ([], 4001)


async def test_a_token_of_a_revoked_session_closes_4001(services: Services, world: World) -> None:
    """A user token whose session was revoked (logout elsewhere) is refused with 4001."""
    token = bearer(world.staff_a.headers)
    session_id = services.tokens.decode(token).session_id
    await _update(services, update(Session).where(Session.id == session_id).values(revoked_at=utcnow()))
    async with live_server(services) as live, raw_socket(live.ws) as ws:
        await ws.send(json.dumps({"type": "hello", "token": token}))
        assert await until_closed(ws) == ([], 4001)


async def test_a_disabled_device_or_user_closes_4003(services: Services, world: World) -> None:
    """A valid token of a disabled device or user is refused with 4003 (stop, do not retry)."""
    device_id, device_token = await add_device(services, world.branch_a, DeviceKind.KIOSK)
    await _update(services, update(Device).where(Device.id == device_id).values(is_active=False))
    await _update(services, update(User).where(User.id == world.staff_a.id).values(is_active=False))
    async with live_server(services) as live:
        for token in (device_token, bearer(world.staff_a.headers)):
            async with raw_socket(live.ws) as ws:
                await ws.send(json.dumps({"type": "hello", "token": token}))
                assert await until_closed(ws) == ([], 4003)


async def test_welcome_has_the_shape_of_the_protocol(services: Services, world: World) -> None:
    """`welcome` names the connection, the principal, the server time, the heartbeat and each channel's start."""
    device_id, token = await add_device(services, world.branch_a, DeviceKind.KIOSK)
    async with live_server(services) as live, raw_socket(live.ws) as ws:
        before = utcnow().replace(microsecond=0)
        welcome = await say_hello(ws, token)
    assert set(welcome) == {"type", "data"}
    data = welcome["data"]
    assert set(data) == {"connection_id", "principal", "server_time", "heartbeat_s", "channels", "locale"}
    assert data["locale"] is None  # none asked: the branch's default
    assert isinstance(data["connection_id"], str) and data["connection_id"]
    assert data["principal"] == {"kind": "device", "id": device_id, "device_kind": "kiosk", "branch_id": world.branch_a}
    assert data["server_time"].endswith("Z")
    server_time = datetime.fromisoformat(data["server_time"].replace("Z", "+00:00"))
    assert before <= server_time <= utcnow()
    # An integer where the protocol shows one: typed clients parse `20`, not `20.0`, into an int.
    assert data["heartbeat_s"] == services.settings.WS_HEARTBEAT_S
    assert type(data["heartbeat_s"]) is int
    menu, own = names.branch_menu(world.branch_a), names.device(device_id)
    assert set(data["channels"]) == {menu, own}
    for status in data["channels"].values():
        assert set(status) == {"seq", "epoch", "resumed"}
        assert status["seq"] == 0 and status["resumed"] is False
        assert isinstance(status["epoch"], str) and status["epoch"]


async def test_welcome_of_a_user_names_its_role_and_subscribes_nothing(services: Services, world: World) -> None:
    """A staff user is told who it is and starts with no channel (users subscribe themselves)."""
    async with live_server(services) as live, raw_socket(live.ws) as ws:
        data = (await say_hello(ws, bearer(world.staff_a.headers)))["data"]
        assert data["principal"]["kind"] == "user"
        assert data["principal"]["id"] == world.staff_a.id
        assert data["principal"]["branch_id"] == world.branch_a
        assert data["principal"]["role"] == "staff"
        assert data["channels"] == {}
        await still_open(ws)


AUTO_CHANNELS: dict[DeviceKind, Callable[[int, int], set[str]]] = {
    DeviceKind.KIOSK: lambda branch, device: {names.branch_menu(branch), names.device(device)},
    DeviceKind.PAYMENT_TERMINAL: lambda branch, device: {names.device(device)},
    DeviceKind.KITCHEN_DISPLAY: lambda branch, device: {names.branch_kitchen(branch), names.branch_menu(branch)},
    DeviceKind.ORDER_BOARD: lambda branch, device: {names.branch_board(branch)},
}


@pytest.mark.parametrize("kind", list(AUTO_CHANNELS), ids=str)
async def test_each_device_kind_gets_its_channels_and_a_snapshot_of_each(
    services: Services, world: World, kind: DeviceKind
) -> None:
    """On hello a device is subscribed to its kind's channels (PROTOCOL.md) and sent one snapshot per channel."""
    device_id, token = await add_device(services, world.branch_a, kind)
    expected = AUTO_CHANNELS[kind](world.branch_a, device_id)
    async with live_server(services) as live, raw_socket(live.ws) as ws:
        channels = (await say_hello(ws, token))["data"]["channels"]
        assert set(channels) == expected
        snapshots = [await recv(ws) for _ in expected]
        assert {frame["type"] for frame in snapshots} == {"snapshot"}
        assert {frame["channel"] for frame in snapshots} == expected
        for frame in snapshots:
            assert (frame["seq"], frame["epoch"]) == (
                channels[frame["channel"]]["seq"],
                channels[frame["channel"]]["epoch"],
            )
            assert isinstance(frame["data"], dict)
        await still_open(ws)
