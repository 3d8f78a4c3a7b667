"""The simulator against a live server: its devices provisioned, the whole flow driven, its counts true."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest
from sqlalchemy import func, select, update

from bench.provision import BRANCH_NAME, Fleet, SimDevice, provision
from bench.sim import Plan, Simulation
from bench.sim_client import SimClient
from channels.brokers.base import event_frame, event_tail
from channels.frames import encode_data, reply_ok
from channels.versions import Versions
from persistence.enums import DeviceKind, OrderStatus
from persistence.tables import Branch, Device, Item, Order, OrderStation, Station
from server.payloads.menu import branch_menu
from server.services import Services
from tests.commands.test_combos import add_combo
from tests.live import live_server
from tests.shop import Shop


class Recorder:
    """A meter that notes when it starts and stops, in a log it shares with another; its start takes a while."""

    def __init__(self, name: str, log: list[tuple[str, float]], start_s: float = 0.0) -> None:
        self.name = name
        self.log = log
        self.start_s = start_s

    async def start(self) -> None:
        """Note the start once the wait is over."""
        await asyncio.sleep(self.start_s)
        self.log.append((f"{self.name} started", time.monotonic()))

    async def stop(self) -> None:
        """Note the stop."""
        self.log.append((f"{self.name} stopped", time.monotonic()))


async def test_the_simulator_orders_pays_cooks_and_counts_what_the_server_did(services: Services, shop: Shop) -> None:
    """Six orders with half the charges declined: every paid order is completed, and the tally matches the database;
    the kiosks' carts are in the languages the branch offers (copied from the first branch's)."""
    async with services.db.session() as session:
        await session.execute(update(Branch).values(default_locale="de", locales=["de", "en"], kitchen_locale="de"))
    fleet = await provision(services.db, services.tokens, kiosks=2, kitchens=2, boards=1)
    again = await provision(services.db, services.tokens, kiosks=2, kitchens=2, boards=1)
    assert [k.id for k in again.kiosks] == [k.id for k in fleet.kiosks]  # devices are reused, not added again
    assert fleet.locales == ("de", "en")
    async with live_server(services) as live:
        plan = Plan(
            urls=[live.ws],
            kiosks=2,
            kitchens=2,
            boards=1,
            duration_s=None,
            orders=6,
            approve_after_s=0.0,
            decline_share=0.5,
            kitchen_step_s=0.0,
            seed=7,
            progress=False,
        )
        log: list[tuple[str, float]] = []
        meters = [Recorder("slow", log, start_s=0.3), Recorder("quick", log)]
        tally = await Simulation(plan, fleet, [live.ws], meters=meters).run()

    # The meters bracket the orders, the first started first and stopped last; a meter's wait is not run time.
    assert [entry for entry, _ in log] == ["slow started", "quick started", "quick stopped", "slow stopped"]
    assert log[1][1] <= tally.started and tally.ended is not None and tally.ended <= log[2][1]
    assert dict(tally.errors) == {}
    assert tally.placed == 6 and len(tally.place_s) == 6
    assert tally.declined > 0
    assert 0 < tally.paid == tally.completed
    assert len(tally.kitchen_s) == tally.paid and len(tally.board_s) == tally.completed
    async with services.db.session() as session:
        branch_id = await session.scalar(select(Branch.id).where(Branch.name == BRANCH_NAME))
        statuses = dict(
            (
                await session.execute(
                    select(Order.status, func.count()).where(Order.branch_id == branch_id).group_by(Order.status)
                )
            ).all()
        )
        devices = await session.scalar(select(func.count()).select_from(Device).where(Device.branch_id == branch_id))
        locales = set((await session.scalars(select(Order.locale).where(Order.branch_id == branch_id))).all())
    assert statuses.get(OrderStatus.COMPLETED, 0) == tally.completed
    assert statuses.get(OrderStatus.CANCELLED, 0) == 6 - tally.paid  # three declines in a row: cancelled
    assert devices == 2 + 2 + 2 + 1
    assert locales and locales <= {"de", "en"}
    report = tally.report()
    assert "| placed | 6 |" in report and "order.place reply" in report


async def test_station_displays_bump_their_lines_and_the_kitchen_hands_over_what_their_bumps_made_ready(
    services: Services, shop: Shop
) -> None:
    """With grill and drinks stations (colas at drinks, the rest at the grill by default), every paid order is made
    ready by its stations' bumps alone and completed by the kitchen displays; a run without stations removes them."""
    async with services.db.session() as session:
        await session.execute(update(Item).where(Item.id == shop.cola).values(station="drinks"))
    fleet = await provision(services.db, services.tokens, kiosks=2, kitchens=1, boards=1, stations=("grill", "drinks"))
    assert sorted(fleet.stations) == ["drinks", "grill"]
    async with live_server(services) as live:
        plan = Plan(
            urls=[live.ws],
            kiosks=2,
            kitchens=1,
            boards=1,
            duration_s=None,
            orders=6,
            approve_after_s=0.0,
            decline_share=0.0,
            kitchen_step_s=0.0,
            seed=3,
            progress=False,
            stations=("grill", "drinks"),
        )
        tally = await Simulation(plan, fleet, [live.ws]).run()
    assert dict(tally.errors) == {}
    assert tally.paid == tally.completed == 6
    async with services.db.session() as session:
        branch_id = await session.scalar(select(Branch.id).where(Branch.name == BRANCH_NAME))
        orders = (await session.scalars(select(Order).where(Order.branch_id == branch_id))).all()
        bumped = await session.scalar(select(func.count()).select_from(OrderStation))
        # Never moved by the kitchen displays' own order.start or order.ready: started and readied by bumps.
        routed = {line.station for order in orders for line in order.lines}
    assert {order.status for order in orders} == {OrderStatus.COMPLETED}
    assert routed <= {"grill", "drinks"} and bumped == sum(
        len({line.station for line in order.lines}) for order in orders
    )
    again = await provision(services.db, services.tokens, kiosks=2, kitchens=1, boards=1)
    assert again.stations == {}
    async with services.db.session() as session:
        assert await session.scalar(select(func.count()).select_from(Station)) == 0


class Chatty:
    """A device client that always has another frame ready, as a kitchen display does under load."""

    def __init__(self) -> None:
        self.closed = asyncio.Event()
        self.versions = Versions()

    async def next_frame(self, timeout: float = 10) -> dict[str, Any]:  # noqa: ASYNC109 (DeviceClient's signature)
        """A frame at once (after yielding to the loop)."""
        await asyncio.sleep(0)
        return {"type": "event", "channel": "branch:1:kitchen", "event": "order.ready", "data": {"id": 1}}


async def test_a_listener_stops_when_the_run_ends_even_while_frames_keep_coming() -> None:
    """The end of a run stops its listeners by a flag: a cancellation can be lost as a frame arrives (Python 3.11)."""
    simulation = Simulation(Plan(urls=[], progress=False), Fleet(0, [], {}, [], []), [])
    heard: list[dict[str, Any]] = []
    listener = asyncio.ensure_future(simulation._listen(Chatty(), heard.append))  # type: ignore[arg-type]
    while len(heard) < 10:  # noqa: ASYNC110
        await asyncio.sleep(0)
    simulation.finished = True
    await asyncio.wait_for(listener, 5)
    assert listener.done() and len(heard) >= 10


class HeardOutOfOrder:
    """A device client that heard two states of one board entry, the newer first, and hands both frames on."""

    close_code = 1000

    def __init__(self, frames: list[dict[str, Any]]) -> None:
        self.closed = asyncio.Event()
        self.versions = Versions()
        self.frames = frames
        for frame in frames:  # as DeviceClient does when a frame arrives
            self.versions.take(frame["event"], frame["data"])

    async def next_frame(self, timeout: float = 10) -> dict[str, Any]:  # noqa: ASYNC109 (DeviceClient's signature)
        """The next frame; once none is left, the connection closes."""
        if not self.frames:
            self.closed.set()
            raise TimeoutError
        return self.frames.pop(0)


async def test_a_listener_ignores_an_event_older_than_one_its_device_already_heard() -> None:
    """Out of commit order across instances: `ready` then the older `preparing`; the device acts on `ready` only."""
    simulation = Simulation(Plan(urls=[], progress=False), Fleet(0, [], {}, [], []), [])

    def entry(version: int, column: str) -> dict[str, Any]:
        data = {"order_id": 3, "version": version, "number": 12, "column": column}
        return {"type": "event", "channel": "branch:1:board", "event": "board.updated", "data": data}

    heard: list[dict[str, Any]] = []
    client = HeardOutOfOrder([entry(5, "ready"), entry(4, "preparing")])
    await asyncio.wait_for(simulation._listen(client, heard.append), 5)  # type: ignore[arg-type]
    assert heard == [entry(5, "ready")]


class Dropped:
    """A device client the server has closed, as it closes a device that reads too slowly."""

    close_code = 4008

    def __init__(self) -> None:
        self.closed = asyncio.Event()
        self.closed.set()


async def test_a_device_the_server_closes_during_a_run_is_an_error_named_by_its_close_code() -> None:
    """Its waits would only show as timeouts; the tally says the server closed it, and with what."""
    simulation = Simulation(Plan(urls=[], progress=False), Fleet(0, [], {}, [], []), [])
    await asyncio.wait_for(simulation._listen(Dropped(), lambda frame: None), 5)  # type: ignore[arg-type]
    assert simulation.tally.errors == {"closed 4008": 1}
    # Closed by the simulator itself at the end of the run: no error.
    simulation.finished = True
    await asyncio.wait_for(simulation._listen(Dropped(), lambda frame: None), 5)  # type: ignore[arg-type]
    assert simulation.tally.errors == {"closed 4008": 1}


def test_a_simulated_kitchen_display_skips_only_events_it_never_acts_on() -> None:
    """Frames as the server writes them: a display skips other steps and other displays' tickets, reads the rest."""
    # As the simulator's displays decide: `order.queued` of their own tickets, or of any when the id is not shown.
    client = SimClient(
        "ws://unused", "token", lambda event, order_id: event == "order.queued" and order_id in (None, 7)
    )

    def event(name: str, data: dict[str, Any]) -> str:
        tail = event_tail(name, encode_data(data), "2026-11-27T10:00:00.000Z")
        return event_frame("branch:1:kitchen", 3, "e1", tail)

    assert not client.skips(event("order.queued", {"id": 7, "number": 12}))
    assert client.skips(event("order.queued", {"id": 8, "number": 13}))
    assert client.skips(event("order.updated", {"id": 7, "status": "preparing"}))
    # Without the id first, or not an event at all, the frame is read: skipping is only ever a saving.
    assert not client.skips(event("order.queued", {"number": 12, "id": 8}))
    assert not client.skips(reply_ok("c1", {"id": 8}))
    assert not SimClient("ws://unused", "token").skips(event("order.updated", {"id": 7}))


class Kitchen:
    """A device that answers every command at once and remembers what it was sent."""

    def __init__(self) -> None:
        self.closed = asyncio.Event()
        self.sent: list[tuple[str, int]] = []

    async def command(self, kind: str, data: dict[str, Any], **_: Any) -> dict[str, Any]:
        """Remember the command and its order; succeed."""
        self.sent.append((kind, data["order_id"]))
        return {}


async def test_a_kitchen_display_takes_up_the_tickets_of_a_snapshot_where_they_stand_and_only_once() -> None:
    """A snapshot instead of missed events: a preparing ticket is readied and completed, a ready one completed."""
    display = SimDevice(1, DeviceKind.KITCHEN_DISPLAY, "sim-kitchen-00001", "token")
    simulation = Simulation(Plan(urls=[], kitchen_step_s=0, progress=False), Fleet(0, [], {}, [display], []), [])
    simulation.kiosks.placed_ids = {2, 3}
    kitchen = Kitchen()
    tickets = [{"id": 2, "status": "preparing"}, {"id": 3, "status": "ready"}]
    snapshot = {"type": "snapshot", "channel": "branch:1:kitchen", "seq": 9, "epoch": "e", "data": {"tickets": tickets}}
    for _ in range(2):  # the same ticket shown twice (a resume from an older position) is cooked once
        simulation.kitchens.snapshot(kitchen, 0, snapshot)  # type: ignore[arg-type]
    await asyncio.wait_for(asyncio.gather(*simulation._tasks), 5)
    assert sorted(kitchen.sent) == [("order.complete", 2), ("order.complete", 3), ("order.ready", 2)]
    assert simulation.tally.completed == 2


async def test_a_kiosk_reads_from_a_snapshot_how_the_payments_it_missed_ended() -> None:
    """Gone from the open payments: paid when its order no longer awaits payment, declined when it still does."""
    simulation = Simulation(Plan(urls=[], progress=False), Fleet(0, [], {}, [], []), [])
    simulation.kiosks.paying[5] = {10: 100, 11: 101, 12: 102}
    data = {"carts": [], "orders": [{"id": 101}, {"id": 102}], "payments": [{"id": 12}]}
    simulation.kiosks.snapshot(5, {"type": "snapshot", "channel": "device:5", "seq": 3, "epoch": "e", "data": data})
    outcomes = simulation.kiosks.payments[5]
    assert await asyncio.wait_for(outcomes.wait(10), 5) == "approved"
    assert await asyncio.wait_for(outcomes.wait(11), 5) == "declined"
    with pytest.raises(TimeoutError):
        await asyncio.wait_for(outcomes.wait(12), 0.05)  # still open: its own event will tell


async def test_a_simulated_kiosk_fills_a_combos_slots_as_the_server_takes_them(shop: Shop) -> None:
    """Given the shop's menu with its combo, the simulator's combo lines fill every slot with an available choice
    (never the sold-out Shake) and its options, and the server takes each of them."""
    combo = await add_combo(shop)
    await shop.set_item(combo.shake, stock=0)
    await shop.set_item(shop.fries, stock=None)  # ten lines of up to two combos would use more than its ten
    async with shop.services.db.session() as session:
        menu = await branch_menu(session, shop.branch_id)
    simulation = Simulation(Plan(urls=[], progress=False, seed=3), Fleet(0, [], {}, [], []), [])
    carts = simulation.carts
    carts.menu = [item for category in menu["categories"] for item in category["items"] if item["combo_slots"]]
    cart = await shop.send(shop.kiosk, "cart.create", {})
    for _ in range(10):
        [line] = carts.lines()
        assert [c["slot_id"] for c in line["components"]] == [combo.main, combo.side, combo.drink]
        assert combo.shake not in [c["item_id"] for c in line["components"]]
        data = await shop.send(shop.kiosk, "cart.add", {"cart_id": cart["id"], **line})
        assert all(added["problem"] is None for added in data["lines"])
    # Now and then a burger of another size than the default.
    sizes = {c["options"][0]["name"] for line in data["lines"] for c in line["components"][:1]}
    assert sizes == {"Regular", "Large"}
