"""Every REST route enforces its permission: a caller without it gets 403 before anything else happens."""

from __future__ import annotations

import re

import httpx
import pytest

from persistence.tables import Role
from server.api.routing import Operation
from server.app import API_ROUTERS
from server.services import Services
from tests.world import World, add_user, login_as

OPERATIONS = [op for router in API_ROUTERS for op in router.operations]
# Routes any signed-in principal may use on itself.
SELF_SERVICE = {("GET", "/auth/me"), ("POST", "/auth/logout")}


def _concrete(path: str) -> str:
    return "/api/v1" + re.sub(r"\{[^}]+\}", "1", path)


def test_every_private_route_declares_a_permission() -> None:
    """No route is reachable by every signed-in user by accident."""
    unguarded = [
        f"{op.method} {op.path}"
        for op in OPERATIONS
        if not op.public and op.permission is None and (op.method, op.path) not in SELF_SERVICE
    ]
    assert unguarded == []


@pytest.mark.parametrize(
    "op", [op for op in OPERATIONS if op.permission is not None], ids=lambda op: f"{op.method} {op.path}"
)
async def test_a_role_without_the_permission_gets_403(
    op: Operation, client: httpx.AsyncClient, services: Services, world: World
) -> None:
    """A user whose role lacks the route's permission is refused with `forbidden`."""
    async with services.db.session() as session:
        role = Role(name="nothing", permissions=[])
        session.add(role)
        await session.flush()
        role_id = role.id
    user_id = await add_user(services.db, "powerless", role_id, world.branch_a)
    headers = await login_as(services, user_id)
    response = await client.request(op.method, _concrete(op.path), headers=headers, json={})
    assert response.status_code == 403, response.text
    assert response.json()["error"]["code"] == "forbidden"


@pytest.mark.parametrize("op", [op for op in OPERATIONS if not op.public], ids=lambda op: f"{op.method} {op.path}")
async def test_no_token_gets_401(op: Operation, client: httpx.AsyncClient, world: World) -> None:
    """Every private route refuses an anonymous caller with `unauthorized`."""
    response = await client.request(op.method, _concrete(op.path), json={})
    assert response.status_code == 401, response.text
    assert response.json()["error"]["code"] == "unauthorized"
