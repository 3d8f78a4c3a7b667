"""REST POS deliveries: failures are listed and readable within the caller's branch, and an admin can retry them."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable
from datetime import datetime
from typing import Any, TypeVar

import httpx
import pytest

from persistence.base import utcnow
from server.services import Services
from server.settings import Settings
from server.workers.pos import PosWorker
from tests.integrations.fake_pos import FakePos, Reply, running_pos
from tests.shop import Shop
from tests.world import World

DELIVERIES = "/api/v1/pos-deliveries"
LIMIT_S = 10

T = TypeVar("T")


async def within(awaitable: Awaitable[T]) -> T:
    """Await with the tests' time limit."""
    return await asyncio.wait_for(awaitable, LIMIT_S)


@pytest.fixture
async def pos() -> AsyncIterator[FakePos]:
    """The POS on loopback; answers 200 unless a test scripts otherwise."""
    async with running_pos() as fake:
        yield fake


@pytest.fixture
def settings(settings: Settings, pos: FakePos) -> Settings:
    """The runtime's settings with the loopback POS configured, so paying an order queues its delivery."""
    return settings.model_copy(update={"POS_API_URL": pos.url, "POS_API_KEY": "pos-test-key"})


def worker(services: Services, **options: Any) -> PosWorker:
    """A worker with a short timeout over the test's services."""
    return PosWorker(services.db, services.settings, timeout_s=2.0, **options)


async def get(client: httpx.AsyncClient, path: str, headers: dict[str, str], **params: Any) -> httpx.Response:
    """GET within the time limit."""
    return await within(client.get(path, headers=headers, params=params))


async def retry(client: httpx.AsyncClient, delivery_id: int, headers: dict[str, str]) -> httpx.Response:
    """POST the retry of a delivery within the time limit."""
    return await within(client.post(f"{DELIVERIES}/{delivery_id}/retry", headers=headers))


def items(response: httpx.Response) -> list[dict[str, Any]]:
    """The items of a 200 list page."""
    assert response.status_code == 200, response.text
    found: list[dict[str, Any]] = response.json()["items"]
    return found


async def test_failed_and_delivered_pushes_are_listed_newest_first_within_the_branch(
    client: httpx.AsyncClient, shop: Shop, pos: FakePos, world: World
) -> None:
    """Admins and branch a see both deliveries with status, attempts and the POS's answer; branch b sees none."""
    push = worker(shop.services)
    pos.will(Reply(400, "unknown item"))
    refused = await shop.paid_order()
    await within(push.run_once())
    accepted = await shop.paid_order()
    await within(push.run_once())
    await within(push.close())

    listed = items(await get(client, DELIVERIES, world.admin.headers))
    assert [(row["order_id"], row["status"]) for row in listed] == [
        (accepted["id"], "delivered"),
        (refused["id"], "failed"),
    ]
    failed = listed[1]
    assert failed["branch_id"] == shop.branch_id
    assert (failed["attempts"], failed["last_error"], failed["delivered_at"]) == (1, "HTTP 400: unknown item", None)
    assert failed["idempotency_key"] == pos.received[0].headers["idempotency-key"]
    assert listed[0]["delivered_at"] is not None
    assert set(failed) == {
        "id",
        "order_id",
        "branch_id",
        "idempotency_key",
        "status",
        "attempts",
        "next_attempt_at",
        "last_error",
        "delivered_at",
        "created_at",
    }

    only_failed = await get(client, DELIVERIES, world.admin.headers, status="failed")
    assert [row["id"] for row in items(only_failed)] == [failed["id"]]
    assert only_failed.json()["total"] == 1
    by_order = await get(client, DELIVERIES, world.staff_a.headers, order_id=accepted["id"])
    assert [row["order_id"] for row in items(by_order)] == [accepted["id"]]
    assert len(items(await get(client, DELIVERIES, world.staff_a.headers))) == 2
    assert items(await get(client, DELIVERIES, world.admin.headers, branch_id=world.branch_b)) == []
    assert items(await get(client, DELIVERIES, world.staff_b.headers)) == []
    assert (await get(client, DELIVERIES, world.staff_b.headers, branch_id=world.branch_a)).status_code == 403
    bad = await get(client, DELIVERIES, world.admin.headers, status="lost")
    assert (bad.status_code, bad.json()["error"]["code"]) == (422, "invalid")

    read = await get(client, f"{DELIVERIES}/{failed['id']}", world.manager_a.headers)
    assert read.status_code == 200 and read.json() == failed
    assert (await get(client, f"{DELIVERIES}/{failed['id']}", world.staff_b.headers)).status_code == 404
    missing = await get(client, f"{DELIVERIES}/999999", world.admin.headers)
    assert (missing.status_code, missing.json()["error"]["code"]) == (404, "not_found")
    assert (await within(client.get(DELIVERIES))).status_code == 401


async def test_an_exhausted_delivery_shows_as_failed_and_an_admin_retry_delivers_it(
    client: httpx.AsyncClient, shop: Shop, pos: FakePos, world: World
) -> None:
    """The budget spent, REST shows the failure; only an admin may retry, and the retry goes out with the same key."""
    pos.default = Reply(500, "down")
    push = worker(shop.services, max_attempts=2, rng=lambda: 0.0)
    order = await shop.paid_order()
    now = utcnow()
    for _ in range(2):
        assert await within(push.run_once(now)) == 1
        [row] = items(await get(client, DELIVERIES, world.admin.headers, order_id=order["id"]))
        now = datetime.fromisoformat(row["next_attempt_at"])
    assert (row["status"], row["attempts"]) == ("failed", 2)
    assert row["last_error"] == "gave up after 2 attempts: HTTP 500: down"
    assert [r["id"] for r in items(await get(client, DELIVERIES, world.staff_a.headers, status="failed"))] == [
        row["id"]
    ]

    for actor in (world.manager_a, world.staff_a):
        refused = await retry(client, row["id"], actor.headers)
        assert (refused.status_code, refused.json()["error"]["code"]) == (403, "forbidden")
    assert (await retry(client, 999999, world.admin.headers)).status_code == 404

    before = utcnow()
    retried = await retry(client, row["id"], world.admin.headers)
    assert retried.status_code == 200, retried.text
    body = retried.json()
    assert (body["status"], body["attempts"], body["last_error"]) == ("pending", 0, row["last_error"])
    assert before <= datetime.fromisoformat(body["next_attempt_at"]) <= utcnow()
    again = await retry(client, row["id"], world.admin.headers)
    assert (again.status_code, again.json()["error"]["code"]) == (409, "conflict")
    assert again.json()["error"]["details"] == {"id": row["id"], "status": "pending"}

    pos.default = Reply(200)
    assert await within(push.run_once()) == 1
    await within(push.close())
    done = (await get(client, f"{DELIVERIES}/{row['id']}", world.staff_a.headers)).json()
    assert (done["status"], done["attempts"]) == ("delivered", 1)
    assert {r.headers["idempotency-key"] for r in pos.received} == {row["idempotency_key"]}
    assert len(pos.received) == 3
    delivered = await retry(client, row["id"], world.admin.headers)
    assert (delivered.status_code, delivered.json()["error"]["details"]["status"]) == (409, "delivered")
