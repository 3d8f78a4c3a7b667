"""REST auth: login, refresh rotation and reuse, logout, device tokens, rate limits."""

from __future__ import annotations

import httpx

from persistence.enums import DeviceKind
from persistence.tables import Device
from server.auth.passwords import hash_secret
from server.services import Services
from tests.world import PASSWORD, World

LOGIN = "/api/v1/auth/login"


async def _login(client: httpx.AsyncClient, username: str, password: str = PASSWORD) -> httpx.Response:
    return await client.post(LOGIN, json={"username": username, "password": password})


async def test_login_returns_a_token_pair_that_authenticates(client: httpx.AsyncClient, world: World) -> None:
    """A correct password gives tokens, and the access token identifies the user."""
    response = await _login(client, "manager.a")
    assert response.status_code == 200, response.text
    tokens = response.json()
    me = await client.get("/api/v1/auth/me", headers={"Authorization": f"Bearer {tokens['access_token']}"})
    assert me.status_code == 200
    assert me.json()["id"] == world.manager_a.id
    assert me.json()["role"] == "manager"
    assert me.json()["branch_id"] == world.branch_a


async def test_login_accepts_the_oauth2_password_form(client: httpx.AsyncClient, world: World) -> None:
    """Swagger UI's OAuth2 form logs in as well as JSON does."""
    response = await client.post(LOGIN, data={"username": "admin", "password": PASSWORD, "grant_type": "password"})
    assert response.status_code == 200, response.text
    assert response.json()["token_type"] == "bearer"


async def test_wrong_password_and_unknown_user_look_the_same(client: httpx.AsyncClient, world: World) -> None:
    """Neither reveals whether the username exists."""
    wrong = await _login(client, "admin", "nope")
    unknown = await _login(client, "nobody", "nope")
    assert wrong.status_code == unknown.status_code == 401
    assert wrong.json() == unknown.json()
    assert wrong.json()["error"]["code"] == "unauthorized"


async def test_login_body_errors_name_the_fields(client: httpx.AsyncClient, world: World) -> None:
    """A missing field is `invalid` with the field named."""
    response = await client.post(LOGIN, json={"username": "admin"})
    assert response.status_code == 422
    error = response.json()["error"]
    assert error["code"] == "invalid"
    assert [e["field"] for e in error["details"]["errors"]] == ["password"]


async def test_refresh_rotates_and_reuse_revokes_the_session(client: httpx.AsyncClient, world: World) -> None:
    """A refresh token works once; using it again ends the session for every token of it."""
    first = (await _login(client, "staff.a")).json()
    second = await client.post("/api/v1/auth/refresh", json={"refresh_token": first["refresh_token"]})
    assert second.status_code == 200, second.text
    rotated = second.json()
    assert rotated["refresh_token"] != first["refresh_token"]

    reuse = await client.post("/api/v1/auth/refresh", json={"refresh_token": first["refresh_token"]})
    assert reuse.status_code == 401
    # The stolen-token alarm revoked the session: the newest tokens are dead too.
    again = await client.post("/api/v1/auth/refresh", json={"refresh_token": rotated["refresh_token"]})
    assert again.status_code == 401
    me = await client.get("/api/v1/auth/me", headers={"Authorization": f"Bearer {rotated['access_token']}"})
    assert me.status_code == 401


async def test_logout_stops_the_access_token_at_once(client: httpx.AsyncClient, world: World) -> None:
    """After logout the same access token is refused."""
    tokens = (await _login(client, "admin")).json()
    headers = {"Authorization": f"Bearer {tokens['access_token']}"}
    assert (await client.get("/api/v1/auth/me", headers=headers)).status_code == 200
    assert (await client.post("/api/v1/auth/logout", headers=headers)).status_code == 204
    assert (await client.get("/api/v1/auth/me", headers=headers)).status_code == 401
    refresh = await client.post("/api/v1/auth/refresh", json={"refresh_token": tokens["refresh_token"]})
    assert refresh.status_code == 401


async def test_an_access_token_is_not_a_refresh_token(client: httpx.AsyncClient, world: World) -> None:
    """Token types are not interchangeable."""
    tokens = (await _login(client, "admin")).json()
    refresh = await client.post("/api/v1/auth/refresh", json={"refresh_token": tokens["access_token"]})
    assert refresh.status_code == 401
    me = await client.get("/api/v1/auth/me", headers={"Authorization": f"Bearer {tokens['refresh_token']}"})
    assert me.status_code == 401


async def test_missing_or_garbage_token_is_unauthorized(client: httpx.AsyncClient, world: World) -> None:
    """No token, or a forged one, gets 401 with the error shape."""
    assert (await client.get("/api/v1/auth/me")).json()["error"]["code"] == "unauthorized"
    forged = await client.get("/api/v1/auth/me", headers={"Authorization": "Bearer abc.def.ghi"})
    assert forged.status_code == 401


async def test_disabled_user_cannot_log_in_or_use_old_tokens(
    client: httpx.AsyncClient, services: Services, world: World
) -> None:
    """Disabling a user ends its access at once."""
    from persistence.tables import User

    async with services.db.session() as session:
        user = await session.get(User, world.staff_a.id)
        assert user is not None
        user.is_active = False
    assert (await client.get("/api/v1/auth/me", headers=world.staff_a.headers)).status_code == 403
    assert (await _login(client, "staff.a")).status_code == 403


async def test_device_token_from_id_and_secret(client: httpx.AsyncClient, services: Services, world: World) -> None:
    """A device exchanges its secret for a token; a rotated secret revokes old tokens."""
    async with services.db.session() as session:
        device = Device(
            branch_id=world.branch_a, kind=DeviceKind.KIOSK, name="Kiosk 1", secret_hash=await hash_secret("s3cret")
        )
        session.add(device)
        await session.flush()
        device_id = device.id
    bad = await client.post("/api/v1/auth/device", json={"device_id": device_id, "secret": "nope"})
    assert bad.status_code == 401
    good = await client.post("/api/v1/auth/device", json={"device_id": device_id, "secret": "s3cret"})
    assert good.status_code == 200, good.text
    body = good.json()
    assert (body["device_kind"], body["branch_id"]) == ("kiosk", world.branch_a)
    headers = {"Authorization": f"Bearer {body['access_token']}"}
    me = await client.get("/api/v1/auth/me", headers=headers)
    assert me.json()["kind"] == "device"

    async with services.db.session() as session:
        stored = await session.get(Device, device_id)
        assert stored is not None
        stored.secret_version += 1
    assert (await client.get("/api/v1/auth/me", headers=headers)).status_code == 401


async def test_a_disabled_branch_locks_out_its_users_but_not_admins(
    client: httpx.AsyncClient, services: Services, world: World
) -> None:
    """Closing a branch stops its staff's tokens; chain-wide admins keep working."""
    from persistence.tables import Branch

    async with services.db.session() as session:
        branch = await session.get(Branch, world.branch_a)
        assert branch is not None
        branch.is_active = False
    refused = await client.get("/api/v1/auth/me", headers=world.staff_a.headers)
    assert (refused.status_code, refused.json()["error"]["message"]) == (403, "branch disabled")
    assert (await client.get("/api/v1/auth/me", headers=world.staff_b.headers)).status_code == 200
    assert (await client.get("/api/v1/auth/me", headers=world.admin.headers)).status_code == 200
