"""Enrolment by pairing code and by one-step link: codes, claims, one pick-up of a new secret, and the errors."""

from __future__ import annotations

from datetime import timedelta

import httpx
from sqlalchemy import select, update

from persistence.base import utcnow
from persistence.enums import DeviceKind
from persistence.tables import Device, PairingCode
from server.auth.enrolment import hash_token, issue_link
from server.services import Services
from tests.api.test_devices import add_device, bearer, device_token
from tests.world import World

CODES = "/api/v1/pairing-codes"


async def _new_code(client: httpx.AsyncClient) -> dict[str, str]:
    response = await client.post(CODES)
    assert response.status_code == 201, response.text
    body: dict[str, str] = response.json()
    return body


async def test_a_claimed_code_gives_the_app_its_device_and_a_secret_once(
    client: httpx.AsyncClient, services: Services, world: World
) -> None:
    """Pending (202) until claimed; then the device id and a working secret, once; only hashes are stored."""
    issued = await _new_code(client)
    assert len(issued["code"]) == 6 and issued["code"].isdigit()
    poll = {"poll_token": issued["poll_token"]}
    pending = await client.post(f"{CODES}/poll", json=poll)
    assert pending.status_code == 202 and pending.json()["status"] == "pending"

    claim = await client.post(
        f"{CODES}/{issued['code']}/claim",
        json={"branch_id": world.branch_a, "kind": "payment_terminal", "name": "Terminal 9"},
        headers=world.manager_a.headers,
    )
    assert claim.status_code == 201, claim.text
    device = claim.json()["device"]
    assert (device["kind"], device["name"], device["branch_id"]) == ("payment_terminal", "Terminal 9", world.branch_a)

    enrolled = await client.post(f"{CODES}/poll", json=poll)
    assert enrolled.status_code == 200, enrolled.text
    body = enrolled.json()
    assert (body["status"], body["device_id"], body["device_kind"]) == ("enrolled", device["id"], "payment_terminal")
    me = await client.get("/api/v1/auth/me", headers=bearer(await device_token(client, device["id"], body["secret"])))
    assert me.json()["id"] == device["id"]

    again = await client.post(f"{CODES}/poll", json=poll)
    assert again.status_code == 409 and again.json()["error"]["details"]["reason"] == "used"
    async with services.db.session() as session:
        row = await session.scalar(select(PairingCode).where(PairingCode.code == issued["code"]))
        assert row is not None and row.poll_token_hash == hash_token(issued["poll_token"])
        assert issued["poll_token"] not in row.poll_token_hash


async def test_claiming_for_an_existing_device_rotates_its_secret(
    client: httpx.AsyncClient, services: Services, world: World
) -> None:
    """`device_id` enrols a device again: its old secret stops working, the new one works."""
    device_id = await add_device(services, world.branch_a, DeviceKind.KIOSK)
    assert (await device_token(client, device_id)).status_code == 200
    issued = await _new_code(client)
    claim = await client.post(
        f"{CODES}/{issued['code']}/claim", json={"device_id": device_id}, headers=world.admin.headers
    )
    assert claim.status_code == 201, claim.text
    body = (await client.post(f"{CODES}/poll", json={"poll_token": issued["poll_token"]})).json()
    assert body["device_id"] == device_id
    assert (await device_token(client, device_id)).status_code == 401
    assert (await device_token(client, device_id, body["secret"])).status_code == 200


async def test_claims_are_branch_scoped_and_need_devices_write(
    client: httpx.AsyncClient, services: Services, world: World
) -> None:
    """A manager of b cannot claim for branch a or one of its devices; staff cannot claim at all."""
    issued = await _new_code(client)
    new = {"branch_id": world.branch_a, "kind": "kiosk", "name": "K"}
    url = f"{CODES}/{issued['code']}/claim"
    assert (await client.post(url, json=new, headers=world.manager_b.headers)).status_code == 403
    assert (await client.post(url, json=new, headers=world.staff_a.headers)).status_code == 403
    device_id = await add_device(services, world.branch_a, DeviceKind.KIOSK)
    response = await client.post(url, json={"device_id": device_id}, headers=world.manager_b.headers)
    assert response.status_code == 403
    assert (await client.post(url, json=new)).status_code == 401
    still = await client.post(f"{CODES}/poll", json={"poll_token": issued["poll_token"]})
    assert still.status_code == 202


async def test_unknown_expired_and_claimed_codes_have_stable_errors(
    client: httpx.AsyncClient, services: Services, world: World
) -> None:
    """Unknown: not_found; expired: conflict `expired` (claim and poll); claimed twice: conflict `claimed`."""
    new = {"branch_id": world.branch_a, "kind": "order_board", "name": "Board"}
    unknown = await client.post(f"{CODES}/12345x/claim", json=new, headers=world.admin.headers)
    assert unknown.status_code == 404 and unknown.json()["error"]["details"]["reason"] == "unknown"
    assert (await client.post(f"{CODES}/poll", json={"poll_token": "nope"})).status_code == 404

    first = await _new_code(client)
    assert (await client.post(f"{CODES}/{first['code']}/claim", json=new, headers=world.admin.headers)).is_success
    twice = await client.post(f"{CODES}/{first['code']}/claim", json=new, headers=world.admin.headers)
    assert twice.status_code == 409 and twice.json()["error"]["details"]["reason"] == "claimed"

    late = await _new_code(client)
    async with services.db.session() as session:
        await session.execute(
            update(PairingCode).where(PairingCode.code == late["code"]).values(expires_at=utcnow() - timedelta(1))
        )
    expired = await client.post(f"{CODES}/{late['code']}/claim", json=new, headers=world.admin.headers)
    assert expired.status_code == 409 and expired.json()["error"]["details"]["reason"] == "expired"
    polled = await client.post(f"{CODES}/poll", json={"poll_token": late["poll_token"]})
    assert polled.status_code == 409 and polled.json()["error"]["details"]["reason"] == "expired"


async def test_a_claim_names_a_device_one_way_and_pairs_a_new_kiosk(
    client: httpx.AsyncClient, services: Services, world: World
) -> None:
    """`device_id` and the new device's fields exclude each other; `paired_terminal_id` pairs the new kiosk."""
    issued = await _new_code(client)
    url = f"{CODES}/{issued['code']}/claim"
    both = await client.post(url, json={"device_id": 1, "kind": "kiosk"}, headers=world.admin.headers)
    assert both.status_code == 422
    terminal = await add_device(services, world.branch_a, DeviceKind.PAYMENT_TERMINAL)
    new = {"branch_id": world.branch_a, "kind": "kiosk", "name": "K", "paired_terminal_id": terminal}
    claimed = await client.post(url, json=new, headers=world.admin.headers)
    assert claimed.status_code == 201, claimed.text
    assert claimed.json()["device"]["paired_terminal_id"] == terminal


async def test_asking_for_codes_is_rate_limited_per_address(client: httpx.AsyncClient, services: Services) -> None:
    """More codes a minute than the limit from one address: 429 with Retry-After."""
    limit = services.settings.LOGIN_RATE_LIMIT * 3
    for _ in range(limit):
        assert (await client.post(CODES)).status_code == 201
    refused = await client.post(CODES)
    assert refused.status_code == 429 and int(refused.headers["Retry-After"]) >= 1


async def test_an_enrolment_link_is_redeemed_once_for_its_device(
    client: httpx.AsyncClient, services: Services, world: World
) -> None:
    """A link's token gives its device a new secret in one step; a second redeem is `used`."""
    device_id = await add_device(services, world.branch_a, DeviceKind.KITCHEN_DISPLAY)
    async with services.db.session() as session:
        device = await session.get(Device, device_id)
        assert device is not None
        link = await issue_link(session, device, utcnow())
    redeemed = await client.post(f"{CODES}/redeem", json={"token": link.token})
    assert redeemed.status_code == 200, redeemed.text
    assert (await device_token(client, device_id, redeemed.json()["secret"])).status_code == 200
    again = await client.post(f"{CODES}/redeem", json={"token": link.token})
    assert again.status_code == 409 and again.json()["error"]["details"]["reason"] == "used"
    pending = await _new_code(client)
    refused = await client.post(f"{CODES}/redeem", json={"token": pending["poll_token"]})
    assert refused.status_code == 409 and refused.json()["error"]["details"]["reason"] == "pending"


async def test_the_openapi_document_lists_the_pending_answer_of_a_poll(client: httpx.AsyncClient) -> None:
    """The poll's 202 `pending` is documented beside its 200 credentials."""
    document = (await client.get("/api/v1/openapi.json")).json()
    answers = document["paths"]["/api/v1/pairing-codes/poll"]["post"]["responses"]
    assert answers["200"]["content"]["application/json"]["schema"]["$ref"].endswith("/CredentialsOut")
    assert answers["202"]["content"]["application/json"]["schema"]["$ref"].endswith("/PendingOut")
    assert "/api/v1/pairing-codes/{code}/claim" in document["paths"]
