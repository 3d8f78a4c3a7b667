"""The socket endpoint's connection behaviour through a real server: handshake, frames, limits,
token refresh and expiry, revocation, slow consumers, graceful shutdown and metrics (PROTOCOL.md).
"""

from __future__ import annotations

import asyncio
import json
import secrets
import socket
import time
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import httpx
import pytest
import websockets
from prometheus_client.parser import text_string_to_metric_families
from pydantic import BaseModel
from sqlalchemy import update
from websockets.asyncio.client import ClientConnection

from channels import names
from channels.client import CommandFailed, DeviceClient
from persistence.base import rfc3339, utcnow
from persistence.database import Database
from persistence.enums import DeviceKind
from persistence.tables import Device, Session, User
from server.app import build_services
from server.auth.known_principals import KnownPrincipals
from server.auth.tokens import TokenCodec
from server.commands import command_registry
from server.commands.router import CommandContext, CommandRegistry, CommandSpec, Who
from server.services import Services
from server.settings import Settings
from tests.live import add_device, free_port, live_server, socket_limits
from tests.rows import add_item
from tests.world import World, login_as

# Small limits, so that abuse and size tests need few and small frames.
STRICT_LIMITS = {"WS_MAX_BAD_FRAMES": 3, "WS_MAX_MESSAGE_BYTES": 1024}
TIMEOUT_S = 5.0


def bearer(actor_headers: dict[str, str]) -> str:
    """The raw access token in an actor's Authorization header."""
    return actor_headers["Authorization"].split()[1]


@asynccontextmanager
async def raw_socket(url: str, **options: Any) -> AsyncIterator[ClientConnection]:
    """A bare WebSocket to the server, for what `DeviceClient` hides: frame order, close codes, silence."""
    async with websockets.connect(url, max_size=None, open_timeout=TIMEOUT_S, close_timeout=1, **options) as ws:
        yield ws


async def recv(ws: ClientConnection, limit_s: float = TIMEOUT_S) -> dict[str, Any]:
    """The next frame, parsed."""
    frame: dict[str, Any] = json.loads(await asyncio.wait_for(ws.recv(), limit_s))
    return frame


async def say_hello(ws: ClientConnection, token: str, **extra: Any) -> dict[str, Any]:
    """Say hello; the `welcome` frame."""
    await ws.send(json.dumps({"type": "hello", "token": token, **extra}))
    welcome = await recv(ws)
    assert welcome["type"] == "welcome", welcome
    return welcome


async def until_closed(ws: ClientConnection, limit_s: float = TIMEOUT_S) -> tuple[list[dict[str, Any]], int | None]:
    """Every frame the server sends until it closes, and its close code."""
    received: list[dict[str, Any]] = []
    try:
        async with asyncio.timeout(limit_s):
            while True:
                received.append(json.loads(await ws.recv()))
    except websockets.ConnectionClosed as closed:
        return received, closed.rcvd.code if closed.rcvd else None


async def eventually(condition: Callable[[], bool]) -> None:
    """Wait until `condition` holds (the server changes it in another task), for at most TIMEOUT_S."""
    for _ in range(int(TIMEOUT_S / 0.02)):
        if condition():
            return
        await asyncio.sleep(0.02)
    raise AssertionError("the condition never held")


async def still_open(ws: ClientConnection) -> None:
    """A ping round trip: proves the connection is open and nothing else was queued before the pong."""
    await ws.send('{"type":"ping"}')
    assert await recv(ws) == {"type": "pong"}


@asynccontextmanager
async def services_with(settings: Settings, db: Database, **overrides: Any) -> AsyncIterator[Services]:
    """Services like the `services` fixture's (same database, Redis keys of their own) with some settings changed."""
    built = build_services(settings.model_copy(update=overrides), db=db, prefix=f"test:{uuid.uuid4()}")
    try:
        yield built
    finally:
        await built.stop()
        await built.backend.close()


@pytest.fixture
async def strict(settings: Settings, db: Database, world: World) -> AsyncIterator[Services]:
    """Services whose bad-frame and frame-size limits are small (the world's tokens work with them)."""
    async with services_with(settings, db, **STRICT_LIMITS) as built:
        yield built


async def _update(services: Services, statement: Any) -> None:
    async with services.db.session() as session:
        await session.execute(statement)


def _short_lived(services: Services, kind: str, ident: int, **claims: Any) -> tuple[str, datetime]:
    """An access token that expires in 1 to 2 s (JWT expiry is in whole seconds), and its expiry."""
    issued = utcnow() - services.tokens.access_ttl + timedelta(seconds=2)
    token, issued_claims = services.tokens.issue(kind, ident, now=issued, **claims)  # type: ignore[arg-type]
    return token, issued_claims.expires_at


# -- handshake ---------------------------------------------------------------------------


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


def _expired(services: Services, device_id: int) -> str:
    token, _ = services.tokens.issue("device", device_id, secret_version=1, now=utcnow() - timedelta(days=2))
    return token


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


# -- auth.refresh and expiry -------------------------------------------------------------


async def test_a_connection_whose_token_expires_is_closed_4001(services: Services, world: World) -> None:
    """Without `auth.refresh`, the connection is closed with 4001 when its token expires."""
    session_id = services.tokens.decode(bearer(world.staff_a.headers)).session_id
    async with live_server(services) as live, raw_socket(live.ws) as ws:
        token, expires_at = _short_lived(services, "user", world.staff_a.id, session_id=session_id)
        await say_hello(ws, token)
        received, code = await until_closed(ws)
        closed_at = utcnow()
    assert (received, code) == ([], 4001)
    assert expires_at <= closed_at + timedelta(milliseconds=100)
    assert closed_at - expires_at < timedelta(seconds=1)


async def test_refresh_with_a_new_token_keeps_the_connection_past_the_old_expiry(
    services: Services, world: World
) -> None:
    """`auth.refresh` with a new token of the same device answers its expiry and the connection outlives the old."""
    device_id, _ = await add_device(services, world.branch_a, DeviceKind.PAYMENT_TERMINAL)
    fresh, fresh_claims = services.tokens.issue("device", device_id, secret_version=1)
    async with live_server(services) as live:
        short, expires_at = _short_lived(services, "device", device_id, secret_version=1)
        async with DeviceClient(live.ws, short) as terminal:
            reply = await terminal.command("auth.refresh", {"token": fresh}, timeout=TIMEOUT_S)
            assert reply == {"expires_at": rfc3339(fresh_claims.expires_at)}
            await asyncio.sleep((expires_at - utcnow()).total_seconds() + 0.5)
            assert terminal.close_code is None
            assert (await terminal.request("unsubscribe", {"channel": names.device(device_id)}))["ok"] is True


async def test_a_refused_refresh_changes_nothing_and_the_old_expiry_holds(services: Services, world: World) -> None:
    """An expired token or another principal's token in `auth.refresh` is `unauthorized`; the original expiry holds."""
    device_id, _ = await add_device(services, world.branch_a, DeviceKind.PAYMENT_TERMINAL)
    _, other_token = await add_device(services, world.branch_a, DeviceKind.PAYMENT_TERMINAL)
    async with live_server(services) as live:
        short, expires_at = _short_lived(services, "device", device_id, secret_version=1)
        async with DeviceClient(live.ws, short) as terminal:
            for refused in (_expired(services, device_id), other_token, bearer(world.admin.headers)):
                with pytest.raises(CommandFailed) as failed:
                    await terminal.command("auth.refresh", {"token": refused}, timeout=TIMEOUT_S)
                assert failed.value.code == "unauthorized"
            assert await terminal.wait_closed(TIMEOUT_S) == 4001
            closed_at = utcnow()
    assert expires_at <= closed_at + timedelta(milliseconds=100)
    assert closed_at - expires_at < timedelta(seconds=1)


async def test_a_refresh_while_the_database_is_down_is_unavailable_and_the_connection_stays(
    services: Services, world: World
) -> None:
    """`auth.refresh` that cannot read its principal answers `unavailable`; the connection carries on as it was."""
    # A session the socket has not used: nothing of it is pinned, so the refresh needs the database.
    newer = await login_as(services, world.staff_a.id)
    async with live_server(services) as live, DeviceClient(live.ws, bearer(world.staff_a.headers)) as staff:
        up, known = services.db, services.principals
        services.db = Database.from_url(f"postgresql+asyncpg://postgres@127.0.0.1:{free_port()}/kiosk")
        services.principals = KnownPrincipals(services.db, services.broker, ttl_s=60)
        try:
            with pytest.raises(CommandFailed) as failed:
                await staff.command("auth.refresh", {"token": bearer(newer)}, timeout=TIMEOUT_S)
        finally:
            await services.db.dispose()
            services.db, services.principals = up, known
        assert failed.value.code == "unavailable"
        assert (await staff.request("no.such.command"))["error"]["code"] == "invalid"
        assert staff.close_code is None


async def test_after_refresh_with_another_session_the_socket_follows_the_new_session(
    services: Services, world: World
) -> None:
    """Refreshed with a token of a newer login, the socket survives logout of the old session and not of the new."""
    newer = await login_as(services, world.staff_a.id)
    menu = names.branch_menu(world.branch_a)
    async with (
        live_server(services) as live,
        httpx.AsyncClient(base_url=live.http, timeout=TIMEOUT_S) as http,
        DeviceClient(live.ws, bearer(world.staff_a.headers)) as staff,
    ):
        await staff.command("subscribe", {"channel": menu}, timeout=TIMEOUT_S)
        await staff.command("auth.refresh", {"token": bearer(newer)}, timeout=TIMEOUT_S)
        assert (await http.post("/api/v1/auth/logout", headers=world.staff_a.headers)).status_code == 204
        # Published after the logout's close message, so it arrives after that message was handled.
        await services.broker.publish(menu, str(uuid.uuid4()), "test.marker", "{}", "2026-01-01T00:00:00Z")
        await staff.next_event(menu, "test.marker", timeout=TIMEOUT_S)
        assert staff.close_code is None
        assert (await http.post("/api/v1/auth/logout", headers=newer)).status_code == 204
        assert await staff.wait_closed(TIMEOUT_S) == 4001


# -- revocation through the broker -------------------------------------------------------


async def _disable_device(http: httpx.AsyncClient, world: World, device_id: int, user_id: int) -> httpx.Response:
    return await http.post(f"/api/v1/devices/{device_id}/disable", headers=world.admin.headers)


async def _rotate_secret(http: httpx.AsyncClient, world: World, device_id: int, user_id: int) -> httpx.Response:
    return await http.post(f"/api/v1/devices/{device_id}/rotate-secret", headers=world.admin.headers)


async def _disable_user(http: httpx.AsyncClient, world: World, device_id: int, user_id: int) -> httpx.Response:
    return await http.delete(f"/api/v1/users/{user_id}", headers=world.admin.headers)


async def _logout(http: httpx.AsyncClient, world: World, device_id: int, user_id: int) -> httpx.Response:
    return await http.post("/api/v1/auth/logout", headers=world.staff_a.headers)


Revocation = Callable[[httpx.AsyncClient, World, int, int], Awaitable[httpx.Response]]


@pytest.mark.parametrize(
    ("revoke", "victim", "code"),
    [
        (_disable_device, "device", 4003),
        (_rotate_secret, "device", 4001),
        (_disable_user, "user", 4003),
        (_logout, "user", 4001),
    ],
    ids=["disable-device", "rotate-secret", "disable-user", "logout"],
)
async def test_revocation_over_rest_closes_the_open_socket_at_once(
    services: Services, world: World, revoke: Revocation, victim: str, code: int
) -> None:
    """Disabling or rotating a device, disabling a user or logging out closes its open socket within 1 s."""
    device_id, device_token = await add_device(services, world.branch_a, DeviceKind.KIOSK)
    _, bystander_token = await add_device(services, world.branch_a, DeviceKind.KIOSK)
    token = device_token if victim == "device" else bearer(world.staff_a.headers)
    async with (
        live_server(services) as live,
        httpx.AsyncClient(base_url=live.http, timeout=TIMEOUT_S) as http,
        DeviceClient(live.ws, token) as target,
        DeviceClient(live.ws, bystander_token) as bystander,
    ):
        response = await revoke(http, world, device_id, world.staff_a.id)
        assert response.is_success, response.text
        started = time.monotonic()
        assert await target.wait_closed(TIMEOUT_S) == code
        assert time.monotonic() - started < 1
        assert bystander.close_code is None
        assert (await bystander.request("no.such.command"))["error"]["code"] == "invalid"


# -- slow consumers ----------------------------------------------------------------------


async def test_a_client_that_stops_reading_is_closed_4008_and_others_get_every_event(
    services: Services, world: World
) -> None:
    """A subscriber that stops reading is dropped with 4008 once its unsent bytes pass the bound; the others miss
    nothing."""
    # close_timeout_s: this client does read again, later.
    limits = socket_limits(services, send_buffer_bytes=64 * 1024, close_timeout_s=60.0)
    _, slow_token = await add_device(services, world.branch_a, DeviceKind.KIOSK)
    fast_tokens = [(await add_device(services, world.branch_a, DeviceKind.KIOSK))[1] for _ in range(2)]
    menu = names.branch_menu(world.branch_a)
    overflows = "ws_send_queue_overflows_total"
    async with live_server(services, limits) as live:
        host, port = live.http.removeprefix("http://").split(":")
        # A small receive buffer and a one-frame client queue: the slow side's unread bytes soon fill
        # the server's socket buffer, and the server's writer for it has to wait.
        raw = socket.socket()
        raw.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 8192)
        raw.connect((host, int(port)))
        raw.setblocking(False)
        async with (
            raw_socket(live.ws, sock=raw, max_queue=1) as slow,
            DeviceClient(live.ws, fast_tokens[0]) as fast,
            DeviceClient(live.ws, fast_tokens[1]) as other,
        ):
            await say_hello(slow, slow_token)
            published = 0
            async with asyncio.timeout(30):
                while services.metrics.registry.get_sample_value(overflows) == 0:
                    assert published < 1000, "the slow client was never dropped"
                    # Random text: permessage-deflate would shrink anything repetitive to nothing.
                    blob = json.dumps({"blob": secrets.token_urlsafe(24_000)})
                    await services.broker.publish(menu, str(uuid.uuid4()), "test.blob", blob, "2026-01-01T00:00:00Z")
                    published += 1
                    # Let the fast clients' writers run, as a real stream of events would.
                    await asyncio.sleep(0.002)
            for client in (fast, other):
                assert (await client.next_frame(TIMEOUT_S))["type"] == "snapshot"
                seqs = [(await client.next_event(menu, timeout=TIMEOUT_S))["seq"] for _ in range(published)]
                assert seqs == list(range(1, published + 1))
                assert client.close_code is None
            # Once the slow client reads again it finds what was already on its way, then the 4008 close.
            received, code = await until_closed(slow, limit_s=30)
            assert code == 4008
            events = [frame["seq"] for frame in received if frame["type"] == "event"]
            # In order with no gap, and never the event that found it too far behind.
            assert 0 < len(events) < published and events == list(range(1, len(events) + 1))
    assert services.metrics.registry.get_sample_value(overflows) == 1


async def test_a_client_that_never_reads_again_is_dropped_after_the_close_timeout(
    services: Services, world: World
) -> None:
    """Its 4008 close frame waits behind what it does not read; after the close timeout the server lets it go."""
    limits = socket_limits(services, send_buffer_bytes=64 * 1024, close_timeout_s=0.5)
    _, token = await add_device(services, world.branch_a, DeviceKind.KIOSK)
    menu = names.branch_menu(world.branch_a)
    async with live_server(services, limits) as live:
        host, port = live.http.removeprefix("http://").split(":")
        raw = socket.socket()
        raw.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 8192)
        raw.connect((host, int(port)))
        raw.setblocking(False)
        async with raw_socket(live.ws, sock=raw, max_queue=1) as silent:
            await say_hello(silent, token)
            assert not services.hub.empty.is_set()
            async with asyncio.timeout(30):
                while not services.hub.empty.is_set():
                    blob = json.dumps({"blob": secrets.token_urlsafe(24_000)})
                    await services.broker.publish(menu, str(uuid.uuid4()), "test.blob", blob, "2026-01-01T00:00:00Z")
                    await asyncio.sleep(0.005)
            # The server dropped it (no reader, no close handshake): nothing of it is left in the hub.
            assert services.metrics.registry.get_sample_value("ws_send_queue_overflows_total") == 1


# -- graceful shutdown -------------------------------------------------------------------


class _Nothing(BaseModel):
    """No data."""


@dataclass
class SlowCommand:
    """The app's commands plus a kiosk command `test.slow` that takes half a second; `started` once it has begun."""

    commands: CommandRegistry
    started: asyncio.Event


@pytest.fixture
def slow_command() -> SlowCommand:
    """The app's commands with `test.slow` added."""
    started = asyncio.Event()

    async def slow(ctx: CommandContext, data: _Nothing) -> dict[str, Any]:
        started.set()
        await asyncio.sleep(0.5)
        return {"done": True}

    commands = command_registry()
    commands.commands["test.slow"] = CommandSpec(
        "test.slow", _Nothing, slow, Who(devices=frozenset({DeviceKind.KIOSK})), "slow", None, ()
    )
    return SlowCommand(commands, started)


async def test_shutdown_lets_the_command_in_flight_reply_then_closes_1001(
    services: Services, world: World, slow_command: SlowCommand
) -> None:
    """Stopping the server (SIGTERM) lets the command being handled send its reply, then closes with 1001."""
    _, token = await add_device(services, world.branch_a, DeviceKind.KIOSK)
    _, idle_token = await add_device(services, world.branch_a, DeviceKind.KIOSK)
    async with live_server(services, commands=slow_command.commands) as live:
        async with DeviceClient(live.ws, token) as kiosk, DeviceClient(live.ws, idle_token) as idle:
            in_flight = asyncio.get_running_loop().create_task(kiosk.request("test.slow", timeout=TIMEOUT_S))
            await asyncio.wait_for(slow_command.started.wait(), TIMEOUT_S)
            live.server.should_exit = True
            reply = await in_flight
            assert (reply["ok"], reply["data"]) == (True, {"done": True})
            assert await kiosk.wait_closed(TIMEOUT_S) == 1001
            assert await idle.wait_closed(TIMEOUT_S) == 1001
            await asyncio.wait_for(live.task, TIMEOUT_S)


# -- metrics -----------------------------------------------------------------------------


def _samples(text: str) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


async def test_metrics_show_the_realtime_traffic(services: Services, world: World) -> None:
    """`/metrics` counts connections by kind, commands by outcome with their latency, events and overflows."""
    item_id = await add_item(services.db, world.branch_a, stock=5)
    _, kiosk_token = await add_device(services, world.branch_a, DeviceKind.KIOSK)
    menu = names.branch_menu(world.branch_a)
    async with (
        live_server(services) as live,
        httpx.AsyncClient(base_url=live.http, timeout=TIMEOUT_S) as http,
        DeviceClient(live.ws, kiosk_token) as kiosk,
    ):
        async with DeviceClient(live.ws, bearer(world.staff_a.headers)) as staff:
            await staff.command("item.set_available", {"item_id": item_id, "available": False}, timeout=TIMEOUT_S)
            await kiosk.next_event(menu, "stock.changed", timeout=TIMEOUT_S)
            with pytest.raises(CommandFailed):
                await kiosk.command("item.set_available", {"item_id": item_id, "available": True}, timeout=TIMEOUT_S)
            during = _samples((await http.get("/metrics")).text)
        await staff.wait_closed(TIMEOUT_S)
        # The server notices the staff socket left once its reader sees the close; give it a moment.
        await eventually(lambda: services.metrics.registry.get_sample_value("ws_connections", {"kind": "user"}) == 0)
        after = _samples((await http.get("/metrics")).text)

    def value(samples: dict[tuple[str, frozenset[tuple[str, str]]], float], name: str, **labels: str) -> float:
        return samples[(name, frozenset(labels.items()))]

    assert value(during, "ws_connections", kind="kiosk") == 1
    assert value(during, "ws_connections", kind="user") == 1
    assert value(after, "ws_connections", kind="user") == 0
    assert value(during, "ws_commands_total", command="item.set_available", outcome="ok") == 1
    assert value(during, "ws_commands_total", command="item.set_available", outcome="forbidden") == 1
    assert value(during, "ws_command_duration_seconds_count", command="item.set_available") == 2
    assert value(during, "ws_command_duration_seconds_sum", command="item.set_available") > 0
    assert value(during, "ws_events_delivered_total") == 1
    assert value(during, "events_published_total") == 1
    assert value(during, "ws_send_queue_overflows_total") == 0
    assert value(during, "outbox_lag_seconds") == 0
