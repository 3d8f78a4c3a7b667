"""A socket's hello takes its principal pinned in the broker (server/auth/known_principals.py).

A reconnect asks the database nothing about who it is; every change that ends or narrows
what the principal may do still refuses the very next hello, because the change moves the
principal's channel before its REST call answers.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from datetime import timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy import event, update

from channels.client import DeviceClient, HandshakeRefused
from persistence.base import utcnow
from persistence.enums import DeviceKind
from persistence.tables import Session
from server.services import Services
from tests.live import add_device, live_server
from tests.world import PASSWORD, World, login_as

TIMEOUT_S = 10
# The tables the principal check reads.
PRINCIPAL_TABLES = ("devices", "sessions", "users", "roles", "branches")


def bearer(headers: dict[str, str]) -> str:
    """The token of Authorization headers."""
    return headers["Authorization"].split()[1]


@contextmanager
def statements(services: Services) -> Iterator[list[str]]:
    """Every SQL statement the server runs meanwhile outside its background workers.

    The workers (cart expiry, dayparts, the outbox relay, ...) run in tasks they name, and may read
    branches at any moment; a connection is served in an unnamed task.
    """
    seen: list[str] = []

    def note(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        task = asyncio.current_task()
        if task is None or task.get_name().startswith("Task-"):
            seen.append(statement)

    engine = services.db.engine.sync_engine
    event.listen(engine, "before_cursor_execute", note)
    try:
        yield seen
    finally:
        event.remove(engine, "before_cursor_execute", note)


def reads_principal(statement: str) -> bool:
    """True for a statement reading any table the principal check reads."""
    words = statement.lower().replace('"', " ").replace(",", " ").split()
    return any(table in words for table in PRINCIPAL_TABLES)


async def test_a_reconnect_reads_no_principal_from_the_database(services: Services, world: World) -> None:
    """The first hello of a device and of a user reads the database; the next ones, resumed, read nothing of it."""
    _, device_token = await add_device(services, world.branch_a, DeviceKind.KITCHEN_DISPLAY)
    async with live_server(services) as live:
        for token in (device_token, bearer(world.staff_a.headers)):
            with statements(services) as first:
                async with DeviceClient(live.ws, token) as client:
                    resume = client.resume_state()
            assert any(reads_principal(statement) for statement in first), first
            with statements(services) as again:
                async with DeviceClient(live.ws, token, resume=resume) as client:
                    assert client.close_code is None
            assert not [statement for statement in again if reads_principal(statement)]


Change = Callable[[httpx.AsyncClient, World, int], Awaitable[None]]


async def _disable_device(http: httpx.AsyncClient, world: World, device_id: int) -> None:
    response = await http.post(f"/api/v1/devices/{device_id}/disable", headers=world.admin.headers)
    assert response.status_code == 204, response.text


async def _rotate_secret(http: httpx.AsyncClient, world: World, device_id: int) -> None:
    response = await http.post(f"/api/v1/devices/{device_id}/rotate-secret", headers=world.admin.headers)
    assert response.status_code == 200, response.text


async def _disable_branch(http: httpx.AsyncClient, world: World, device_id: int) -> None:
    body = {"is_active": False}
    response = await http.patch(f"/api/v1/branches/{world.branch_a}", json=body, headers=world.admin.headers)
    assert response.status_code == 200, response.text


async def _disable_user(http: httpx.AsyncClient, world: World, device_id: int) -> None:
    response = await http.delete(f"/api/v1/users/{world.staff_a.id}", headers=world.admin.headers)
    assert response.status_code == 204, response.text


async def _logout(http: httpx.AsyncClient, world: World, device_id: int) -> None:
    response = await http.post("/api/v1/auth/logout", headers=world.staff_a.headers)
    assert response.status_code == 204, response.text


async def _narrow_role(http: httpx.AsyncClient, world: World, device_id: int) -> None:
    path = f"/api/v1/roles/{world.roles['staff']}"
    permissions = (await http.get(path, headers=world.admin.headers)).json()["permissions"]
    response = await http.patch(path, json={"permissions": permissions[1:]}, headers=world.admin.headers)
    assert response.status_code == 200, response.text


@pytest.mark.parametrize(
    ("change", "victim", "code"),
    [
        (_disable_device, "device", 4003),
        (_rotate_secret, "device", 4001),
        (_disable_branch, "device", 4003),
        (_disable_user, "user", 4001),
        (_logout, "user", 4001),
        (_narrow_role, "user", 4001),
        (_disable_branch, "user", 4003),
    ],
    ids=[
        "disable-device",
        "rotate-secret",
        "disable-branch-device",
        "disable-user",
        "logout",
        "narrow-role",
        "disable-branch-user",
    ],
)
async def test_a_change_refuses_the_next_hello_of_a_pinned_principal(
    services: Services, world: World, change: Change, victim: str, code: int
) -> None:
    """Once pinned by a hello, a device or user disabled, rotated, logged out or narrowed is refused at the next."""
    device_id, device_token = await add_device(services, world.branch_a, DeviceKind.KIOSK)
    token = device_token if victim == "device" else bearer(world.staff_a.headers)
    async with live_server(services) as live, httpx.AsyncClient(base_url=live.http, timeout=TIMEOUT_S) as http:
        for _ in range(2):
            async with DeviceClient(live.ws, token) as client:
                assert client.close_code is None
        await change(http, world, device_id)
        with pytest.raises(HandshakeRefused) as refused:
            await DeviceClient(live.ws, token).connect(TIMEOUT_S)
        assert refused.value.code == code


async def test_a_reused_refresh_token_closes_the_sessions_socket_and_refuses_its_hello(
    services: Services, world: World
) -> None:
    """A refresh token used twice ends its session: the socket of that session closes, and its token is refused."""
    async with live_server(services) as live, httpx.AsyncClient(base_url=live.http, timeout=TIMEOUT_S) as http:
        login = {"username": world.staff_a.username, "password": PASSWORD}
        pair = (await http.post("/api/v1/auth/login", json=login)).json()
        refreshed = await http.post("/api/v1/auth/refresh", json={"refresh_token": pair["refresh_token"]})
        assert refreshed.status_code == 200, refreshed.text
        token = refreshed.json()["access_token"]
        async with DeviceClient(live.ws, token) as client:
            reused = await http.post("/api/v1/auth/refresh", json={"refresh_token": pair["refresh_token"]})
            assert reused.status_code == 401
            assert reused.json()["error"]["message"] == "refresh token already used; the session is revoked"
            assert await client.wait_closed(TIMEOUT_S) == 4001
        with pytest.raises(HandshakeRefused) as refused:
            await DeviceClient(live.ws, token).connect(TIMEOUT_S)
        assert (refused.value.code, refused.value.reason) == (4001, "session ended")


async def test_a_pinned_session_past_its_end_is_refused(services: Services, world: World) -> None:
    """A pin keeps when its session ends: once that is past, the hello is refused though nothing was announced."""
    ends = utcnow() + timedelta(seconds=1)
    headers = await login_as(services, world.staff_a.id)
    async with services.db.session() as session:
        await session.execute(update(Session).where(Session.user_id == world.staff_a.id).values(expires_at=ends))
    token = bearer(headers)
    async with live_server(services) as live:
        async with DeviceClient(live.ws, token) as client:
            assert client.close_code is None
        await asyncio.sleep((ends - utcnow()).total_seconds() + 0.05)
        with pytest.raises(HandshakeRefused) as refused:
            await DeviceClient(live.ws, token).connect(TIMEOUT_S)
        assert (refused.value.code, refused.value.reason) == (4001, "session ended")
