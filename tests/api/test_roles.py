"""REST roles: CRUD, permission validation, the default roles, escalation and self-lockout."""

from __future__ import annotations

from typing import Any

import httpx

from persistence.tables import Role
from server.services import Services
from tests.world import Actor, World, add_user, login_as

ROLES = "/api/v1/roles"


def _fields(response: httpx.Response) -> set[str]:
    error = response.json()["error"]
    assert error["code"] == "invalid", error
    return {item["field"] for item in error["details"]["errors"]}


async def _custom_actor(services: Services, username: str, permissions: list[str], branch_id: int | None) -> Actor:
    """A user of a role made for the test, with its headers."""
    async with services.db.session() as session:
        role = Role(name=f"role-of-{username}", permissions=permissions)
        session.add(role)
        await session.flush()
        role_id = role.id
    user_id = await add_user(services.db, username, role_id, branch_id)
    return Actor(user_id, username, role.name, branch_id, await login_as(services, user_id))


async def _create(client: httpx.AsyncClient, headers: dict[str, str], **body: Any) -> httpx.Response:
    return await client.post(ROLES, headers=headers, json=body)


async def test_list_roles_by_id(client: httpx.AsyncClient, world: World) -> None:
    """The three default roles come back in id order with sorted permissions; managers may read them."""
    response = await client.get(ROLES, headers=world.manager_b.headers)
    assert response.status_code == 200, response.text
    page = response.json()
    assert page["total"] == 3
    assert [item["name"] for item in page["items"]] == ["admin", "manager", "staff"]
    assert page["items"][0]["permissions"] == ["*"]
    manager_permissions = page["items"][1]["permissions"]
    assert "users:write" in manager_permissions and manager_permissions == sorted(manager_permissions)


async def test_list_roles_pages(client: httpx.AsyncClient, world: World) -> None:
    """limit and offset slice the list; total counts all roles."""
    response = await client.get(ROLES, headers=world.admin.headers, params={"limit": 1, "offset": 1})
    page = response.json()
    assert (page["total"], page["limit"], page["offset"]) == (3, 1, 1)
    assert [item["name"] for item in page["items"]] == ["manager"]
    assert _fields(await client.get(ROLES, headers=world.admin.headers, params={"offset": -1})) == {"offset"}


async def test_read_role_and_not_found(client: httpx.AsyncClient, world: World) -> None:
    """A role reads back by id; an unknown id is `not_found` on read, update and delete."""
    response = await client.get(f"{ROLES}/{world.roles['staff']}", headers=world.manager_a.headers)
    assert response.status_code == 200
    assert response.json()["name"] == "staff"
    for missing in (
        await client.get(f"{ROLES}/9999", headers=world.admin.headers),
        await client.patch(f"{ROLES}/9999", headers=world.admin.headers, json={"description": "x"}),
        await client.delete(f"{ROLES}/9999", headers=world.admin.headers),
    ):
        assert missing.status_code == 404
        assert missing.json()["error"]["code"] == "not_found"


async def test_staff_may_not_read_roles_and_managers_may_not_write_them(
    client: httpx.AsyncClient, world: World
) -> None:
    """Staff lack roles:read; managers of either branch lack roles:write: every such call is 403."""
    staff_role = f"{ROLES}/{world.roles['staff']}"
    responses = [
        await client.get(ROLES, headers=world.staff_a.headers),
        await client.get(staff_role, headers=world.staff_a.headers),
    ]
    for actor in (world.manager_a, world.manager_b, world.staff_a):
        responses += [
            await _create(client, actor.headers, name="cashier", permissions=["orders:read"]),
            await client.patch(staff_role, headers=actor.headers, json={"permissions": ["*"]}),
            await client.delete(staff_role, headers=actor.headers),
        ]
    assert [response.status_code for response in responses] == [403] * len(responses)
    unchanged = await client.get(staff_role, headers=world.admin.headers)
    assert unchanged.json()["permissions"] != ["*"]


async def test_create_role_stores_permissions_sorted_and_deduplicated(client: httpx.AsyncClient, world: World) -> None:
    """A new role keeps its permissions sorted and each once."""
    response = await _create(
        client,
        world.admin.headers,
        name=" cashier ",
        description="Takes cash",
        permissions=["payments:read", "orders:write", "payments:read", "orders:read"],
    )
    assert response.status_code == 201, response.text
    body = response.json()
    assert (body["name"], body["description"]) == ("cashier", "Takes cash")
    assert body["permissions"] == ["orders:read", "orders:write", "payments:read"]
    assert (await client.get(f"{ROLES}/{body['id']}", headers=world.admin.headers)).json() == body


async def test_unknown_permissions_are_invalid_and_listed(client: httpx.AsyncClient, world: World) -> None:
    """Unknown permission names are `invalid` on the permissions field, each named in the message."""
    response = await _create(client, world.admin.headers, name="odd", permissions=["orders:read", "orders:eat", "x"])
    assert response.status_code == 422
    [error] = response.json()["error"]["details"]["errors"]
    assert (error["field"], error["type"]) == ("permissions", "unknown_permission")
    assert "orders:eat, x" in error["message"]
    patch = await client.patch(
        f"{ROLES}/{world.roles['staff']}", headers=world.admin.headers, json={"permissions": ["menu:eat"]}
    )
    assert _fields(patch) == {"permissions"}


async def test_create_role_validation_errors_name_the_fields(client: httpx.AsyncClient, world: World) -> None:
    """A blank name, a non-list permissions and an unknown field are each named."""
    response = await _create(client, world.admin.headers, name="  ", permissions="orders:read", colour="red")
    assert response.status_code == 422
    assert _fields(response) == {"name", "permissions", "colour"}


async def test_duplicate_role_name_is_a_conflict(client: httpx.AsyncClient, world: World) -> None:
    """A role name already taken, in any case, is `conflict` on create and on rename."""
    assert (await _create(client, world.admin.headers, name="Manager")).status_code == 409
    cashier = (await _create(client, world.admin.headers, name="cashier")).json()
    rename = await client.patch(f"{ROLES}/{cashier['id']}", headers=world.admin.headers, json={"name": "STAFF"})
    assert rename.status_code == 409


async def test_update_role_changes_only_the_fields_sent(client: httpx.AsyncClient, world: World) -> None:
    """Fields left out keep their values; null on name or permissions is `invalid`."""
    cashier = (await _create(client, world.admin.headers, name="cashier", permissions=["orders:read"])).json()
    url = f"{ROLES}/{cashier['id']}"
    response = await client.patch(
        url, headers=world.admin.headers, json={"name": "till", "permissions": ["payments:read", "orders:read"]}
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert (body["name"], body["description"], body["permissions"]) == ("till", None, ["orders:read", "payments:read"])
    nulls = await client.patch(url, headers=world.admin.headers, json={"name": None, "permissions": None})
    assert _fields(nulls) == {"name", "permissions"}


async def test_default_roles_may_be_edited_but_not_renamed_or_deleted(client: httpx.AsyncClient, world: World) -> None:
    """admin, manager and staff take new permissions, but renaming or deleting them is `conflict`."""
    staff_url = f"{ROLES}/{world.roles['staff']}"
    edited = await client.patch(
        staff_url, headers=world.admin.headers, json={"description": "Floor staff", "permissions": ["menu:read"]}
    )
    assert edited.status_code == 200, edited.text
    assert edited.json()["permissions"] == ["menu:read"]
    assert (await client.patch(staff_url, headers=world.admin.headers, json={"name": "crew"})).status_code == 409
    for role_id in world.roles.values():
        assert (await client.delete(f"{ROLES}/{role_id}", headers=world.admin.headers)).status_code == 409
    assert (await client.get(ROLES, headers=world.admin.headers)).json()["total"] == 3


async def test_delete_role_only_when_nobody_has_it(client: httpx.AsyncClient, services: Services, world: World) -> None:
    """A role held by any user, even a disabled one, is `conflict` to delete; an unused role goes."""
    cashier = (await _create(client, world.admin.headers, name="cashier")).json()
    holder = await add_user(services.db, "till.user", cashier["id"], world.branch_a)
    await client.delete(f"/api/v1/users/{holder}", headers=world.admin.headers)
    url = f"{ROLES}/{cashier['id']}"
    in_use = await client.delete(url, headers=world.admin.headers)
    assert in_use.status_code == 409
    assert in_use.json()["error"]["details"] == {"users": 1}

    spare = (await _create(client, world.admin.headers, name="spare")).json()
    gone = await client.delete(f"{ROLES}/{spare['id']}", headers=world.admin.headers)
    assert gone.status_code == 204
    assert (await client.get(f"{ROLES}/{spare['id']}", headers=world.admin.headers)).status_code == 404


async def test_role_writers_only_handle_permissions_they_hold(
    client: httpx.AsyncClient, services: Services, world: World
) -> None:
    """A role writer without `*` cannot create, widen, edit or delete a role beyond its own permissions."""
    writer = await _custom_actor(services, "hr", ["roles:read", "roles:write", "users:read"], None)
    assert (await _create(client, writer.headers, name="small", permissions=["users:read"])).status_code == 201
    assert (await _create(client, writer.headers, name="big", permissions=["users:write"])).status_code == 403
    assert (await _create(client, writer.headers, name="all", permissions=["*"])).status_code == 403
    staff_role = f"{ROLES}/{world.roles['staff']}"
    assert (await client.patch(staff_role, headers=writer.headers, json={"description": "x"})).status_code == 403
    admin_role = f"{ROLES}/{world.roles['admin']}"
    assert (await client.patch(admin_role, headers=writer.headers, json={"permissions": []})).status_code == 403
    unused_but_stronger = (await _create(client, world.admin.headers, name="big", permissions=["users:write"])).json()
    assert (await client.delete(f"{ROLES}/{unused_but_stronger['id']}", headers=writer.headers)).status_code == 403
    names = [item["name"] for item in (await client.get(ROLES, headers=writer.headers)).json()["items"]]
    assert names == ["admin", "manager", "staff", "role-of-hr", "small", "big"]


async def test_branch_scoped_users_may_not_write_chain_wide_roles(
    client: httpx.AsyncClient, services: Services, world: World
) -> None:
    """Roles apply to every branch, so a branch-bound user gets 403 even with roles:write."""
    local = await _custom_actor(services, "local.hr", ["roles:read", "roles:write"], world.branch_a)
    assert (await _create(client, local.headers, name="small")).status_code == 403
    own = await client.get(ROLES, headers=local.headers)
    assert own.status_code == 200 and own.json()["total"] == 4


async def test_nobody_strips_their_own_role(client: httpx.AsyncClient, world: World) -> None:
    """Taking permissions away from the role one holds is `conflict`, so `*` cannot leave admin by accident."""
    admin_role = f"{ROLES}/{world.roles['admin']}"
    response = await client.patch(admin_role, headers=world.admin.headers, json={"permissions": ["roles:write"]})
    assert response.status_code == 409
    assert response.json()["error"]["details"]["removed"] == ["*"]
    described = await client.patch(admin_role, headers=world.admin.headers, json={"description": "Owners"})
    assert described.status_code == 200
    assert described.json()["permissions"] == ["*"]
