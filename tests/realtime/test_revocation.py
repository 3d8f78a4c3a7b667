"""Revocation through the broker: a device or user disabled, a secret rotated or a logout over REST
closes the open socket at once, with 4003 or 4001.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable

import httpx
import pytest

from channels.client import DeviceClient
from persistence.enums import DeviceKind
from server.services import Services
from tests.live import add_device, live_server
from tests.realtime.socket_helpers import TIMEOUT_S, bearer
from tests.world import World


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
