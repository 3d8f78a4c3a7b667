"""REST devices: one-time secrets, rotation, disabling, pairing, branch scoping and permissions."""

from __future__ import annotations

from typing import Any

import httpx

from persistence.enums import DeviceKind
from persistence.tables import Device, Role
from server.services import Services
from tests.world import PASSWORD, PASSWORD_HASH, World, add_user, login_as

DEVICES = "/api/v1/devices"


async def add_device(services: Services, branch_id: int, kind: DeviceKind, name: str = "Device") -> int:
    """Insert a device whose secret is the test PASSWORD (hashed once for the suite); returns its id."""
    async with services.db.session() as session:
        device = Device(branch_id=branch_id, kind=kind, name=name, secret_hash=PASSWORD_HASH)
        session.add(device)
        await session.flush()
        return device.id


async def device_token(client: httpx.AsyncClient, device_id: int, secret: str = PASSWORD) -> httpx.Response:
    """The `/auth/device` answer for a device id and secret."""
    return await client.post("/api/v1/auth/device", json={"device_id": device_id, "secret": secret})


def bearer(token_response: httpx.Response) -> dict[str, str]:
    """Authorization headers from a successful `/auth/device` answer."""
    assert token_response.status_code == 200, token_response.text
    return {"Authorization": f"Bearer {token_response.json()['access_token']}"}


def error_fields(response: httpx.Response) -> list[str]:
    """The fields an `invalid` answer names."""
    assert response.status_code == 422, response.text
    error = response.json()["error"]
    assert error["code"] == "invalid"
    return sorted(e["field"] for e in error["details"]["errors"])


async def test_create_returns_a_one_time_secret_that_logs_the_device_in(
    client: httpx.AsyncClient, services: Services, world: World
) -> None:
    """Creation answers 201 with the secret once; only its Argon2 hash is stored and the secret works."""
    response = await client.post(
        DEVICES, json={"branch_id": world.branch_a, "kind": "kiosk", "name": " Kiosk 1 "}, headers=world.admin.headers
    )
    assert response.status_code == 201, response.text
    created = response.json()
    secret = created.pop("secret")
    assert "not" in created.pop("secret_notice") and "secret_hash" not in created
    assert created["kind"] == "kiosk" and created["name"] == "Kiosk 1" and created["branch_id"] == world.branch_a
    assert (created["is_active"], created["secret_version"], created["paired_terminal_id"]) == (True, 1, None)

    async with services.db.session() as session:
        stored = await session.get(Device, created["id"])
        assert stored is not None
        assert stored.secret_hash.startswith("$argon2id$") and secret not in stored.secret_hash

    token = await device_token(client, created["id"], secret)
    me = await client.get("/api/v1/auth/me", headers=bearer(token))
    assert (me.json()["kind"], me.json()["id"]) == ("device", created["id"])

    read = await client.get(f"{DEVICES}/{created['id']}", headers=world.admin.headers)
    assert read.json() == created


async def test_create_errors_name_the_fields(client: httpx.AsyncClient, world: World) -> None:
    """Unknown kind, empty name, typos and an unknown branch are `invalid` naming the field; nothing is created."""
    bad = await client.post(
        DEVICES,
        json={"branch_id": world.branch_a, "kind": "toaster", "name": " ", "colour": "red"},
        headers=world.admin.headers,
    )
    assert error_fields(bad) == ["colour", "kind", "name"]
    assert error_fields(await client.post(DEVICES, json={}, headers=world.admin.headers)) == [
        "branch_id",
        "kind",
        "name",
    ]

    unknown_branch = await client.post(
        DEVICES, json={"branch_id": 999, "kind": "kiosk", "name": "K"}, headers=world.admin.headers
    )
    assert error_fields(unknown_branch) == ["branch_id"]
    assert (await client.get(DEVICES, headers=world.admin.headers)).json()["total"] == 0


async def test_rotate_secret_revokes_the_old_secret_and_its_tokens(client: httpx.AsyncClient, world: World) -> None:
    """After a rotation the old token gets 401 at /auth/me, the old secret 401, and the new secret works."""
    created = (
        await client.post(
            DEVICES,
            json={"branch_id": world.branch_a, "kind": "order_board", "name": "Board"},
            headers=world.manager_a.headers,
        )
    ).json()
    old_headers = bearer(await device_token(client, created["id"], created["secret"]))
    assert (await client.get("/api/v1/auth/me", headers=old_headers)).status_code == 200

    rotated = await client.post(f"{DEVICES}/{created['id']}/rotate-secret", headers=world.manager_a.headers)
    assert rotated.status_code == 200, rotated.text
    assert rotated.json()["secret_version"] == 2 and rotated.json()["secret"] != created["secret"]

    stale = await client.get("/api/v1/auth/me", headers=old_headers)
    assert stale.status_code == 401 and stale.json()["error"]["code"] == "unauthorized"
    assert (await device_token(client, created["id"], created["secret"])).status_code == 401
    fresh = bearer(await device_token(client, created["id"], rotated.json()["secret"]))
    assert (await client.get("/api/v1/auth/me", headers=fresh)).status_code == 200


async def test_a_disabled_device_is_refused_until_enabled(
    client: httpx.AsyncClient, services: Services, world: World
) -> None:
    """Disabling answers 204; the device then gets 403 at /auth/device and for its token, and enabling undoes it."""
    device_id = await add_device(services, world.branch_a, DeviceKind.KITCHEN_DISPLAY)
    headers = bearer(await device_token(client, device_id))

    assert (await client.post(f"{DEVICES}/{device_id}/disable", headers=world.manager_a.headers)).status_code == 204
    refused = await device_token(client, device_id)
    assert refused.status_code == 403 and refused.json()["error"]["code"] == "forbidden"
    assert (await client.get("/api/v1/auth/me", headers=headers)).status_code == 403
    assert (await client.get(f"{DEVICES}/{device_id}", headers=world.staff_a.headers)).json()["is_active"] is False

    assert (await client.post(f"{DEVICES}/{device_id}/enable", headers=world.manager_a.headers)).status_code == 204
    assert (await client.get("/api/v1/auth/me", headers=headers)).status_code == 200
    assert (await device_token(client, device_id)).status_code == 200


async def test_update_applies_only_the_fields_sent(client: httpx.AsyncClient, services: Services, world: World) -> None:
    """PATCH changes name or is_active alone; null, empty, read-only or unknown fields are `invalid`."""
    device_id = await add_device(services, world.branch_a, DeviceKind.KIOSK, "Old name")
    url = f"{DEVICES}/{device_id}"

    renamed = await client.patch(url, json={"name": "Front kiosk"}, headers=world.manager_a.headers)
    assert renamed.status_code == 200, renamed.text
    assert (renamed.json()["name"], renamed.json()["is_active"]) == ("Front kiosk", True)
    switched_off = await client.patch(url, json={"is_active": False}, headers=world.manager_a.headers)
    assert (switched_off.json()["name"], switched_off.json()["is_active"]) == ("Front kiosk", False)

    assert error_fields(await client.patch(url, json={"name": None}, headers=world.admin.headers)) == ["name"]
    assert error_fields(await client.patch(url, json={"name": ""}, headers=world.admin.headers)) == ["name"]
    read_only = await client.patch(
        url, json={"secret_version": 9, "branch_id": world.branch_b}, headers=world.admin.headers
    )
    assert error_fields(read_only) == ["branch_id", "secret_version"]
    after = (await client.get(url, headers=world.admin.headers)).json()
    assert (after["name"], after["secret_version"], after["branch_id"]) == ("Front kiosk", 1, world.branch_a)


async def test_list_is_scoped_to_the_branch_and_filtered(
    client: httpx.AsyncClient, services: Services, world: World
) -> None:
    """Managers and staff list their branch only, admins all; branch_id, kind and is_active narrow the list."""
    kiosk_a = await add_device(services, world.branch_a, DeviceKind.KIOSK)
    terminal_a = await add_device(services, world.branch_a, DeviceKind.PAYMENT_TERMINAL)
    kiosk_b = await add_device(services, world.branch_b, DeviceKind.KIOSK)
    await client.post(f"{DEVICES}/{terminal_a}/disable", headers=world.admin.headers)

    async def ids(headers: dict[str, str], **params: Any) -> list[int]:
        response = await client.get(DEVICES, params=params, headers=headers)
        assert response.status_code == 200, response.text
        return [device["id"] for device in response.json()["items"]]

    assert await ids(world.admin.headers) == [kiosk_a, terminal_a, kiosk_b]
    assert await ids(world.manager_a.headers) == [kiosk_a, terminal_a]
    assert await ids(world.staff_b.headers) == [kiosk_b]
    assert await ids(world.admin.headers, branch_id=world.branch_b) == [kiosk_b]
    assert await ids(world.manager_a.headers, branch_id=world.branch_b) == []
    assert await ids(world.admin.headers, kind="kiosk") == [kiosk_a, kiosk_b]
    assert await ids(world.staff_a.headers, is_active="false") == [terminal_a]

    page = (await client.get(DEVICES, params={"limit": 1, "offset": 1}, headers=world.admin.headers)).json()
    assert ([d["id"] for d in page["items"]], page["total"]) == ([terminal_a], 3)
    bad = await client.get(DEVICES, params={"kind": "toaster", "colour": "red"}, headers=world.admin.headers)
    assert error_fields(bad) == ["colour", "kind"]


async def test_pairing_a_taken_terminal_needs_force(
    client: httpx.AsyncClient, services: Services, world: World
) -> None:
    """A terminal serves one kiosk: pairing it again is a `conflict` naming the kiosk, unless force moves it."""
    # The first holder gets the higher id, so that the move must clear the old pairing before writing the new one.
    second = await add_device(services, world.branch_a, DeviceKind.KIOSK)
    first = await add_device(services, world.branch_a, DeviceKind.KIOSK)
    terminal = await add_device(services, world.branch_a, DeviceKind.PAYMENT_TERMINAL)
    headers = world.manager_a.headers

    paired = await client.post(f"{DEVICES}/{first}/pair", json={"terminal_id": terminal}, headers=headers)
    assert paired.status_code == 200, paired.text
    assert paired.json()["paired_terminal_id"] == terminal
    assert (await client.get(f"{DEVICES}/{terminal}", headers=headers)).json()["paired_kiosk_id"] == first
    again = await client.post(f"{DEVICES}/{first}/pair", json={"terminal_id": terminal}, headers=headers)
    assert again.status_code == 200

    taken = await client.post(f"{DEVICES}/{second}/pair", json={"terminal_id": terminal}, headers=headers)
    assert taken.status_code == 409
    assert taken.json()["error"]["code"] == "conflict" and taken.json()["error"]["details"]["kiosk_id"] == first

    moved = await client.post(
        f"{DEVICES}/{second}/pair", json={"terminal_id": terminal, "force": True}, headers=headers
    )
    assert moved.status_code == 200, moved.text
    listed = {d["id"]: d for d in (await client.get(DEVICES, headers=headers)).json()["items"]}
    assert listed[first]["paired_terminal_id"] is None
    assert listed[second]["paired_terminal_id"] == terminal
    assert listed[terminal]["paired_kiosk_id"] == second


async def test_unpairing_works_from_either_side(client: httpx.AsyncClient, services: Services, world: World) -> None:
    """DELETE .../pair on the kiosk or on the terminal ends the pairing (204), and repeating it is harmless."""
    kiosk = await add_device(services, world.branch_a, DeviceKind.KIOSK)
    terminal = await add_device(services, world.branch_a, DeviceKind.PAYMENT_TERMINAL)
    headers = world.manager_a.headers

    for side in (kiosk, terminal, kiosk):
        await client.post(f"{DEVICES}/{kiosk}/pair", json={"terminal_id": terminal}, headers=headers)
        assert (await client.delete(f"{DEVICES}/{side}/pair", headers=headers)).status_code == 204
        assert (await client.get(f"{DEVICES}/{kiosk}", headers=headers)).json()["paired_terminal_id"] is None
        assert (await client.get(f"{DEVICES}/{terminal}", headers=headers)).json()["paired_kiosk_id"] is None
    assert (await client.delete(f"{DEVICES}/{kiosk}/pair", headers=headers)).status_code == 204


async def test_pairing_refuses_wrong_kinds_and_other_branches(
    client: httpx.AsyncClient, services: Services, world: World
) -> None:
    """Only a kiosk pairs, only with an existing payment terminal of its own branch; the rest is `invalid`."""
    kiosk = await add_device(services, world.branch_a, DeviceKind.KIOSK)
    terminal = await add_device(services, world.branch_a, DeviceKind.PAYMENT_TERMINAL)
    display = await add_device(services, world.branch_a, DeviceKind.KITCHEN_DISPLAY)
    terminal_b = await add_device(services, world.branch_b, DeviceKind.PAYMENT_TERMINAL)
    headers = world.admin.headers

    not_a_kiosk = await client.post(f"{DEVICES}/{terminal}/pair", json={"terminal_id": terminal}, headers=headers)
    assert not_a_kiosk.status_code == 422 and not_a_kiosk.json()["error"]["code"] == "invalid"
    for target in (display, terminal_b, 999):
        refused = await client.post(f"{DEVICES}/{kiosk}/pair", json={"terminal_id": target}, headers=headers)
        assert error_fields(refused) == ["terminal_id"], target
    assert error_fields(await client.post(f"{DEVICES}/{kiosk}/pair", json={}, headers=headers)) == ["terminal_id"]
    assert (await client.delete(f"{DEVICES}/{display}/pair", headers=headers)).status_code == 422
    assert (await client.get(f"{DEVICES}/{kiosk}", headers=headers)).json()["paired_terminal_id"] is None


async def test_unknown_device_is_not_found(client: httpx.AsyncClient, world: World) -> None:
    """Every route on a device id that does not exist, or is not a number, answers `not_found`."""
    routes = [
        ("GET", "", None),
        ("PATCH", "", {"name": "X"}),
        ("POST", "/rotate-secret", None),
        ("POST", "/disable", None),
        ("POST", "/enable", None),
        ("POST", "/pair", {"terminal_id": 1}),
        ("DELETE", "/pair", None),
    ]
    for method, suffix, body in routes:
        for device_id in ("999", "abc"):
            response = await client.request(
                method, f"{DEVICES}/{device_id}{suffix}", json=body, headers=world.admin.headers
            )
            assert response.status_code == 404, (method, suffix, device_id)
            assert response.json()["error"]["code"] == "not_found"


async def test_every_route_refuses_lower_roles_and_other_branches(
    client: httpx.AsyncClient, services: Services, world: World
) -> None:
    """Staff only read, principals without rights get 403, other branches 404 on branch-a devices; nothing changes."""
    kiosk = await add_device(services, world.branch_a, DeviceKind.KIOSK, "Kiosk A")
    terminal = await add_device(services, world.branch_a, DeviceKind.PAYMENT_TERMINAL)
    async with services.db.session() as session:
        nobody_role = Role(name="nobody", permissions=[])
        session.add(nobody_role)
        await session.flush()
    nobody = await login_as(services, await add_user(services.db, "nobody", nobody_role.id, world.branch_a))
    as_device = bearer(await device_token(client, kiosk))

    reads = [("GET", DEVICES, None), ("GET", f"{DEVICES}/{kiosk}", None)]
    writes = [
        ("POST", DEVICES, {"branch_id": world.branch_a, "kind": "kiosk", "name": "Sneaky"}),
        ("PATCH", f"{DEVICES}/{kiosk}", {"name": "Renamed"}),
        ("POST", f"{DEVICES}/{kiosk}/rotate-secret", None),
        ("POST", f"{DEVICES}/{kiosk}/disable", None),
        ("POST", f"{DEVICES}/{kiosk}/enable", None),
        ("POST", f"{DEVICES}/{kiosk}/pair", {"terminal_id": terminal}),
        ("DELETE", f"{DEVICES}/{kiosk}/pair", None),
    ]
    refusals = [(headers, route) for headers in (nobody, as_device) for route in reads + writes]
    refusals += [(world.staff_a.headers, route) for route in writes]
    refusals += [(world.manager_b.headers, writes[0])]
    for headers, (method, url, body) in refusals:
        response = await client.request(method, url, json=body, headers=headers)
        assert response.status_code == 403, (method, url, response.text)
        assert response.json()["error"]["code"] == "forbidden"
    # Another branch's device is not found, as if it did not exist.
    hidden: list[tuple[dict[str, str], tuple[str, str, object]]] = [
        (headers, route) for headers in (world.manager_b.headers, world.staff_b.headers) for route in reads[1:]
    ]
    hidden += [(world.manager_b.headers, route) for route in writes[1:]]
    for headers, (method, url, body) in hidden:
        response = await client.request(method, url, json=body, headers=headers)
        assert response.status_code == 404, (method, url, response.text)
        assert response.json()["error"]["code"] == "not_found"

    assert (await client.get(DEVICES, headers=world.manager_b.headers)).json()["items"] == []
    listed = (await client.get(DEVICES, headers=world.admin.headers)).json()["items"]
    assert [(d["name"], d["is_active"], d["secret_version"], d["paired_terminal_id"]) for d in listed] == [
        ("Kiosk A", True, 1, None),
        ("Device", True, 1, None),
    ]
