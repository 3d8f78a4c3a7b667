"""REST users: CRUD, branch scoping, escalation and self-lockout rules, session revocation."""

from __future__ import annotations

from typing import Any

import httpx
from sqlalchemy import select

from persistence.tables import Session
from server.services import Services
from tests.world import PASSWORD, World, add_user, login_as

USERS = "/api/v1/users"


def _fields(response: httpx.Response) -> set[str]:
    error = response.json()["error"]
    assert error["code"] == "invalid", error
    return {item["field"] for item in error["details"]["errors"]}


def _code(response: httpx.Response) -> str:
    return str(response.json()["error"]["code"])


async def _sessions(services: Services, user_id: int) -> list[Session]:
    async with services.db.session() as session:
        return list((await session.scalars(select(Session).where(Session.user_id == user_id))).all())


async def _create(client: httpx.AsyncClient, headers: dict[str, str], **body: Any) -> httpx.Response:
    return await client.post(USERS, headers=headers, json={"password": "long enough", **body})


# Lists


async def test_admin_lists_every_user_by_id_without_password_hashes(client: httpx.AsyncClient, world: World) -> None:
    """An admin sees all users in id order, with role names and never a password hash."""
    response = await client.get(USERS, headers=world.admin.headers)
    assert response.status_code == 200, response.text
    page = response.json()
    assert page["total"] == 5
    assert [item["username"] for item in page["items"]] == ["admin", "manager.a", "staff.a", "manager.b", "staff.b"]
    assert [item["role"] for item in page["items"]] == ["admin", "manager", "staff", "manager", "staff"]
    assert all("password_hash" not in item and "password" not in item for item in page["items"])


async def test_manager_lists_only_their_branch(client: httpx.AsyncClient, world: World) -> None:
    """manager_b never sees branch a's users, not even by asking for branch a."""
    own = await client.get(USERS, headers=world.manager_b.headers)
    assert [item["username"] for item in own.json()["items"]] == ["manager.b", "staff.b"]
    other = await client.get(USERS, headers=world.manager_b.headers, params={"branch_id": world.branch_a})
    assert other.status_code == 200
    assert other.json()["items"] == [] and other.json()["total"] == 0


async def test_list_filters_by_branch_role_state_and_text(client: httpx.AsyncClient, world: World) -> None:
    """branch_id, role, is_active and q (any case, username or full name) narrow the list."""
    created = await _create(
        client,
        world.admin.headers,
        username="cook",
        full_name="Grace_Hopper",
        role_id=world.roles["staff"],
        branch_id=world.branch_b,
    )
    assert created.status_code == 201, created.text
    await client.delete(f"{USERS}/{world.staff_a.id}", headers=world.admin.headers)

    async def names(**params: Any) -> list[str]:
        response = await client.get(USERS, headers=world.admin.headers, params=params)
        assert response.status_code == 200, response.text
        return [item["username"] for item in response.json()["items"]]

    assert await names(branch_id=world.branch_b) == ["manager.b", "staff.b", "cook"]
    assert await names(role="staff") == ["staff.a", "staff.b", "cook"]
    assert await names(is_active="false") == ["staff.a"]
    assert await names(role="staff", is_active="true") == ["staff.b", "cook"]
    assert await names(q="MANAGER") == ["manager.a", "manager.b"]
    assert await names(q="hopper") == ["cook"]
    # `_` is a literal here, not a LIKE wildcard.
    assert await names(q="e_h") == ["cook"]
    assert await names(q="r_a") == []


async def test_list_pages_with_limit_offset_and_total(
    client: httpx.AsyncClient, services: Services, world: World
) -> None:
    """limit and offset pick a slice of the id order; total counts every match."""
    for i in range(7):
        await add_user(services.db, f"extra{i}", world.roles["staff"], world.branch_a)
    response = await client.get(USERS, headers=world.admin.headers, params={"limit": 3, "offset": 6})
    page = response.json()
    assert (page["total"], page["limit"], page["offset"]) == (12, 3, 6)
    assert [item["username"] for item in page["items"]] == ["extra1", "extra2", "extra3"]
    last = await client.get(USERS, headers=world.admin.headers, params={"limit": 3, "offset": 11})
    assert [item["username"] for item in last.json()["items"]] == ["extra6"]


async def test_list_rejects_bad_query_parameters(client: httpx.AsyncClient, world: World) -> None:
    """A limit out of range or an unknown parameter is `invalid` naming it."""
    response = await client.get(USERS, headers=world.admin.headers, params={"limit": 0, "colour": "red"})
    assert response.status_code == 422
    assert _fields(response) == {"limit", "colour"}


# Reads and permissions


async def test_read_a_user(client: httpx.AsyncClient, world: World) -> None:
    """A user reads back with its role, branch and state."""
    response = await client.get(f"{USERS}/{world.staff_a.id}", headers=world.manager_a.headers)
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["username"] == "staff.a"
    assert (body["role"], body["role_id"], body["branch_id"]) == ("staff", world.roles["staff"], world.branch_a)
    assert body["is_active"] is True and body["last_login_at"] is None
    assert "password_hash" not in body


async def test_missing_user_is_not_found(client: httpx.AsyncClient, world: World) -> None:
    """Read, update and disable of an unknown id (or a non-number) answer `not_found`."""
    for response in (
        await client.get(f"{USERS}/9999", headers=world.admin.headers),
        await client.patch(f"{USERS}/9999", headers=world.admin.headers, json={"full_name": "X"}),
        await client.delete(f"{USERS}/9999", headers=world.admin.headers),
        await client.get(f"{USERS}/abc", headers=world.admin.headers),
    ):
        assert response.status_code == 404
        assert _code(response) == "not_found"


async def test_staff_may_not_read_or_write_users(client: httpx.AsyncClient, world: World) -> None:
    """Staff lack users:read and users:write: every route answers 403, even on their own record."""
    own = f"{USERS}/{world.staff_a.id}"
    for response in (
        await client.get(USERS, headers=world.staff_a.headers),
        await client.get(own, headers=world.staff_a.headers),
        await _create(client, world.staff_a.headers, username="sneaky", role_id=world.roles["staff"]),
        await client.patch(own, headers=world.staff_a.headers, json={"full_name": "Me"}),
        await client.delete(f"{USERS}/{world.manager_a.id}", headers=world.staff_a.headers),
    ):
        assert response.status_code == 403
        assert _code(response) == "forbidden"


async def test_other_branch_manager_may_not_touch_branch_a_users(client: httpx.AsyncClient, world: World) -> None:
    """manager_b gets 404 reading, updating or disabling staff_a (as if absent), 403 creating a user in branch a."""
    url = f"{USERS}/{world.staff_a.id}"
    for response in (
        await client.get(url, headers=world.manager_b.headers),
        await client.patch(url, headers=world.manager_b.headers, json={"full_name": "Taken"}),
        await client.delete(url, headers=world.manager_b.headers),
    ):
        assert response.status_code == 404
    created = await _create(
        client, world.manager_b.headers, username="spy", role_id=world.roles["staff"], branch_id=world.branch_a
    )
    assert created.status_code == 403
    staff_a = await client.get(url, headers=world.admin.headers)
    assert staff_a.json()["is_active"] is True and staff_a.json()["full_name"] is None


# Create


async def test_admin_creates_a_user_who_can_log_in(client: httpx.AsyncClient, world: World) -> None:
    """The username is trimmed and lower-cased, the password hashed, and the new user logs in with it."""
    response = await _create(
        client,
        world.admin.headers,
        username="  New.User-1 ",
        password="s3cret-enough",
        role_id=world.roles["staff"],
        branch_id=world.branch_a,
        full_name=" New User ",
        email="new@example.com",
    )
    assert response.status_code == 201, response.text
    body = response.json()
    assert (body["username"], body["full_name"], body["email"]) == ("new.user-1", "New User", "new@example.com")
    assert (body["role"], body["branch_id"], body["is_active"]) == ("staff", world.branch_a, True)
    assert "password_hash" not in body
    assert (await client.get(f"{USERS}/{body['id']}", headers=world.admin.headers)).json() == body
    login = await client.post("/api/v1/auth/login", json={"username": "New.User-1", "password": "s3cret-enough"})
    assert login.status_code == 200, login.text


async def test_create_validation_errors_name_the_fields(client: httpx.AsyncClient, world: World) -> None:
    """A bad username, short password, bad email, missing role and an unknown field are each named."""
    response = await client.post(
        USERS,
        headers=world.admin.headers,
        json={"username": "no spaces!", "password": "short", "email": "nope", "is_admin": True},
    )
    assert response.status_code == 422
    assert _fields(response) == {"username", "password", "email", "role_id", "is_admin"}
    too_short = await _create(client, world.admin.headers, username=" ab ", role_id=world.roles["staff"])
    assert _fields(too_short) == {"username"}


async def test_unknown_role_or_branch_is_invalid_naming_the_field(client: httpx.AsyncClient, world: World) -> None:
    """A role_id or branch_id that does not exist is `invalid` with that field, on create and update."""
    bad_role = await _create(client, world.admin.headers, username="someone", role_id=9999)
    assert bad_role.status_code == 422 and _fields(bad_role) == {"role_id"}
    bad_branch = await _create(
        client, world.admin.headers, username="someone", role_id=world.roles["staff"], branch_id=9999
    )
    assert bad_branch.status_code == 422 and _fields(bad_branch) == {"branch_id"}
    patch = await client.patch(f"{USERS}/{world.staff_a.id}", headers=world.admin.headers, json={"role_id": 9999})
    assert _fields(patch) == {"role_id"}


async def test_duplicate_username_is_a_conflict(client: httpx.AsyncClient, world: World) -> None:
    """A username already taken, in any case, is `conflict`."""
    response = await _create(client, world.admin.headers, username="Staff.A", role_id=world.roles["staff"])
    assert response.status_code == 409
    assert response.json()["error"]["details"] == {"field": "username"}


async def test_manager_creates_users_only_in_their_branch(client: httpx.AsyncClient, world: World) -> None:
    """manager_a may add staff to branch a, not to branch b nor chain-wide."""
    staff = world.roles["staff"]
    ok = await _create(client, world.manager_a.headers, username="cook.a", role_id=staff, branch_id=world.branch_a)
    assert ok.status_code == 201, ok.text
    other = await _create(client, world.manager_a.headers, username="cook.b", role_id=staff, branch_id=world.branch_b)
    assert other.status_code == 403
    chain_wide = await _create(client, world.manager_a.headers, username="cook.x", role_id=staff)
    assert chain_wide.status_code == 403


# Escalation


async def test_manager_may_not_grant_a_stronger_role(client: httpx.AsyncClient, world: World) -> None:
    """Granting a role with permissions the caller lacks is `forbidden`, on create and on update."""
    admin_role = world.roles["admin"]
    create = await _create(
        client, world.manager_a.headers, username="boss", role_id=admin_role, branch_id=world.branch_a
    )
    assert create.status_code == 403
    promote = await client.patch(
        f"{USERS}/{world.staff_a.id}", headers=world.manager_a.headers, json={"role_id": admin_role}
    )
    assert promote.status_code == 403
    self_promote = await client.patch(
        f"{USERS}/{world.manager_a.id}", headers=world.manager_a.headers, json={"role_id": admin_role}
    )
    assert self_promote.status_code == 403
    assert (await client.get(f"{USERS}/{world.staff_a.id}", headers=world.admin.headers)).json()["role"] == "staff"


async def test_manager_may_not_manage_a_stronger_user_of_their_branch(
    client: httpx.AsyncClient, services: Services, world: World
) -> None:
    """A user whose role outranks the manager cannot have its password changed or be disabled by them."""
    boss = await add_user(services.db, "boss.a", world.roles["admin"], world.branch_a)
    url = f"{USERS}/{boss}"
    assert (await client.get(url, headers=world.manager_a.headers)).status_code == 200
    takeover = await client.patch(url, headers=world.manager_a.headers, json={"password": "mine now!"})
    assert takeover.status_code == 403
    assert (await client.delete(url, headers=world.manager_a.headers)).status_code == 403


async def test_manager_manages_staff_of_their_branch(client: httpx.AsyncClient, world: World) -> None:
    """manager_a may rename, promote to manager and disable staff_a."""
    url = f"{USERS}/{world.staff_a.id}"
    response = await client.patch(
        url, headers=world.manager_a.headers, json={"full_name": "Ada", "role_id": world.roles["manager"]}
    )
    assert response.status_code == 200, response.text
    assert (response.json()["full_name"], response.json()["role"]) == ("Ada", "manager")
    assert (await client.delete(url, headers=world.manager_a.headers)).status_code == 204


# Update


async def test_update_changes_only_the_fields_sent(client: httpx.AsyncClient, world: World) -> None:
    """Fields left out keep their values; a null clears an optional field; null on a required one is invalid."""
    url = f"{USERS}/{world.staff_a.id}"
    first = await client.patch(url, headers=world.admin.headers, json={"full_name": "Ada L", "email": "ada@x.io"})
    assert first.status_code == 200, first.text
    second = await client.patch(url, headers=world.admin.headers, json={"email": None})
    assert second.status_code == 200, second.text
    assert (second.json()["full_name"], second.json()["email"]) == ("Ada L", None)
    assert second.json()["updated_at"] >= first.json()["updated_at"]
    nulls = await client.patch(url, headers=world.admin.headers, json={"is_active": None, "role_id": None})
    assert _fields(nulls) == {"is_active", "role_id"}
    typo = await client.patch(url, headers=world.admin.headers, json={"fullname": "Ada"})
    assert _fields(typo) == {"fullname"}
    short = await client.patch(url, headers=world.admin.headers, json={"password": "short"})
    assert _fields(short) == {"password"}


async def test_admin_moves_users_between_branches_and_managers_may_not(client: httpx.AsyncClient, world: World) -> None:
    """An admin may move a user to another branch or make it chain-wide; a manager may do neither."""
    url = f"{USERS}/{world.staff_a.id}"
    denied = await client.patch(url, headers=world.manager_a.headers, json={"branch_id": world.branch_b})
    assert denied.status_code == 403
    assert (await client.patch(url, headers=world.manager_a.headers, json={"branch_id": None})).status_code == 403
    moved = await client.patch(url, headers=world.admin.headers, json={"branch_id": world.branch_b})
    assert moved.status_code == 200 and moved.json()["branch_id"] == world.branch_b
    # Now it is branch b's user: manager_a lost it, manager_b has it.
    assert (await client.get(url, headers=world.manager_a.headers)).status_code == 404
    assert (await client.get(url, headers=world.manager_b.headers)).status_code == 200
    chain_wide = await client.patch(url, headers=world.admin.headers, json={"branch_id": None})
    assert chain_wide.status_code == 200 and chain_wide.json()["branch_id"] is None


# Self-lockout


async def test_nobody_disables_or_demotes_themselves(client: httpx.AsyncClient, world: World) -> None:
    """Disabling oneself, or taking a role without users:write, is `conflict`; nothing changes."""
    admin_url = f"{USERS}/{world.admin.id}"
    for response in (
        await client.delete(admin_url, headers=world.admin.headers),
        await client.patch(admin_url, headers=world.admin.headers, json={"is_active": False}),
        await client.patch(admin_url, headers=world.admin.headers, json={"role_id": world.roles["staff"]}),
        await client.patch(
            f"{USERS}/{world.manager_a.id}", headers=world.manager_a.headers, json={"role_id": world.roles["staff"]}
        ),
    ):
        assert response.status_code == 409, response.text
        assert _code(response) == "conflict"
    me = await client.get("/api/v1/auth/me", headers=world.admin.headers)
    assert me.status_code == 200 and me.json()["role"] == "admin"
    # Dropping from admin to manager keeps users:write, so it is allowed.
    demoted = await client.patch(admin_url, headers=world.admin.headers, json={"role_id": world.roles["manager"]})
    assert demoted.status_code == 200, demoted.text


# Session revocation


async def test_disabling_a_user_kills_its_token_at_once(
    client: httpx.AsyncClient, services: Services, world: World
) -> None:
    """After DELETE the user's existing token is refused, its sessions revoked, and the row kept."""
    assert (await client.get("/api/v1/auth/me", headers=world.staff_a.headers)).status_code == 200
    response = await client.delete(f"{USERS}/{world.staff_a.id}", headers=world.admin.headers)
    assert response.status_code == 204 and response.content == b""
    me = await client.get("/api/v1/auth/me", headers=world.staff_a.headers)
    assert me.status_code == 401
    assert [s.revoked_reason for s in await _sessions(services, world.staff_a.id)] == ["user_disabled"]
    kept = await client.get(f"{USERS}/{world.staff_a.id}", headers=world.admin.headers)
    assert kept.status_code == 200 and kept.json()["is_active"] is False
    login = await client.post("/api/v1/auth/login", json={"username": "staff.a", "password": PASSWORD})
    assert login.status_code == 403


async def test_disabling_by_patch_also_revokes_sessions(
    client: httpx.AsyncClient, services: Services, world: World
) -> None:
    """PATCH is_active false ends the sessions just like DELETE; re-enabling does not revive them."""
    url = f"{USERS}/{world.staff_b.id}"
    assert (await client.patch(url, headers=world.manager_b.headers, json={"is_active": False})).status_code == 200
    assert (await client.get("/api/v1/auth/me", headers=world.staff_b.headers)).status_code == 401
    enabled = await client.patch(url, headers=world.manager_b.headers, json={"is_active": True})
    assert enabled.json()["is_active"] is True
    assert (await client.get("/api/v1/auth/me", headers=world.staff_b.headers)).status_code == 401


async def test_password_change_revokes_sessions(client: httpx.AsyncClient, services: Services, world: World) -> None:
    """A new password ends the user's sessions, and the new password logs in while the old one does not."""
    response = await client.patch(
        f"{USERS}/{world.staff_a.id}", headers=world.admin.headers, json={"password": "brand new pass"}
    )
    assert response.status_code == 200, response.text
    assert (await client.get("/api/v1/auth/me", headers=world.staff_a.headers)).status_code == 401
    assert [s.revoked_reason for s in await _sessions(services, world.staff_a.id)] == ["password_changed"]
    old = await client.post("/api/v1/auth/login", json={"username": "staff.a", "password": PASSWORD})
    assert old.status_code == 401
    new = await client.post("/api/v1/auth/login", json={"username": "staff.a", "password": "brand new pass"})
    assert new.status_code == 200


async def test_own_password_change_keeps_the_current_session_only(
    client: httpx.AsyncClient, services: Services, world: World
) -> None:
    """Changing one's own password ends every other session of one's own but not the one used."""
    elsewhere = await login_as(services, world.manager_a.id)
    response = await client.patch(
        f"{USERS}/{world.manager_a.id}", headers=world.manager_a.headers, json={"password": "brand new pass"}
    )
    assert response.status_code == 200, response.text
    assert (await client.get("/api/v1/auth/me", headers=world.manager_a.headers)).status_code == 200
    assert (await client.get("/api/v1/auth/me", headers=elsewhere)).status_code == 401
