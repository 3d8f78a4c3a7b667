"""A connection's token over time, through a real server: closed with 4001 when it expires, kept
past the old expiry by `auth.refresh`, and a refused or failed refresh that changes nothing.
"""

from __future__ import annotations

import asyncio
import uuid
from datetime import datetime, timedelta
from typing import Any

import httpx
import pytest

from channels import names
from channels.client import CommandFailed, DeviceClient
from persistence.base import rfc3339, utcnow
from persistence.database import Database
from persistence.enums import DeviceKind
from server.auth.known_principals import KnownPrincipals
from server.services import Services
from tests.live import add_device, free_port, live_server
from tests.realtime.socket_helpers import TIMEOUT_S, _expired, bearer, raw_socket, say_hello, until_closed
from tests.world import World, login_as


def _short_lived(services: Services, kind: str, ident: int, **claims: Any) -> tuple[str, datetime]:
    """An access token that expires in 1 to 2 s (JWT expiry is in whole seconds), and its expiry."""
    issued = utcnow() - services.tokens.access_ttl + timedelta(seconds=2)
    token, issued_claims = services.tokens.issue(kind, ident, now=issued, **claims)  # type: ignore[arg-type]
    return token, issued_claims.expires_at


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
