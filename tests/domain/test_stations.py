"""Routing lines to kitchen stations and deciding when the stations are done (server/domain/stations.py)."""

from __future__ import annotations

from typing import Any

from server.domain.stations import Kitchen, KitchenStation, catalogue_code, line_codes, valid_code

GRILL = KitchenStation(1, "grill", position=1)
FRYER = KitchenStation(2, "fryer", position=2)
DRINKS = KitchenStation(3, "drinks", position=3)
EXPO = KitchenStation(4, "expo", is_expo=True, position=0)


def test_an_item_goes_to_its_own_station_over_its_categorys() -> None:
    assert catalogue_code("fryer", "grill") == "fryer"
    assert catalogue_code(None, "grill") == "grill"
    assert catalogue_code(None, None) is None


def test_codes_are_lower_case_slugs_that_fit_a_channel_name() -> None:
    assert valid_code("grill") and valid_code("cold_2")
    for bad in ("", "Grill", "2nd", "grill:1", "a" * 33, "grill\n"):
        assert not valid_code(bad)


def test_lines_go_to_their_stations_and_unknown_or_missing_codes_to_the_first_non_expo_one() -> None:
    kitchen = Kitchen.of([DRINKS, EXPO, FRYER, GRILL])
    lines = [("burger", "grill"), ("cola", "drinks"), ("salad", None), ("sushi", "sushi"), ("fries", "fryer")]
    routed = kitchen.route(lines, lambda line: line[1])
    assert routed == {
        "grill": [("burger", "grill"), ("salad", None), ("sushi", "sushi")],
        "drinks": [("cola", "drinks")],
        "fryer": [("fries", "fryer")],
    }
    assert sum(len(entries) for entries in routed.values()) == len(lines)


def test_a_branch_of_expo_stations_only_still_loses_no_line() -> None:
    kitchen = Kitchen.of([EXPO])
    assert kitchen.route(["a", "b"], lambda _: "grill") == {"expo": ["a", "b"]}


def test_a_branch_without_stations_routes_nothing_and_is_never_ready_by_bumps() -> None:
    kitchen = Kitchen.of([])
    assert not kitchen
    assert kitchen.route(["a"], lambda _: "grill") == {}
    assert kitchen.working(["grill"]) == []
    assert not kitchen.ready(["grill"], {"grill"})


def test_without_expo_an_order_is_ready_when_every_station_with_lines_bumped_it() -> None:
    kitchen = Kitchen.of([GRILL, FRYER, DRINKS])
    codes = ["grill", "drinks", None]
    assert [station.code for station in kitchen.working(codes)] == ["grill", "drinks"]
    assert not kitchen.ready(codes, {"grill"})
    assert not kitchen.ready(codes, {"fryer", "drinks"})
    assert kitchen.ready(codes, {"grill", "drinks"})


def test_with_expo_every_order_is_worked_at_expo_and_ready_only_when_expo_bumps_it() -> None:
    kitchen = Kitchen.of([GRILL, DRINKS, EXPO])
    codes = ["grill"]
    assert [station.code for station in kitchen.working(codes)] == ["expo", "grill"]
    assert not kitchen.ready(codes, {"grill"})
    assert kitchen.ready(codes, {"expo"})


def test_stations_keep_position_order_then_id() -> None:
    first, second = KitchenStation(9, "b", position=0), KitchenStation(5, "a", position=0)
    kitchen = Kitchen.of([first, second, KitchenStation(1, "c", position=1)])
    assert [station.code for station in kitchen.stations] == ["a", "b", "c"]
    assert kitchen.default == second


def test_a_combo_line_is_made_where_its_components_go_any_other_line_where_its_own_code_says() -> None:
    parts: list[dict[str, Any]] = [
        {"item_id": 1, "station": "grill"},
        {"item_id": 2, "station": "drinks"},
        {"item_id": 3},
    ]
    assert line_codes("grill", parts) == ["grill", "drinks", None]
    assert line_codes("fryer", []) == ["fryer"]
