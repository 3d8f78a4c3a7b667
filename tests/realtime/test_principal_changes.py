"""A change to who a principal is reaches its live sockets: moved, re-roled or re-permissioned users and
disabled branches are closed at once, and the tokens issued before the change stop working.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from typing import Any

import httpx
import pytest
import websockets
from sqlalchemy import update

from channels import names
from channels.client import DeviceClient
from persistence.enums import DeviceKind
from persistence.tables import User
from server.auth.permissions import DEFAULT_ROLES, Permission
from server.services import Services
from tests.live import add_device, live_server
from tests.world import World, login_as

TIMEOUT_S = 5.0

Change = Callable[[httpx.AsyncClient, World], Awaitable[httpx.Response]]


def _bearer(headers: dict[str, str]) -> str:
    return headers["Authorization"].removeprefix("Bearer ")


async def _move_to_other_branch(http: httpx.AsyncClient, world: World) -> httpx.Response:
    return await http.patch(
        f"/api/v1/users/{world.staff_a.id}", json={"branch_id": world.branch_b}, headers=world.admin.headers
    )


async def _give_another_role(http: httpx.AsyncClient, world: World) -> httpx.Response:
    return await http.patch(
        f"/api/v1/users/{world.staff_a.id}", json={"role_id": world.roles["manager"]}, headers=world.admin.headers
    )


async def _narrow_the_role(http: httpx.AsyncClient, world: World) -> httpx.Response:
    _, permissions = DEFAULT_ROLES["staff"]
    kept = sorted(str(p) for p in permissions if p != Permission.ORDERS_WRITE)
    return await http.patch(
        f"/api/v1/roles/{world.roles['staff']}", json={"permissions": kept}, headers=world.admin.headers
    )


@pytest.mark.parametrize(
    "change",
    [_move_to_other_branch, _give_another_role, _narrow_the_role],
    ids=["branch", "role", "role-permissions"],
)
async def test_a_changed_user_is_closed_4001_and_its_old_token_stops_working(
    services: Services, world: World, change: Change
) -> None:
    """Moving a user, giving it another role or changing its role's permissions closes its socket within 1 s."""
    token = _bearer(world.staff_a.headers)
    _, bystander_token = await add_device(services, world.branch_a, DeviceKind.KIOSK)
    async with (
        live_server(services) as live,
        httpx.AsyncClient(base_url=live.http, timeout=TIMEOUT_S) as http,
        DeviceClient(live.ws, token) as staff,
        DeviceClient(live.ws, _bearer(world.manager_b.headers)) as manager,
        DeviceClient(live.ws, bystander_token) as bystander,
    ):
        response = await change(http, world)
        assert response.is_success, response.text
        assert await staff.wait_closed(1.0) == 4001
        # The token of before the change is refused, on the socket and over REST alike.
        async with websockets.connect(live.ws) as ws:
            await ws.send(json.dumps({"type": "hello", "token": token}))
            with pytest.raises(websockets.ConnectionClosed) as closed:
                await ws.recv()
            assert closed.value.rcvd is not None and closed.value.rcvd.code == 4001
        assert (await http.get("/api/v1/auth/me", headers=world.staff_a.headers)).status_code == 401
        # Nobody else is touched: a device of the same branch, a user of another role.
        for other in (bystander, manager):
            assert (await other.request("no.such.command"))["error"]["code"] == "invalid"
            assert other.close_code is None


async def test_a_change_that_does_not_touch_access_keeps_the_socket(services: Services, world: World) -> None:
    """Renaming a user, or sending its current branch and role again, leaves its sockets and tokens alone."""
    same = {"branch_id": world.branch_a, "role_id": world.roles["staff"], "full_name": "Staff of A"}
    async with (
        live_server(services) as live,
        httpx.AsyncClient(base_url=live.http, timeout=TIMEOUT_S) as http,
        DeviceClient(live.ws, _bearer(world.staff_a.headers)) as staff,
    ):
        response = await http.patch(f"/api/v1/users/{world.staff_a.id}", json=same, headers=world.admin.headers)
        assert response.is_success, response.text
        assert (await staff.request("no.such.command"))["error"]["code"] == "invalid"
        assert staff.close_code is None
        assert (await http.get("/api/v1/auth/me", headers=world.staff_a.headers)).status_code == 200


async def test_disabling_a_branch_closes_its_devices_and_staff_4003(services: Services, world: World) -> None:
    """A disabled branch closes the sockets of its devices and users with 4003; other branches carry on."""
    _, kiosk_token = await add_device(services, world.branch_a, DeviceKind.KIOSK)
    _, other_token = await add_device(services, world.branch_b, DeviceKind.KIOSK)
    async with (
        live_server(services) as live,
        httpx.AsyncClient(base_url=live.http, timeout=TIMEOUT_S) as http,
        DeviceClient(live.ws, kiosk_token) as kiosk,
        DeviceClient(live.ws, _bearer(world.staff_a.headers)) as staff,
        DeviceClient(live.ws, other_token) as other,
    ):
        response = await http.patch(
            f"/api/v1/branches/{world.branch_a}", json={"is_active": False}, headers=world.admin.headers
        )
        assert response.is_success, response.text
        assert await kiosk.wait_closed(1.0) == 4003
        assert await staff.wait_closed(1.0) == 4003
        reply: dict[str, Any] = await other.request("no.such.command")
        assert reply["error"]["code"] == "invalid"
        assert other.close_code is None


async def test_a_refresh_into_changed_access_closes_4001(services: Services, world: World) -> None:
    """`auth.refresh` with a token whose user now has another branch closes the socket: it may not keep its channels."""
    orders = names.branch_orders(world.branch_a)
    async with (
        live_server(services) as live,
        DeviceClient(live.ws, _bearer(world.staff_a.headers)) as staff,
    ):
        await staff.command("subscribe", {"channel": orders}, timeout=TIMEOUT_S)
        # Changed behind the API's back, so no close message was sent: only the refresh can notice.
        async with services.db.session() as session:
            await session.execute(update(User).where(User.id == world.staff_a.id).values(branch_id=world.branch_b))
        fresh = await login_as(services, world.staff_a.id)
        await staff.send_raw(json.dumps({"type": "auth.refresh", "id": "r1", "data": {"token": _bearer(fresh)}}))
        assert await staff.wait_closed(TIMEOUT_S) == 4001
