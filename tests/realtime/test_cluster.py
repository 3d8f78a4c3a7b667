"""Two server processes sharing PostgreSQL and Redis: events, resume, outages, presence and revocation across them.

Each test gets its own database, its own redis-server and two fresh `python -m server serve`
processes (tests/cluster.py), so killing an instance or restarting Redis disturbs no other test.
"""

from __future__ import annotations

import asyncio
import signal
from collections.abc import AsyncIterator, Awaitable
from pathlib import Path
from typing import Any, TypeVar

import httpx
import pytest
from sqlalchemy import func, select, text

from channels import frames, names
from channels.client import DeviceClient
from channels.relay import RELAY_LOCK_KEY
from persistence import outbox
from persistence.database import Database
from persistence.tables import OutboxEvent
from server.app import build_services
from server.domain.order_states import OrderAction
from server.orders.order_changes import lock_order, move
from tests.cluster import SHUTDOWN_GRACE_S, Cluster, running_cluster

T = TypeVar("T")

# The presence timing every instance runs with (RedisPresence's defaults, which build_services uses): a killed
# instance's connections expire after the TTL, and the next sweep, at most one refresh later, announces them.
PRESENCE_TTL_S = 15.0
PRESENCE_REFRESH_S = 5.0


@pytest.fixture
async def cluster(tmp_path: Path) -> AsyncIterator[Cluster]:
    """Two server processes (a, b) sharing a fresh PostgreSQL database and a Redis of this test's own."""
    async with running_cluster(tmp_path) as running:
        yield running
    # pytest shows this only for a failed test: what the processes logged.
    print(running.log_tails())


async def _within(awaitable: Awaitable[T], seconds: float, what: str) -> T:
    """The awaitable's result, failing the test with `what` when it takes longer than `seconds`."""
    try:
        return await asyncio.wait_for(awaitable, max(seconds, 0.0))
    except TimeoutError:
        pytest.fail(f"{what} did not happen within {seconds:.1f} s")


async def _set_available(staff: DeviceClient, item_id: int, available: bool) -> dict[str, Any]:
    """86 an item (or bring it back) as staff; the reply data, which is also the event's data."""
    return await staff.command("item.set_available", {"item_id": item_id, "available": available})


async def _next_on(client: DeviceClient, channel: str, within_s: float = 10) -> dict[str, Any]:
    """The next event or snapshot of `channel`, skipping other channels' frames."""
    async with asyncio.timeout(within_s):
        while True:
            frame = await client.next_frame(within_s)
            if frame.get("channel") == channel:
                return frame


async def _catch_up(client: DeviceClient, channel: str, old_epoch: str, seq: int) -> list[dict[str, Any]]:
    """The frames of `channel` until the client stands at `seq` or later of an epoch other than `old_epoch`."""
    seen: list[dict[str, Any]] = []
    try:
        async with asyncio.timeout(10):
            while not seen or seen[-1]["epoch"] == old_epoch or seen[-1]["seq"] < seq:
                seen.append(await _next_on(client, channel))
    except TimeoutError:
        pytest.fail(f"the client never reached seq {seq} of a new epoch of {channel}; it got {seen}")
    return seen


def _shows(data: Any, item_id: int, available: bool) -> bool:
    """Whether a menu snapshot names the item with that availability, whatever the snapshot's exact shape."""
    if isinstance(data, dict):
        if data.get("item_id", data.get("id")) == item_id and data.get("available") is available:
            return True
        return any(_shows(value, item_id, available) for value in data.values())
    if isinstance(data, list):
        return any(_shows(value, item_id, available) for value in data)
    return False


def _missing(seen: list[dict[str, Any]], epoch: str, seq: int, change: dict[str, Any]) -> str | None:
    """Why a client that got `seen` does not know of `change` (event `seq` of `epoch`); None when it does."""
    for frame in seen:
        if frame["type"] == "event" and frame["epoch"] == epoch and frame["seq"] == seq:
            return None if frame["data"] == change else f"event {seq} carried {frame['data']}, not {change}"
    covering = [frame for frame in seen if frame["type"] == "snapshot" and frame["epoch"] == epoch]
    covering = [frame for frame in covering if frame["seq"] >= seq]
    if not covering:
        return f"neither event {seq} nor a snapshot covering it arrived: {seen}"
    snapshot = covering[-1]
    if _shows(snapshot["data"], change["item_id"], change["available"]):
        return None
    return (
        f"it got a snapshot at seq {snapshot['seq']} instead of event {seq}, and that snapshot ({snapshot['data']}) "
        f"does not show item {change['item_id']} available={change['available']}: the committed change never "
        "reached the device (the branch:{b}:menu snapshot, "
        "server/realtime/snapshots.py Snapshots._menu, lacks availability)"
    )


async def _unpublished(cluster: Cluster) -> list[outbox.Event]:
    """The outbox rows no broker has taken yet, oldest first."""
    async with cluster.db.session() as session:
        return await outbox.unpublished(session, 10_000)


async def _outbox_drained(cluster: Cluster) -> None:
    """Wait until every outbox row is published."""
    while True:
        async with cluster.db.session() as session:
            waiting = await session.scalar(
                select(func.count()).select_from(OutboxEvent).where(OutboxEvent.published_at.is_(None))
            )
        if not waiting:
            return
        await asyncio.sleep(0.1)


async def test_an_event_made_on_one_instance_reaches_kiosks_on_both(cluster: Cluster) -> None:
    """Staff commands sent to A reach a kiosk on A and a kiosk on B as the very same frames: same seqs and epoch."""
    seed = cluster.seed
    menu = names.branch_menu(seed.branch_id)
    first, second, _ = seed.item_ids
    async with (
        DeviceClient(cluster.a.ws, seed.kiosks[0].token) as on_a,
        DeviceClient(cluster.b.ws, seed.kiosks[1].token) as on_b,
        DeviceClient(cluster.a.ws, seed.staff_token) as staff,
    ):
        assert on_a.welcome["channels"][menu] == on_b.welcome["channels"][menu]
        epoch = on_a.welcome["channels"][menu]["epoch"]
        replies = [
            await _set_available(staff, first, False),
            await _set_available(staff, second, False),
            await _set_available(staff, first, True),
        ]
        heard_on_a = [await on_a.next_event(menu, "stock.changed") for _ in replies]
        heard_on_b = [await on_b.next_event(menu, "stock.changed") for _ in replies]
    assert heard_on_a == heard_on_b
    assert [(event["seq"], event["epoch"], event["data"]) for event in heard_on_a] == [
        (seq, epoch, reply) for seq, reply in enumerate(replies, 1)
    ]


async def test_a_device_of_a_killed_instance_resumes_on_the_other_without_gap_or_duplicate(cluster: Cluster) -> None:
    """A kiosk whose instance is SIGKILLed resumes on B: exactly the events it missed, in order, then live ones."""
    seed = cluster.seed
    menu = names.branch_menu(seed.branch_id)
    kiosk = seed.kiosks[0]
    first, second, third = seed.item_ids
    async with DeviceClient(cluster.b.ws, seed.staff_token) as staff:
        async with DeviceClient(cluster.a.ws, kiosk.token) as on_a:
            before = await _set_available(staff, first, False)
            heard = await on_a.next_event(menu, "stock.changed")
            assert (heard["seq"], heard["data"]) == (1, before)
            await cluster.a.kill()
            await _within(on_a.closed.wait(), 5, "the kiosk noticing its instance died")
            missed = [
                await _set_available(staff, second, False),
                await _set_available(staff, third, False),
                await _set_available(staff, first, True),
            ]
            resume = on_a.resume_state()

        async with DeviceClient(cluster.b.ws, kiosk.token, resume=resume) as on_b:
            channels = on_b.welcome["channels"]
            assert channels[menu] == {"seq": 1 + len(missed), "epoch": heard["epoch"], "resumed": True}
            assert channels[names.device(kiosk.id)]["resumed"] is True
            replayed = [await _next_on(on_b, menu) for _ in missed]
            assert [(frame["type"], frame["seq"], frame["data"]) for frame in replayed] == [
                ("event", seq, change) for seq, change in enumerate(missed, 2)
            ]
            live = await _set_available(staff, second, True)
            after = await _next_on(on_b, menu)
            assert (after["type"], after["seq"], after["epoch"], after["data"]) == (
                "event",
                2 + len(missed),
                heard["epoch"],
                live,
            )


# A blip is usually over before the broker's pub/sub reconnects, so the kiosks get the events themselves; after a
# longer outage the relay publishes first and the kiosks are resynced with a snapshot. Both must lose nothing.
@pytest.mark.parametrize("outage_s", [0.0, 3.0], ids=["blip", "3s-outage"])
async def test_events_committed_while_redis_is_down_reach_the_devices_once_it_is_back(
    cluster: Cluster, outage_s: float
) -> None:
    """With Redis down commands still succeed; once it is back every change reaches kiosks on both instances."""
    seed = cluster.seed
    menu = names.branch_menu(seed.branch_id)
    first, second, third = seed.item_ids
    async with (
        DeviceClient(cluster.a.ws, seed.kiosks[0].token) as on_a,
        DeviceClient(cluster.b.ws, seed.kiosks[1].token) as on_b,
        DeviceClient(cluster.a.ws, seed.staff_token) as staff,
    ):
        kiosks = {"kiosk on A": on_a, "kiosk on B": on_b}
        old_epoch = on_a.welcome["channels"][menu]["epoch"]
        await _set_available(staff, first, False)
        for kiosk in kiosks.values():
            await kiosk.next_event(menu, "stock.changed")
        # Published rows are marked in the background; the check below must only see the outage's.
        await _within(_outbox_drained(cluster), 10, "the first change marked published")

        await cluster.redis.stop()
        during = [await _set_available(staff, second, False), await _set_available(staff, third, False)]
        waiting = await _unpublished(cluster)
        assert [row.data for row in waiting] == during, "the outbox must hold what was committed while Redis was down"
        await asyncio.sleep(outage_s)
        await cluster.redis.start()
        await _within(_outbox_drained(cluster), 10, "the relay publishing the outbox once Redis was back")

        # History was lost with Redis: each kiosk moves to a new epoch, by the events or by a snapshot.
        seen = {name: await _catch_up(kiosk, menu, old_epoch, len(during)) for name, kiosk in kiosks.items()}
        new_epoch = seen["kiosk on A"][-1]["epoch"]
        assert seen["kiosk on B"][-1]["epoch"] == new_epoch != old_epoch

        # The new epoch's history holds exactly the events of the outage, in commit order.
        async with DeviceClient(cluster.b.ws, seed.staff_token) as reader:
            status = await reader.command("subscribe", {"channel": menu, "since": 0, "epoch": new_epoch})
            assert status == {"channel": menu, "seq": len(during), "epoch": new_epoch, "resumed": True}
            history = [await _next_on(reader, menu) for _ in during]
        assert [(frame["type"], frame["seq"], frame["data"]) for frame in history] == [
            ("event", seq, change) for seq, change in enumerate(during, 1)
        ]

        # Live events follow, on both instances, right after where each kiosk stands.
        later = await _set_available(staff, first, True)
        for name, kiosk in kiosks.items():
            frame = await _next_on(kiosk, menu)
            assert (frame["type"], frame["seq"], frame["epoch"], frame["data"]) == (
                "event",
                len(during) + 1,
                new_epoch,
                later,
            ), name

    # Nothing committed is lost: each kiosk got every change of the outage, as an event or inside a snapshot.
    for name, frames_seen in seen.items():
        for seq, change in enumerate(during, 1):
            problem = _missing(frames_seen, new_epoch, seq, change)
            assert problem is None, f"{name}: {problem}"


async def test_devices_of_a_killed_instance_go_offline_on_the_other(cluster: Cluster) -> None:
    """After A is SIGKILLed, staff watching the branch's devices on B hear device.offline for A's kiosk in time."""
    seed = cluster.seed
    devices = names.branch_devices(seed.branch_id)
    kiosk = seed.kiosks[0]
    async with DeviceClient(cluster.b.ws, seed.staff_token) as staff:
        await staff.command("subscribe", {"channel": devices})
        async with DeviceClient(cluster.a.ws, kiosk.token):
            online = await staff.next_event(devices, "device.online")
            assert online["data"]["device_id"] == kiosk.id
            await cluster.a.kill()
            deadline = PRESENCE_TTL_S + PRESENCE_REFRESH_S + 3
            offline = await _within(
                staff.next_event(devices, "device.offline", timeout=deadline), deadline, "device.offline on B"
            )
    assert offline["data"]["device_id"] == kiosk.id
    assert offline["data"]["online"] is False


async def test_disabling_a_device_on_one_instance_closes_its_socket_on_the_other(cluster: Cluster) -> None:
    """A kiosk disabled over REST on A has its socket on B closed with 4003 within a second."""
    seed = cluster.seed
    kiosk = seed.kiosks[0]
    loop = asyncio.get_running_loop()
    async with (
        DeviceClient(cluster.b.ws, kiosk.token) as on_b,
        httpx.AsyncClient(base_url=cluster.a.http, timeout=5) as http,
    ):
        started = loop.time()
        response = await http.post(f"/api/v1/devices/{kiosk.id}/disable", headers=seed.manager_headers)
        assert response.status_code == 204, response.text
        await _within(on_b.closed.wait(), started + 1 - loop.time(), "closing the kiosk's socket on B")
        assert on_b.close_code == frames.FORBIDDEN


async def test_sigterm_closes_sockets_with_1001_and_exits_within_the_grace(cluster: Cluster) -> None:
    """SIGTERM on A closes each of its sockets with 1001, announces its devices offline, and exits in the grace."""
    seed = cluster.seed
    devices = names.branch_devices(seed.branch_id)
    loop = asyncio.get_running_loop()
    async with DeviceClient(cluster.b.ws, seed.staff_token) as watcher:
        await watcher.command("subscribe", {"channel": devices})
        async with (
            DeviceClient(cluster.a.ws, seed.kiosks[0].token) as kiosk,
            DeviceClient(cluster.a.ws, seed.kitchen.token) as kitchen,
            DeviceClient(cluster.a.ws, seed.staff_token) as staff,
        ):
            online = [await watcher.next_event(devices, "device.online") for _ in range(2)]
            assert {event["data"]["device_id"] for event in online} == {seed.kiosks[0].id, seed.kitchen.id}

            cluster.a.send_signal(signal.SIGTERM)
            signalled = loop.time()
            for client in (kiosk, kitchen, staff):
                await _within(client.closed.wait(), signalled + SHUTDOWN_GRACE_S - loop.time(), "closing a socket")
            assert [client.close_code for client in (kiosk, kitchen, staff)] == [frames.GOING_AWAY] * 3
            # Each told when to come back, at random within WS_RETRY_SPREAD_S (5 s by default).
            hints = [frames.retry_after(client.close_reason) for client in (kiosk, kitchen, staff)]
            assert all(hint is not None and 0 <= hint <= 5 for hint in hints), hints
            returncode = await _within(
                cluster.a.wait_exit(SHUTDOWN_GRACE_S), signalled + SHUTDOWN_GRACE_S - loop.time(), "the exit of A"
            )
            # uvicorn re-raises the signal once it has shut down cleanly.
            assert returncode in (0, -signal.SIGTERM)
        offline = [await watcher.next_event(devices, "device.offline", timeout=1) for _ in range(2)]
    assert {event["data"]["device_id"] for event in offline} == {seed.kiosks[0].id, seed.kitchen.id}


async def test_a_kiosk_on_one_instance_is_paid_through_a_terminal_on_the_other(cluster: Cluster) -> None:
    """payment.start on A reaches the paired terminal on B; its approval on B pays the order for the kiosk on A."""
    seed = cluster.seed
    kiosk_channel, terminal_channel = names.device(seed.kiosks[0].id), names.device(seed.terminal.id)
    async with (
        DeviceClient(cluster.b.ws, seed.terminal.token) as terminal,
        DeviceClient(cluster.a.ws, seed.kiosks[0].token) as kiosk,
        DeviceClient(cluster.a.ws, seed.kitchen.token) as kitchen,
    ):
        cart = await kiosk.command("cart.create")
        await kiosk.command("cart.add", {"cart_id": cart["id"], "item_id": seed.item_ids[0], "qty": 2})
        order = await kiosk.command("order.place", {"cart_id": cart["id"]})
        payment = await kiosk.command("payment.start", {"order_id": order["id"]})
        asked = await terminal.next_event(terminal_channel, "payment.requested")
        assert (asked["data"]["id"], asked["data"]["amount"]) == (payment["id"], order["total"])
        await terminal.command("payment.result", {"payment_id": payment["id"], "status": "approved"})
        assert (await kiosk.next_event(kiosk_channel, "payment.approved"))["data"]["id"] == payment["id"]
        assert (await kiosk.next_event(kiosk_channel, "order.paid"))["data"]["id"] == order["id"]
        queued = await kitchen.next_event(names.branch_kitchen(seed.branch_id), "order.queued")
        assert queued["data"]["id"] == order["id"]


async def _move_unpublished(db: Database, order_id: int, action: OrderAction) -> list[outbox.Event]:
    """Apply `action` to the order and commit it with its events, publishing nothing: its outbox rows."""
    events = outbox.Pending()
    async with db.session() as session:
        order = await lock_order(session, order_id)
        assert order is not None
        await move(session, order, action, events.emit)
        await events.write(session)
    return events.written


async def test_two_moves_published_the_other_way_round_leave_every_device_on_the_newest(cluster: Cluster) -> None:
    """Two moves of one order, committed in order, published after commit by two instances the other way round:
    the devices hear the older state last, and keep the newer by its version."""
    seed = cluster.seed
    kitchen_channel, orders_channel = names.branch_kitchen(seed.branch_id), names.branch_orders(seed.branch_id)
    async with (
        DeviceClient(cluster.a.ws, seed.kiosks[0].token) as kiosk,
        DeviceClient(cluster.a.ws, seed.kitchen.token) as kitchen,
        DeviceClient(cluster.b.ws, seed.staff_token) as staff,
    ):
        await staff.command("subscribe", {"channel": orders_channel})
        cart = await kiosk.command("cart.create")
        await kiosk.command("cart.add", {"cart_id": cart["id"], "item_id": seed.item_ids[0]})
        order = await kiosk.command("order.place", {"cart_id": cart["id"]})
        paid = await staff.command("order.mark_paid", {"order_id": order["id"]})
        assert (await kitchen.next_event(kitchen_channel, "order.queued"))["data"] == paid
        assert (await staff.next_event(orders_channel, "order.paid"))["data"] == paid

        # Two instances' publishers; the relays of the running servers are kept out meanwhile (they take this lock
        # first), so that nothing but these publishes puts the rows on the channels.
        first, second = (build_services(cluster.settings, db=cluster.db, prefix="kiosk") for _ in range(2))
        try:
            async with cluster.db.engine.begin() as lock:
                await lock.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": RELAY_LOCK_KEY})
                started = await _move_unpublished(cluster.db, order["id"], OrderAction.START)
                readied = await _move_unpublished(cluster.db, order["id"], OrderAction.READY)
                await second.relay.publish_committed(readied)
                await first.relay.publish_committed(started)
                for publisher in (first, second):
                    await asyncio.wait_for(publisher.relay.marked(), 10)
        finally:
            for publisher in (first, second):
                await publisher.stop()
                await publisher.backend.close()

        for device, channel in ((kitchen, kitchen_channel), (staff, orders_channel)):
            heard = [(await device.next_event(channel))["data"] for _ in range(2)]
            assert [(data["status"], data["version"]) for data in heard] == [
                ("ready", paid["version"] + 2),
                ("preparing", paid["version"] + 1),
            ]
            assert device.versions.get("order", order["id"]) == heard[0]
