"""Menu events of admin REST: item and category changes tell exactly the branches concerned.

Events are read from the outbox, where the REST call's transaction wrote them.
"""

from __future__ import annotations

import httpx

from channels import names
from server.services import Services
from tests.api.menu_event_helpers import ITEMS, Catalogue, Outbox, call, menu_item, removed, updated
from tests.world import World

# -- items -------------------------------------------------------------------------------


async def test_an_item_change_reaches_every_branch_offering_it(
    client: httpx.AsyncClient, services: Services, world: World, catalogue: Catalogue, outbox: Outbox
) -> None:
    """A PATCH sends each offering branch the whole item as its menu now shows it, with its own stock."""
    changes = {
        **{"name": "Big burger", "price": 950, "image_url": "https://img.example.com/b.png", "description": "Two"},
        **{"allergens": ["gluten", "milk"], "calories": 610},
    }
    response = await call(client, "PATCH", f"{ITEMS}/{catalogue.burger}", world.admin.headers, **changes)
    assert response.status_code == 200, response.text
    in_a = await menu_item(services, world.branch_a, catalogue.burger)
    in_b = await menu_item(services, world.branch_b, catalogue.burger)
    assert await outbox.new() == [updated(world.branch_a, in_a), updated(world.branch_b, in_b)]
    assert in_a is not None and in_b is not None
    assert {key: in_a[key] for key in changes} == changes
    assert (in_a["category_id"], in_a["available"], in_a["stock"], in_a["orderable"]) == (
        catalogue.mains,
        True,
        5,
        True,
    )
    assert (in_b["stock"], in_b["orderable"]) == (None, True)
    assert in_a["option_groups"][0]["choices"][1] == {
        "id": in_a["option_groups"][0]["choices"][1]["id"],
        "name": "Large",
        "price_delta": 150,
        "is_default": False,
        "allergens": [],
        "calories": None,
        "translations": {},
    }


async def test_moving_an_item_to_another_category_names_the_new_one(
    client: httpx.AsyncClient, services: Services, world: World, catalogue: Catalogue, outbox: Outbox
) -> None:
    """The event of a move carries the new `category_id`; a branch not offering the item hears nothing."""
    response = await call(
        client, "PATCH", f"{ITEMS}/{catalogue.soup}", world.admin.headers, category_id=catalogue.drinks
    )
    assert response.status_code == 200, response.text
    [event] = await outbox.new()
    assert event == updated(world.branch_a, await menu_item(services, world.branch_a, catalogue.soup))
    assert event[2]["category_id"] == catalogue.drinks


async def test_option_groups_are_announced_as_stored_in_display_order(
    client: httpx.AsyncClient, services: Services, world: World, catalogue: Catalogue, outbox: Outbox
) -> None:
    """New groups sent before old ones still come out by position, with ids, limits, deltas, defaults, allergens and
    calories."""
    groups = [
        {
            "name": "Extras",
            "max_select": 2,
            "position": 1,
            "choices": [
                {"name": "Bacon", "price_delta": 120},
                {"name": "Cheese", "price_delta": 80, "position": 1, "allergens": ["milk"], "calories": 110},
            ],
        },
        {
            "id": catalogue.size,
            "name": "Size",
            "min_select": 1,
            "max_select": 1,
            "position": 0,
            "choices": [{"id": catalogue.regular, "name": "Regular", "is_default": True}],
        },
    ]
    response = await call(client, "PATCH", f"{ITEMS}/{catalogue.burger}", world.admin.headers, option_groups=groups)
    assert response.status_code == 200, response.text
    events = await outbox.new()
    assert [(channel, event) for channel, event, _ in events] == [
        (names.branch_menu(world.branch_a), "menu.item_updated"),
        (names.branch_menu(world.branch_b), "menu.item_updated"),
    ]
    announced = events[0][2]["option_groups"]
    assert [(g["name"], g["min_select"], g["max_select"]) for g in announced] == [("Size", 1, 1), ("Extras", 0, 2)]
    assert announced[0]["id"] == catalogue.size
    assert announced[0]["choices"] == [
        {
            "id": catalogue.regular,
            "name": "Regular",
            "price_delta": 0,
            "is_default": True,
            "allergens": [],
            "calories": None,
            "translations": {},
        }
    ]
    assert [(c["name"], c["price_delta"], c["allergens"], c["calories"]) for c in announced[1]["choices"]] == [
        ("Bacon", 120, [], None),
        ("Cheese", 80, ["milk"], 110),
    ]
    assert events[0][2] == await menu_item(services, world.branch_a, catalogue.burger)


async def test_deleting_an_item_removes_it_from_every_branch_offering_it(
    client: httpx.AsyncClient, services: Services, world: World, catalogue: Catalogue, outbox: Outbox
) -> None:
    """DELETE sends `menu.item_removed` to each offering branch once; deleting it again sends nothing."""
    url = f"{ITEMS}/{catalogue.burger}"
    assert (await call(client, "DELETE", url, world.admin.headers)).status_code == 204
    assert await outbox.new() == [removed(world.branch_a, catalogue.burger), removed(world.branch_b, catalogue.burger)]
    assert await menu_item(services, world.branch_a, catalogue.burger) is None
    assert (await call(client, "DELETE", url, world.admin.headers)).status_code == 204
    assert (await call(client, "PATCH", url, world.admin.headers, price=1)).status_code == 409
    assert await outbox.new() == []


async def test_items_no_branch_offers_are_announced_to_nobody(
    client: httpx.AsyncClient, world: World, catalogue: Catalogue, outbox: Outbox
) -> None:
    """Creating an item, or changing or deleting one that no branch offers, emits nothing."""
    body = {"category_id": catalogue.mains, "name": "Wrap", "price": 700}
    assert (await call(client, "POST", ITEMS, world.admin.headers, **body)).status_code == 201
    salad = f"{ITEMS}/{catalogue.salad}"
    assert (await call(client, "PATCH", salad, world.admin.headers, price=550)).status_code == 200
    assert (await call(client, "DELETE", salad, world.admin.headers)).status_code == 204
    assert await outbox.new() == []


async def test_a_refused_item_change_emits_nothing(
    client: httpx.AsyncClient, world: World, catalogue: Catalogue, outbox: Outbox
) -> None:
    """An invalid PATCH, or one by a user who may not write the menu, leaves the outbox empty."""
    url = f"{ITEMS}/{catalogue.burger}"
    assert (await call(client, "PATCH", url, world.admin.headers, category_id=999_999)).status_code == 422
    assert (await call(client, "PATCH", url, world.manager_a.headers, price=1)).status_code == 403
    assert await outbox.new() == []


# -- categories --------------------------------------------------------------------------


async def test_a_category_change_announces_each_of_its_offered_items(
    client: httpx.AsyncClient, services: Services, world: World, catalogue: Catalogue, outbox: Outbox
) -> None:
    """Renaming or moving a category re-sends its items to the branches offering them; deleted items stay out."""
    url = f"/api/v1/categories/{catalogue.mains}"
    response = await call(client, "PATCH", url, world.admin.headers, name="Hot food", position=5)
    assert response.status_code == 200, response.text
    assert await outbox.new() == [
        updated(world.branch_a, await menu_item(services, world.branch_a, catalogue.burger)),
        updated(world.branch_b, await menu_item(services, world.branch_b, catalogue.burger)),
        updated(world.branch_a, await menu_item(services, world.branch_a, catalogue.soup)),
    ]


async def test_deleting_a_category_announces_nothing_more(
    client: httpx.AsyncClient, world: World, catalogue: Catalogue, outbox: Outbox
) -> None:
    """A category is deleted only once its items are, and each of them was removed from the menus then."""
    for item_id in (catalogue.burger, catalogue.soup, catalogue.salad):
        assert (await call(client, "DELETE", f"{ITEMS}/{item_id}", world.admin.headers)).status_code == 204
    assert await outbox.new() == [
        removed(world.branch_a, catalogue.burger),
        removed(world.branch_b, catalogue.burger),
        removed(world.branch_a, catalogue.soup),
    ]
    url = f"/api/v1/categories/{catalogue.mains}"
    assert (await call(client, "DELETE", url, world.admin.headers)).status_code == 204
    assert await outbox.new() == []
