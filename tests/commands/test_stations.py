"""Kitchen stations (server/commands/stations.py, server/orders/station_progress.py): lines routed at placement,
each station's display bumping its part, and the order ready when the last station it waits for is done."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import select, update

from channels import names
from channels.names import parse
from persistence.enums import DeviceKind
from persistence.tables import Category, Item, OrderStation, Station
from persistence.tables import Device as DeviceRow
from server.payloads.snapshots import StationSnapshot
from server.payloads.station import StationTicket
from server.realtime.snapshots import Snapshots
from tests.commands.test_combos import add_combo
from tests.commands.test_kitchen import count, emitted_since
from tests.live import add_device
from tests.shop import Device, Shop, principal_of


@dataclass
class Kitchen:
    """Branch a's stations by code, and a display of each."""

    ids: dict[str, int]
    displays: dict[str, Device]


async def stations(shop: Shop, *, expo: bool = False) -> Kitchen:
    """Grill and drinks stations (and expo): the burger at the grill by its own code, fries at a fryer the branch
    lacks (so at the default, the grill), cola at drinks by its category's code."""
    codes = ["grill", "drinks"] + (["expo"] if expo else [])
    async with shop.services.db.session() as session:
        rows = [
            Station(branch_id=shop.branch_id, code=code, name=code.title(), is_expo=code == "expo", position=n)
            for n, code in enumerate(codes)
        ]
        session.add_all(rows)
        await session.flush()
        ids = {row.code: row.id for row in rows}
        await session.execute(update(Item).where(Item.id == shop.burger).values(station="grill"))
        await session.execute(update(Item).where(Item.id == shop.fries).values(station="fryer"))
        drinks = select(Item.category_id).where(Item.id == shop.cola).scalar_subquery()
        await session.execute(update(Category).where(Category.id == drinks).values(station="drinks"))
    displays = {}
    for code, station_id in ids.items():
        device_id, token = await add_device(shop.services, shop.branch_id, DeviceKind.KITCHEN_DISPLAY, code)
        async with shop.services.db.session() as session:
            await session.execute(update(DeviceRow).where(DeviceRow.id == device_id).values(station_id=station_id))
        displays[code] = Device(device_id, token, await principal_of(shop.services, token))
    return Kitchen(ids, displays)


async def full_order(shop: Shop) -> dict[str, Any]:
    """A paid order of a burger, two fries and a cola."""
    lines = [(shop.burger, 1), (shop.fries, 2), (shop.cola, 1)]
    return await shop.paid_order([{"item_id": item_id, "qty": qty} for item_id, qty in lines])


def events_on(events: list[tuple[str, str, dict[str, Any]]], channel: str) -> list[tuple[str, dict[str, Any]]]:
    return [(event, data) for name, event, data in events if name == channel]


async def test_lines_are_routed_at_placement_and_each_station_hears_only_its_lines(shop: Shop) -> None:
    kitchen = await stations(shop)
    before = await count(shop)
    order = await full_order(shop)
    assert [(line["name"], line["station"]) for line in order["lines"]] == [
        ("Burger", "grill"),
        ("Fries", "grill"),
        ("Cola", "drinks"),
    ]
    events = await emitted_since(shop, before)
    grill = events_on(events, names.branch_station(shop.branch_id, "grill"))
    drinks = events_on(events, names.branch_station(shop.branch_id, "drinks"))
    assert [event for event, _ in grill] == ["order.queued"] == [event for event, _ in drinks]
    assert [line["name"] for line in grill[0][1]["lines"]] == ["Burger", "Fries"]
    assert [line["name"] for line in drinks[0][1]["lines"]] == ["Cola"]
    for _, data in grill + drinks:
        StationTicket.model_validate(data)  # the AsyncAPI document's schema of a station's events
    assert grill[0][1]["stations"] == [
        {"station": "grill", "is_expo": False, "bumped_at": None},
        {"station": "drinks", "is_expo": False, "bumped_at": None},
    ]
    # The whole kitchen is as it was: every line.
    whole = events_on(events, names.branch_kitchen(shop.branch_id))
    assert [len(data["lines"]) for _, data in whole] == [3]
    assert kitchen.displays["grill"].principal.station == "grill"


async def test_the_last_station_to_bump_makes_the_order_ready_and_the_board_shows_it(shop: Shop) -> None:
    kitchen = await stations(shop)
    order = await full_order(shop)
    before = await count(shop)
    grill = await shop.send(kitchen.displays["grill"], "station.bump", {"order_id": order["id"]})
    assert (grill["status"], grill["station"], grill["bumped_at"] is not None) == ("preparing", "grill", True)
    assert grill["version"] > order["version"]
    events = await emitted_since(shop, before)
    assert [event for event, _ in events_on(events, names.branch_station(shop.branch_id, "drinks"))] == [
        "order.preparing",
        "station.bumped",
    ]
    drinks = await shop.send(kitchen.displays["drinks"], "station.bump", {"order_id": order["id"]})
    assert drinks["status"] == "ready"
    assert all(progress["bumped_at"] is not None for progress in drinks["stations"])
    events = await emitted_since(shop, before)
    board = events_on(events, names.branch_board(shop.branch_id))
    assert [data["column"] for _, data in board] == ["ready"]
    assert ("order.ready", "ready") in [(e, d["status"]) for e, d in events_on(events, names.device(shop.kiosk.id))]


async def test_with_expo_the_order_waits_for_expo_which_sees_every_line(shop: Shop) -> None:
    kitchen = await stations(shop, expo=True)
    order = await full_order(shop)
    for code in ("grill", "drinks"):
        ticket = await shop.send(kitchen.displays[code], "station.bump", {"order_id": order["id"]})
    assert ticket["status"] == "preparing"
    assert [p["station"] for p in ticket["stations"] if p["bumped_at"] is None] == ["expo"]
    expo = await shop.send(kitchen.displays["expo"], "station.bump", {"order_id": order["id"]})
    assert (expo["status"], len(expo["lines"])) == ("ready", 3)


async def test_expo_may_make_an_order_ready_before_the_other_stations_bump(shop: Shop) -> None:
    kitchen = await stations(shop, expo=True)
    order = await full_order(shop)
    expo = await shop.send(kitchen.displays["expo"], "station.bump", {"order_id": order["id"]})
    assert expo["status"] == "ready"


async def test_bumps_are_refused_where_the_station_has_no_part_or_is_not_the_senders(shop: Shop) -> None:
    kitchen = await stations(shop)
    order = await shop.paid_order([{"item_id": shop.cola, "qty": 1}])
    error = await shop.error(kitchen.displays["grill"], "station.bump", {"order_id": order["id"]})
    assert (error["code"], error["details"]["station"]) == ("conflict", "grill")
    error = await shop.error(kitchen.displays["grill"], "station.bump", {"order_id": order["id"], "station": "drinks"})
    assert error["code"] == "forbidden"
    error = await shop.error(shop.kitchen, "station.bump", {"order_id": order["id"]})
    assert (error["code"], error["details"]["errors"][0]["field"]) == ("invalid", "station")
    error = await shop.error(shop.staff, "station.bump", {"order_id": order["id"], "station": "sushi"})
    assert error["code"] == "not_found"
    # Staff name the station; a second bump changes nothing.
    first = await shop.send(shop.staff, "station.bump", {"order_id": order["id"], "station": "drinks"})
    assert first["status"] == "ready"
    again = await shop.send(shop.staff, "station.bump", {"order_id": order["id"], "station": "drinks"})
    assert again == first


async def test_a_station_recalls_its_bump_and_a_recall_of_the_order_takes_back_every_bump(shop: Shop) -> None:
    kitchen = await stations(shop)
    order = await full_order(shop)
    await shop.send(kitchen.displays["grill"], "station.bump", {"order_id": order["id"]})
    recalled = await shop.send(kitchen.displays["grill"], "station.recall", {"order_id": order["id"]})
    assert (recalled["status"], recalled["bumped_at"]) == ("preparing", None)
    await shop.send(kitchen.displays["grill"], "station.bump", {"order_id": order["id"]})
    ready = await shop.send(kitchen.displays["drinks"], "station.bump", {"order_id": order["id"]})
    assert ready["status"] == "ready"
    error = await shop.error(kitchen.displays["grill"], "station.recall", {"order_id": order["id"]})
    assert (error["code"], error["details"]["status"]) == ("conflict", "ready")
    await shop.send(shop.kitchen, "order.recall", {"order_id": order["id"]})
    async with shop.services.db.session() as session:
        assert (await session.scalars(select(OrderStation).where(OrderStation.order_id == order["id"]))).all() == []
    again = await shop.send(kitchen.displays["drinks"], "station.bump", {"order_id": order["id"]})
    assert again["status"] == "preparing"


async def test_a_station_snapshot_holds_its_open_tickets_cut_to_its_lines(shop: Shop) -> None:
    kitchen = await stations(shop)
    order = await full_order(shop)
    drinks_only = await shop.paid_order([{"item_id": shop.cola, "qty": 1}])
    await shop.send(kitchen.displays["grill"], "station.bump", {"order_id": order["id"]})
    snapshots = Snapshots(shop.services.db, shop.services.presence, shop.services.settings)
    grill_channel = parse(names.branch_station(shop.branch_id, "grill"))
    assert grill_channel is not None
    grill_snapshot = StationSnapshot.model_validate(await snapshots.snapshot(grill_channel)).model_dump(mode="json")
    assert grill_snapshot["station"] == {"code": "grill", "name": "Grill", "is_expo": False}
    grill = grill_snapshot["tickets"]
    assert [(t["id"], [line["name"] for line in t["lines"]], t["bumped_at"] is not None) for t in grill] == [
        (order["id"], ["Burger", "Fries"], True)
    ]
    drinks_channel = parse(names.branch_station(shop.branch_id, "drinks"))
    assert drinks_channel is not None
    drinks = (await snapshots.snapshot(drinks_channel))["tickets"]
    assert [(t["id"], t["bumped_at"]) for t in drinks] == [(order["id"], None), (drinks_only["id"], None)]
    unknown = parse(names.branch_station(shop.branch_id, "sushi"))
    assert unknown is not None
    assert await snapshots.snapshot(unknown) == {"station": None, "tickets": []}


async def test_a_branch_without_stations_works_as_before(shop: Shop) -> None:
    before = await count(shop)
    order = await full_order(shop)
    assert {line["station"] for line in order["lines"]} == {None}
    await shop.send(shop.kitchen, "order.start", {"order_id": order["id"]})
    channels = {channel for channel, _, _ in await emitted_since(shop, before)}
    assert not any(parse(channel) is not None and parse(channel).station for channel in channels)  # type: ignore[union-attr]
    error = await shop.error(shop.staff, "station.bump", {"order_id": order["id"], "station": "grill"})
    assert error["code"] == "not_found"


async def test_a_combo_is_made_where_each_component_goes_and_is_ready_when_both_stations_bump(shop: Shop) -> None:
    """A Burger Menu of burger, fries and cola: the grill's ticket holds the combo's line with the burger and the
    fries (its default), the drinks station's the same line with only the cola; the order waits for both."""
    kitchen = await stations(shop)
    combo = await add_combo(shop)
    before = await count(shop)
    order = await shop.paid_order([{"item_id": combo.item_id}])
    assert [(c["name"], c["station"]) for c in order["lines"][0]["components"]] == [
        ("Burger", "grill"),
        ("Fries", "grill"),
        ("Cola", "drinks"),
    ]
    events = await emitted_since(shop, before)
    tickets = {
        code: events_on(events, names.branch_station(shop.branch_id, code))[0][1] for code in ("grill", "drinks")
    }
    assert {code: [[c["name"] for c in line["components"]] for line in t["lines"]] for code, t in tickets.items()} == {
        "grill": [["Burger", "Fries"]],
        "drinks": [["Cola"]],
    }
    assert [line["name"] for line in tickets["drinks"]["lines"]] == ["Burger Menu"]
    grill = await shop.send(kitchen.displays["grill"], "station.bump", {"order_id": order["id"]})
    assert grill["status"] == "preparing"
    drinks = await shop.send(kitchen.displays["drinks"], "station.bump", {"order_id": order["id"]})
    assert drinks["status"] == "ready"
    receipt = await shop.send(shop.kiosk, "order.receipt", {"order_id": order["id"]})
    assert "station" not in receipt["lines"][0]["components"][0]
