"""The demo data: a complete branch ready to take orders, loaded once and never twice."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime, time
from typing import Any

import httpx
from argon2 import PasswordHasher
from sqlalchemy import func, select

from persistence.base import Base
from persistence.database import Database
from persistence.enums import DeviceKind
from persistence.tables import (
    Branch,
    Category,
    ComboSlot,
    Daypart,
    Device,
    Item,
    ItemAvailability,
    OptionChoice,
    OptionGroup,
    Role,
    Station,
    TaxCategory,
    User,
)
from server.auth.passwords import verify_secret
from server.auth.roles import ensure_default_roles
from server.demo import ADMIN_USERNAME, DemoResult, describe, seed_demo
from server.demo_menu import LOW_STOCK
from server.payloads.menu import branch_menu
from tests.world import PASSWORD_HASH, add_user

# Real Argon2 hashes, with the cheapest parameters: verify_secret reads them from the hash.
_cheap_hasher = PasswordHasher(time_cost=1, memory_cost=8, parallelism=1)


async def cheap_hash(secret: str) -> str:
    """An Argon2 hash that costs microseconds instead of a fifth of a second."""
    return _cheap_hasher.hash(secret)


async def _seed(db: Database) -> DemoResult:
    """Load the demo, which must not have been there."""
    result = await seed_demo(db, hasher=cheap_hash)
    assert result is not None
    return result


async def _row_counts(db: Database) -> dict[str, int]:
    """How many rows every table holds."""
    async with db.session() as session:
        return {
            table.name: int(await session.scalar(select(func.count()).select_from(table)) or 0)
            for table in Base.metadata.sorted_tables
        }


async def test_demo_creates_a_branch_with_a_menu_in_display_order(db: Database) -> None:
    """One branch with currency, time zone and tax; four categories and fourteen items, each in order."""
    result = await _seed(db)
    async with db.session() as session:
        [branch] = (await session.scalars(select(Branch))).all()
        categories = (await session.scalars(select(Category).order_by(Category.position))).all()
        items = (await session.scalars(select(Item))).all()
    assert branch.id == result.branch_id
    assert (branch.currency, branch.timezone, branch.tax_rate_bp) == ("EUR", "Europe/Berlin", 1900)
    assert [category.name for category in categories] == ["Burgers", "Sides", "Drinks", "Breakfast"]
    assert [category.position for category in categories] == [0, 1, 2, 3]
    assert len(items) == result.items == 14
    for category in categories:
        positions = sorted(item.position for item in items if item.category_id == category.id)
        assert positions == list(range(len(positions))), category.name
    assert all(item.price > 0 for item in items)


async def test_demo_branch_is_german_and_names_every_row_in_german_and_english(db: Database) -> None:
    """The branch offers de (its default and its kitchen's) and en; every category, item, option group and choice
    has a German and an English name, and every item a description in both."""
    await _seed(db)
    async with db.session() as session:
        [branch] = (await session.scalars(select(Branch))).all()
        rows: list[Category | OptionGroup | OptionChoice] = [
            *(await session.scalars(select(Category))).all(),
            *(await session.scalars(select(OptionGroup))).all(),
            *(await session.scalars(select(OptionChoice))).all(),
        ]
        items = (await session.scalars(select(Item))).all()
    assert (branch.default_locale, branch.locales, branch.kitchen_locale) == ("de", ["de", "en"], "de")
    for row in rows:
        assert sorted(row.translations) == ["de", "en"], row.name
        assert row.translations["en"]["name"] == row.name
    for item in items:
        assert {locale: set(texts) for locale, texts in item.translations.items()} == {
            "de": {"name", "description"},
            "en": {"name", "description"},
        }, item.name
    by_name = {item.name: item.translations["de"]["name"] for item in items}
    assert (by_name["Fries"], by_name["Chicken Burger"]) == ("Pommes", "Hähnchenburger")


async def test_demo_taxes_food_by_service_mode_and_drinks_at_one_rate(db: Database) -> None:
    """Burgers and sides are food (19 % eaten in, 7 % taken away), drinks are drinks (19 % either way), as in
    Germany; the branch offers both modes, eat-in first."""
    result = await _seed(db)
    async with db.session() as session:
        branch = await session.get(Branch, result.branch_id)
        categories = {c.id: c.name for c in (await session.scalars(select(TaxCategory))).all()}
        items = {i.name: categories.get(i.tax_category_id or 0) for i in (await session.scalars(select(Item))).all()}
    assert branch is not None and branch.service_modes == ["eat_in", "takeaway"]
    rates = {(categories[r["tax_category_id"]], r["service_mode"]): r["rate_bp"] for r in branch.tax_rates}
    assert rates == {
        ("food", "eat_in"): 1900,
        ("food", "takeaway"): 700,
        ("drinks", "eat_in"): 1900,
        ("drinks", "takeaway"): 1900,
    }
    assert (items["Classic Burger"], items["Fries"], items["Cola"]) == ("food", "food", "drinks")


async def test_demo_breakfast_is_sold_from_6_until_11_in_the_branchs_time(db: Database) -> None:
    """A "Breakfast" daypart of 06:00-11:00 on the Breakfast category and its four items, which the menu sells at 09:00
    Berlin time and not at 11:00; the burgers are sold at both."""
    result = await _seed(db)
    async with db.session() as session:
        [daypart] = (await session.scalars(select(Daypart))).all()
        in_daypart = (await session.scalars(select(Category.name).where(Category.daypart_id == daypart.id))).all()
        morning = await branch_menu(session, result.branch_id, datetime(2026, 12, 7, 8, 0, tzinfo=UTC), locale="en")
        noon = await branch_menu(session, result.branch_id, datetime(2026, 12, 7, 10, 0, tzinfo=UTC), locale="en")
    assert (daypart.name, daypart.starts_at, daypart.ends_at) == ("Breakfast", time(6), time(11))
    assert in_daypart == ["Breakfast"]

    def orderable(menu: dict[str, object]) -> dict[str, list[bool]]:
        categories = menu["categories"]
        assert isinstance(categories, list)
        return {c["name"]: [item["orderable"] for item in c["items"]] for c in categories}

    assert orderable(morning)["Breakfast"] == [True] * 4
    assert orderable(noon)["Breakfast"] == [False] * 4
    assert all(orderable(noon)["Burgers"]) and all(orderable(morning)["Burgers"])
    assert "Breakfast 06:00–11:00 only" in describe(result, "http://127.0.0.1:8000", "/api/v1")


async def test_demo_breakfast_combo_has_a_main_a_side_and_a_drink_of_any_size_at_breakfast_only(db: Database) -> None:
    """The Breakfast Combo (790) fills Main, Side and Drink; its Cola comes in sizes up to Large (+110); the menu sells
    it at 09:00 Berlin time, and not at 11:01; the printout names it."""
    result = await _seed(db)
    async with db.session() as session:
        morning = await branch_menu(session, result.branch_id, datetime(2026, 12, 7, 8, 0, tzinfo=UTC), locale="en")
        late = await branch_menu(session, result.branch_id, datetime(2026, 12, 7, 10, 1, tzinfo=UTC), locale="en")

    def combo(menu: dict[str, Any]) -> dict[str, Any]:
        [item] = [i for c in menu["categories"] for i in c["items"] if i["name"] == "Breakfast Combo"]
        return item

    item = combo(morning)
    assert (item["price"], item["orderable"], combo(late)["orderable"]) == (790, True, False)
    assert [slot["name"] for slot in item["combo_slots"]] == ["Main", "Side", "Drink"]
    [cola] = [c for c in item["combo_slots"][2]["choices"] if c["name"] == "Cola"]
    [size] = cola["option_groups"]
    assert (size["name"], [(c["name"], c["price_delta"]) for c in size["choices"]][-1]) == ("Size", ("Large", 110))
    assert "Breakfast Combo (Main, Side, Drink)" in describe(result, "http://127.0.0.1:8000", "/api/v1")


async def test_demo_option_groups_include_a_sized_drink_and_burger_extras(db: Database) -> None:
    """Drink size is exactly one of three with a default; burger extras allow up to three."""
    await _seed(db)
    async with db.session() as session:
        groups = (await session.scalars(select(OptionGroup))).all()
    sizes = [group for group in groups if group.name == "Size"]
    extras = [group for group in groups if group.name == "Extras"]
    assert sizes and extras
    for size in sizes:
        assert (size.min_select, size.max_select) == (1, 1)
        assert len(size.choices) == 3
        assert [choice.is_default for choice in size.choices].count(True) == 1
        assert len({choice.price_delta for choice in size.choices}) == 3
    for group in extras:
        assert (group.min_select, group.max_select) == (0, 3)
        assert len(group.choices) > 3
        assert all(choice.price_delta > 0 for choice in group.choices)


async def test_demo_declares_allergens_and_calories_of_every_item_and_choice(db: Database) -> None:
    """Burgers hold gluten, eggs, milk, mustard and sesame, the breakfast gluten, eggs and milk, onion rings gluten,
    fries and drinks none; cheese adds milk, mayonnaise eggs and mustard, aioli eggs, no other choice any. Every item
    and choice has its kcal (an item's at least 0), and allergens are stored in the EU's order, as the REST routes
    store them."""
    await _seed(db)
    async with db.session() as session:
        items = {item.name: item for item in (await session.scalars(select(Item))).all()}
        choices = (await session.scalars(select(OptionChoice))).all()
    burger = ["gluten", "eggs", "milk", "mustard", "sesame"]
    assert {name: item.allergens for name, item in items.items() if item.allergens} == {
        **dict.fromkeys(("Classic Burger", "Cheeseburger", "Chicken Burger", "Veggie Burger"), burger),
        "Onion Rings": ["gluten"],
        **dict.fromkeys(("Breakfast Muffin", "Pancakes"), ["gluten", "eggs", "milk"]),
    }
    assert {choice.name: choice.allergens for choice in choices if choice.allergens} == {
        "Cheese": ["milk"],
        "Mayonnaise": ["eggs", "mustard"],
        "Garlic aioli": ["eggs"],
    }
    assert all(item.calories is not None and item.calories >= 0 for item in items.values())
    assert [items[name].calories for name in ("Cheeseburger", "Fries", "Cola", "Still Water")] == [680, 320, 130, 0]
    assert all(choice.calories is not None for choice in choices)
    assert {choice.calories for choice in choices if choice.name == "Cheese"} == {110}


async def test_demo_stocks_every_item_with_one_low_and_one_unlimited(db: Database) -> None:
    """Every item is offered by the branch; one is nearly sold out and one never runs out (a combo's stock is its
    components')."""
    result = await _seed(db)
    async with db.session() as session:
        item_ids = set((await session.scalars(select(Item.id))).all())
        stock = (await session.scalars(select(ItemAvailability))).all()
        combos = set((await session.scalars(select(ComboSlot.item_id))).all())
    assert {row.item_id for row in stock} == item_ids
    assert {row.branch_id for row in stock} == {result.branch_id}
    assert all(row.available for row in stock)
    assert all(row.stock is None for row in stock if row.item_id in combos)
    levels = [row.stock for row in stock if row.item_id not in combos]
    assert levels.count(LOW_STOCK) == 1
    assert levels.count(None) == 1
    assert all(level is None or level >= LOW_STOCK for level in levels)


async def test_demo_devices_are_one_of_each_kind_with_the_kiosk_paired(db: Database) -> None:
    """A kiosk paired to the terminal, kitchen displays and an order board, each with its own secret."""
    result = await _seed(db)
    async with db.session() as session:
        devices = {device.kind: device for device in (await session.scalars(select(Device))).all()}
    assert set(devices) == set(DeviceKind)
    assert len(result.devices) == 6
    assert devices[DeviceKind.KIOSK].paired_terminal_id == devices[DeviceKind.PAYMENT_TERMINAL].id
    assert {device.branch_id for device in devices.values()} == {result.branch_id}
    assert len({device.secret for device in result.devices}) == 6
    kiosk = next(device for device in result.devices if device.kind == DeviceKind.KIOSK)
    # Only the hash is stored, and it matches the secret handed out.
    assert kiosk.secret not in devices[DeviceKind.KIOSK].secret_hash
    assert await verify_secret(devices[DeviceKind.KIOSK].secret_hash, kiosk.secret)


async def test_demo_kitchen_has_grill_fryer_and_drinks_with_displays_of_the_grill_and_drinks(db: Database) -> None:
    """Burgers at the grill, sides at the fryer, drinks at drinks, breakfast at the default (the grill); no expo;
    one whole-kitchen display and the grill's and the drinks' own."""
    result = await _seed(db)
    async with db.session() as session:
        stations = (await session.scalars(select(Station).order_by(Station.position))).all()
        routes = dict((await session.execute(select(Category.name, Category.station))).all())
        displays = (
            await session.execute(
                select(Device.name, Station.code)
                .outerjoin(Station, Station.id == Device.station_id)
                .where(Device.kind == DeviceKind.KITCHEN_DISPLAY)
                .order_by(Device.id)
            )
        ).all()
    assert [(s.code, s.is_expo, s.branch_id) for s in stations] == [
        ("grill", False, result.branch_id),
        ("fryer", False, result.branch_id),
        ("drinks", False, result.branch_id),
    ]
    assert routes == {"Burgers": "grill", "Sides": "fryer", "Drinks": "drinks", "Breakfast": None}
    assert [tuple(row) for row in displays] == [
        ("Kitchen display", None),
        ("Grill display", "grill"),
        ("Drinks display", "drinks"),
    ]
    assert [device.station for device in result.devices if device.kind == DeviceKind.KITCHEN_DISPLAY] == [
        None,
        "grill",
        "drinks",
    ]


async def test_demo_creates_an_admin_and_the_default_roles(db: Database) -> None:
    """The admin has every permission, no branch, and the password printed once."""
    result = await _seed(db)
    async with db.session() as session:
        admin = await session.scalar(select(User).where(User.username == ADMIN_USERNAME))
        roles = set((await session.scalars(select(Role.name))).all())
    assert roles == {"admin", "manager", "staff"}
    assert admin is not None
    assert admin.role.name == "admin"
    assert admin.branch_id is None
    assert result.admin_password is not None
    assert await verify_secret(admin.password_hash, result.admin_password)


async def test_a_second_seed_returns_none_and_changes_nothing(db: Database) -> None:
    """Seeding a database that already holds a branch is a no-op."""
    await _seed(db)
    before = await _row_counts(db)
    assert await seed_demo(db, hasher=cheap_hash) is None
    assert await _row_counts(db) == before


async def test_seed_refuses_any_database_that_already_has_a_branch(db: Database) -> None:
    """A real installation with its own branch is left untouched."""
    async with db.session() as session:
        session.add(Branch(name="Production branch", currency="USD", timezone="America/New_York"))
    before = await _row_counts(db)
    assert await seed_demo(db, hasher=cheap_hash) is None
    assert await _row_counts(db) == before


async def test_an_existing_admin_user_is_kept(db: Database) -> None:
    """When a user named admin exists (create-admin ran first), the demo loads and leaves that user alone."""
    async with db.session() as session:
        roles = await ensure_default_roles(session)
    await add_user(db, ADMIN_USERNAME, roles["admin"].id, None)
    result = await _seed(db)
    assert result.admin_password is None
    async with db.session() as session:
        users = (await session.scalars(select(User))).all()
    assert [(user.username, user.password_hash) for user in users] == [(ADMIN_USERNAME, PASSWORD_HASH)]
    assert "already existed" in describe(result, "http://127.0.0.1:8000", "/api/v1")


async def test_demo_credentials_log_in_through_the_api(db: Database, client: httpx.AsyncClient) -> None:
    """The printed admin password and device secret get tokens from the real auth routes."""
    result = await _seed(db)
    login = await client.post("/api/v1/auth/login", json={"username": "admin", "password": result.admin_password})
    assert login.status_code == 200, login.text
    kiosk = next(device for device in result.devices if device.kind == DeviceKind.KIOSK)
    token = await client.post("/api/v1/auth/device", json={"device_id": kiosk.id, "secret": kiosk.secret})
    assert token.status_code == 200, token.text
    assert token.json()["device_kind"] == "kiosk"


async def test_printout_names_urls_login_every_secret_and_a_working_curl_line(db: Database) -> None:
    """The printout is everything a newcomer needs: docs URL, admin login, device secrets, a curl example."""
    result = await _seed(db)
    text = describe(result, "http://127.0.0.1:8000/", "/api/v1")
    assert "http://127.0.0.1:8000/api/v1/docs" in text
    assert result.admin_password is not None and result.admin_password in text
    for device in result.devices:
        assert re.search(rf"id {device.id}\s+{device.kind}\s+.*secret {re.escape(device.secret)}", text)
    [curl] = [line.strip() for line in text.splitlines() if line.strip().startswith("curl ")]
    assert "http://127.0.0.1:8000/api/v1/auth/device" in curl
    body = json.loads(curl.split(" -d ", 1)[1].strip("'"))
    kiosk = next(device for device in result.devices if device.kind == DeviceKind.KIOSK)
    assert body == {"device_id": kiosk.id, "secret": kiosk.secret}
