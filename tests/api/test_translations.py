"""REST translations: a branch's locales, and the texts of categories, items, option groups and choices by locale,
validated and stored in canonical case; an item's new translations reach the menu's events."""

from __future__ import annotations

from typing import Any

import httpx
from sqlalchemy import select

from channels import names
from persistence.tables import OutboxEvent
from server.services import Services
from tests.world import World

BRANCHES = "/api/v1/branches"
CATEGORIES = "/api/v1/categories"
ITEMS = "/api/v1/items"


def _errors(response: httpx.Response) -> list[tuple[str, str]]:
    assert response.status_code == 422, response.text
    return [(error["field"], error["type"]) for error in response.json()["error"]["details"]["errors"]]


async def test_a_branch_offers_locales_with_its_default_among_them(client: httpx.AsyncClient, world: World) -> None:
    """A new branch is English only unless told; one made German offers de first, its kitchen de; the default must be
    offered, codes are canonical, a bad one or one listed twice is refused on its field."""
    headers = world.admin.headers
    base = {"currency": "EUR", "timezone": "Europe/Berlin"}
    plain = await client.post(BRANCHES, json={"name": "Plain", **base}, headers=headers)
    assert plain.status_code == 201, plain.text
    plain_branch = plain.json()
    assert (plain_branch["default_locale"], plain_branch["locales"], plain_branch["kitchen_locale"]) == (
        "en",
        ["en"],
        "en",
    )

    german = await client.post(BRANCHES, json={"name": "Mitte", **base, "locales": ["DE", "en"]}, headers=headers)
    assert german.status_code == 201, german.text
    assert (german.json()["default_locale"], german.json()["locales"], german.json()["kitchen_locale"]) == (
        "de",
        ["de", "en"],
        "de",
    )
    url = f"{BRANCHES}/{german.json()['id']}"
    changed = await client.patch(url, json={"default_locale": "en", "kitchen_locale": "tr"}, headers=headers)
    assert changed.status_code == 200, changed.text
    assert (changed.json()["default_locale"], changed.json()["kitchen_locale"]) == ("en", "tr")

    refused = await client.patch(url, json={"locales": ["de"]}, headers=headers)
    assert _errors(refused) == [("default_locale", "locale_not_offered")]
    refused = await client.post(
        BRANCHES, json={"name": "X", **base, "locales": ["de"], "default_locale": "fr"}, headers=headers
    )
    assert _errors(refused) == [("default_locale", "locale_not_offered")]
    assert _errors(await client.patch(url, json={"locales": ["de", "de_DE"]}, headers=headers)) == [
        ("locales.1", "locale")
    ]
    assert _errors(await client.patch(url, json={"locales": ["de", "DE"]}, headers=headers)) == [
        ("locales", "duplicate_locale")
    ]
    assert _errors(await client.patch(url, json={"locales": []}, headers=headers))[0][0] == "locales"
    assert (await client.get(url, headers=headers)).json()["locales"] == ["de", "en"]


async def test_categories_and_items_keep_their_texts_by_locale(client: httpx.AsyncClient, world: World) -> None:
    """A category's, an item's, its group's and choice's translations are stored in canonical case, read back, and
    replaced whole by a PATCH; a bad locale code or an empty or unknown text is refused where it is."""
    headers = world.admin.headers
    category = await client.post(
        CATEGORIES, json={"name": "Mains", "translations": {"DE": {"name": "Hauptgerichte"}}}, headers=headers
    )
    assert category.status_code == 201, category.text
    assert category.json()["translations"] == {"de": {"name": "Hauptgerichte", "description": None}}
    category_id = category.json()["id"]
    renamed = await client.patch(f"{CATEGORIES}/{category_id}", json={"translations": {}}, headers=headers)
    assert renamed.json()["translations"] == {}

    item = {
        "category_id": category_id,
        "name": "Fries",
        "price": 350,
        "translations": {"de": {"name": "Pommes", "description": "knusprig"}, "pt-br": {"name": "Batata frita"}},
        "option_groups": [
            {
                "name": "Dip",
                "translations": {"de": {"name": "Soße"}},
                "choices": [{"name": "Ketchup", "translations": {"de": {"name": "Tomatenketchup"}}}],
            }
        ],
    }
    created = await client.post(ITEMS, json=item, headers=headers)
    assert created.status_code == 201, created.text
    fries = created.json()
    assert fries["translations"] == {
        "de": {"name": "Pommes", "description": "knusprig"},
        "pt-BR": {"name": "Batata frita", "description": None},
    }
    group = fries["option_groups"][0]
    assert group["translations"] == {"de": {"name": "Soße", "description": None}}
    assert group["choices"][0]["translations"] == {"de": {"name": "Tomatenketchup", "description": None}}

    url = f"{ITEMS}/{fries['id']}"
    patched = await client.patch(url, json={"translations": {"en": {"name": "Chips"}}}, headers=headers)
    assert patched.json()["translations"] == {"en": {"name": "Chips", "description": None}}

    for texts, where in (
        ({"de_DE": {"name": "Pommes"}}, ("translations.de_DE.[key]", "locale")),
        ({"de": {"name": " "}}, ("translations.de.name", "string_too_short")),
        ({"de": {"name": "Pommes", "title": "x"}}, ("translations.de.title", "extra_forbidden")),
        ({"de": {}}, ("translations.de.name", "missing")),
    ):
        assert _errors(await client.patch(url, json={"translations": texts}, headers=headers)) == [where]
    group_texts = {"option_groups": [{"name": "Dip", "choices": [], "translations": {"de": {"description": "x"}}}]}
    assert ("option_groups.0.translations.de.description", "extra_forbidden") in _errors(
        await client.patch(url, json=group_texts, headers=headers)
    )


async def test_an_items_translations_reach_the_menu_events_whose_names_are_the_branchs_default(
    client: httpx.AsyncClient, services: Services, world: World
) -> None:
    """A branch whose default is de hears the item named in German, with every locale's texts beside it."""
    headers = world.admin.headers
    german = await client.patch(
        f"{BRANCHES}/{world.branch_a}", json={"locales": ["de", "en"], "default_locale": "de"}, headers=headers
    )
    assert german.status_code == 200, german.text
    category = (await client.post(CATEGORIES, json={"name": "Mains"}, headers=headers)).json()
    item = {"category_id": category["id"], "name": "Fries", "price": 350}
    fries = (await client.post(ITEMS, json=item, headers=headers)).json()
    stock = {"branch_id": world.branch_a, "available": True}
    offered = await client.post(f"{ITEMS}/{fries['id']}/stock", json=stock, headers=headers)
    assert offered.status_code == 200, offered.text
    texts = {"de": {"name": "Pommes"}, "en": {"name": "Chips"}}
    assert (await client.patch(f"{ITEMS}/{fries['id']}", json={"translations": texts}, headers=headers)).is_success
    async with services.db.session() as session:
        events = (await session.scalars(select(OutboxEvent).order_by(OutboxEvent.id))).all()
    updated: list[dict[str, Any]] = [
        e.data for e in events if e.channel == names.branch_menu(world.branch_a) and e.event == "menu.item_updated"
    ]
    assert (updated[-1]["name"], updated[-1]["translations"]) == ("Pommes", texts)
