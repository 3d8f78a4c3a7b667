"""The demo data of `python -m server seed-demo`: one branch, ready to take orders.

A branch with a small menu (burgers, sides, drinks, and breakfast sold 06:00-11:00 only, with
a breakfast combo of a main, a side and a drink of any size; burger extras, fries dips and
drink sizes as option groups; every item and choice with its allergens and calories, every row
named in German and English, German the default and the kitchen's language,
server/demo_texts.py), stock for every item (one running low, one unlimited), a kitchen of
grill, fryer and drinks stations (burgers at the grill, sides at the fryer, drinks at drinks,
breakfast at the default station, the grill; no expo: an order is ready when every station
with lines of it has bumped it), one device of each kind with the kiosk paired to the
terminal, a whole-kitchen display and the grill's and drinks' displays, and an admin. The
admin password and the device secrets are generated here and returned once; only their
hashes are stored. The menu itself is server/demo_menu.py.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from persistence.database import Database
from persistence.enums import DeviceKind
from persistence.tables import (
    Branch,
    Category,
    ComboSlot,
    ComboSlotChoice,
    Daypart,
    Device,
    Item,
    ItemAvailability,
    OptionChoice,
    OptionGroup,
    Station,
    TaxCategory,
    User,
)
from server.auth.passwords import generate_secret, hash_secret
from server.auth.permissions import ADMIN_ROLE
from server.auth.roles import ensure_default_roles
from server.demo_menu import (
    DEMO_CATEGORY_STATION,
    DEMO_COMBOS,
    DEMO_DAYPARTS,
    DEMO_MENU,
    DEMO_STATIONS,
    DEMO_TAX_CATEGORY,
    DEMO_TAX_RATES,
    LOW_STOCK,
    DemoGroup,
    DemoItem,
    in_eu_order,
)
from server.demo_texts import DEMO_LOCALES, item_texts, name_texts

ADMIN_USERNAME = "admin"


@dataclass(frozen=True)
class DemoBranch:
    """The demo restaurant."""

    name: str = "Demo Diner"
    currency: str = "EUR"
    timezone: str = "Europe/Berlin"
    tax_rate_bp: int = 1900
    address: str = "1 Example Street, Berlin"
    locales: tuple[str, ...] = DEMO_LOCALES  # the first its default and its kitchen's


# (kind, name, station code) in the order they are created and listed.
DEMO_DEVICES: tuple[tuple[DeviceKind, str, str | None], ...] = (
    (DeviceKind.KIOSK, "Kiosk 1", None),
    (DeviceKind.PAYMENT_TERMINAL, "Terminal 1", None),
    (DeviceKind.KITCHEN_DISPLAY, "Kitchen display", None),
    (DeviceKind.KITCHEN_DISPLAY, "Grill display", "grill"),
    (DeviceKind.KITCHEN_DISPLAY, "Drinks display", "drinks"),
    (DeviceKind.ORDER_BOARD, "Order board", None),
)


@dataclass(frozen=True)
class DemoDevice:
    """A device the demo created, with the secret it logs in with (shown once)."""

    id: int
    kind: DeviceKind
    name: str
    secret: str
    paired_terminal_id: int | None = None
    # A kitchen display's station code (None: the whole kitchen).
    station: str | None = None


@dataclass(frozen=True)
class DemoResult:
    """What `seed_demo` created, with the secrets that exist in clear only here."""

    branch_id: int
    branch: DemoBranch
    categories: int
    items: int
    admin_username: str
    # None when a user of that name already existed and was left as it was.
    admin_password: str | None
    devices: list[DemoDevice] = field(default_factory=list)


async def seed_demo(db: Database, *, hasher: Callable[[str], Awaitable[str]] = hash_secret) -> DemoResult | None:
    """Load the demo into a database without branches; None, changing nothing, when one exists.

    `hasher` turns a secret into its stored hash (Argon2; tests pass a cheaper one).
    """
    async with db.session() as session:
        if await session.scalar(select(Branch.id).limit(1)) is not None:
            return None
        admin_taken = await session.scalar(select(User.id).where(User.username == ADMIN_USERNAME)) is not None

        # Hashed before the first write, so SQLite's write lock is not held meanwhile; the
        # hashes run side by side in threads, as Argon2 takes a while each.
        admin_password = None if admin_taken else generate_secret()
        device_secrets = [generate_secret() for _ in DEMO_DEVICES]
        to_hash = device_secrets if admin_password is None else [admin_password, *device_secrets]
        hashes = list(await asyncio.gather(*(hasher(secret) for secret in to_hash)))

        demo = DemoBranch()
        branch = Branch(
            name=demo.name,
            currency=demo.currency,
            timezone=demo.timezone,
            tax_rate_bp=demo.tax_rate_bp,
            address=demo.address,
            default_locale=demo.locales[0],
            locales=list(demo.locales),
            kitchen_locale=demo.locales[0],
        )
        session.add(branch)
        await session.flush()
        tax_categories = await _add_tax_categories(session, branch)
        items = await _add_menu(session, branch.id, tax_categories)
        roles = await ensure_default_roles(session)
        if admin_password is not None:
            session.add(
                User(
                    username=ADMIN_USERNAME,
                    full_name="Demo admin",
                    password_hash=hashes.pop(0),
                    role_id=roles[ADMIN_ROLE].id,
                )
            )
        devices = await _add_devices(session, branch.id, device_secrets, hashes)
        return DemoResult(
            branch_id=branch.id,
            branch=demo,
            categories=len(DEMO_MENU),
            items=items,
            admin_username=ADMIN_USERNAME,
            admin_password=admin_password,
            devices=devices,
        )


async def _add_tax_categories(session: AsyncSession, branch: Branch) -> dict[str, int]:
    """Add the tax categories and give the branch its rates for them; their ids by name."""
    categories = {name: TaxCategory(name=name) for name in DEMO_TAX_RATES}
    session.add_all(categories.values())
    await session.flush()
    branch.tax_rates = [
        {"tax_category_id": categories[name].id, "service_mode": mode.value, "rate_bp": rate}
        for name, rates in DEMO_TAX_RATES.items()
        for mode, rate in rates.items()
    ]
    return {name: category.id for name, category in categories.items()}


async def _add_menu(session: AsyncSession, branch_id: int, tax_categories: dict[str, int]) -> int:
    """Add the categories, items with their option groups and tax categories, and the branch's stock; returns the
    item count."""
    items: list[tuple[Item, DemoItem]] = []
    dayparts = {
        name: Daypart(name=name, starts_at=starts, ends_at=ends) for name, starts, ends in DEMO_DAYPARTS.values()
    }
    session.add_all(dayparts.values())
    await session.flush()
    for category_position, (category_name, demo_items) in enumerate(DEMO_MENU):
        daypart = DEMO_DAYPARTS.get(category_name)
        category = Category(
            name=category_name,
            position=category_position,
            daypart_id=None if daypart is None else dayparts[daypart[0]].id,
            station=DEMO_CATEGORY_STATION.get(category_name),
            translations=name_texts(category_name),
        )
        session.add(category)
        await session.flush()
        for item_position, demo_item in enumerate(demo_items):
            item = Item(
                category_id=category.id,
                name=demo_item.name,
                description=demo_item.description,
                price=demo_item.price,
                tax_category_id=tax_categories[DEMO_TAX_CATEGORY[category_name]],
                allergens=in_eu_order(demo_item.allergens),
                calories=demo_item.calories,
                position=item_position,
                translations=item_texts(demo_item.name, demo_item.description),
                option_groups=[_option_group(group, position) for position, group in enumerate(demo_item.groups)],
            )
            session.add(item)
            items.append((item, demo_item))
    await session.flush()
    session.add_all(
        ItemAvailability(branch_id=branch_id, item_id=item.id, available=True, stock=demo_item.stock)
        for item, demo_item in items
    )
    await _add_combos(session, {item.name: item.id for item, _ in items})
    return len(items)


async def _add_combos(session: AsyncSession, item_ids: dict[str, int]) -> None:
    """Give the combos their slots and choices."""
    for combo, slots in DEMO_COMBOS.items():
        session.add_all(
            ComboSlot(
                item_id=item_ids[combo],
                name=name,
                position=position,
                translations=name_texts(name),
                choices=[
                    ComboSlotChoice(item_id=item_ids[item], upcharge=upcharge, is_default=default, position=n)
                    for n, (item, upcharge, default) in enumerate(choices)
                ],
            )
            for position, (name, choices) in enumerate(slots)
        )
    await session.flush()


def _option_group(group: DemoGroup, position: int) -> OptionGroup:
    """A fresh option group row (each item gets its own copy) for `group`."""
    return OptionGroup(
        name=group.name,
        min_select=group.min_select,
        max_select=group.max_select,
        position=position,
        translations=name_texts(group.name),
        choices=[
            OptionChoice(
                name=choice.name,
                price_delta=choice.price_delta,
                is_default=choice.is_default,
                allergens=in_eu_order(choice.allergens),
                calories=choice.calories,
                position=choice_position,
                translations=name_texts(choice.name),
            )
            for choice_position, choice in enumerate(group.choices)
        ],
    )


async def _add_devices(
    session: AsyncSession, branch_id: int, secrets: list[str], secret_hashes: list[str]
) -> list[DemoDevice]:
    """Add the kitchen's stations, one device of each kind and a display of two stations; pair the kiosk with the
    terminal."""
    stations = [
        Station(branch_id=branch_id, code=code, name=name, position=position)
        for position, (code, name) in enumerate(DEMO_STATIONS)
    ]
    session.add_all(stations)
    await session.flush()
    station_ids = {station.code: station.id for station in stations}
    rows = [
        Device(
            branch_id=branch_id,
            kind=kind,
            name=name,
            secret_hash=secret_hash,
            station_id=None if code is None else station_ids[code],
        )
        for (kind, name, code), secret_hash in zip(DEMO_DEVICES, secret_hashes, strict=True)
    ]
    session.add_all(rows)
    await session.flush()
    kiosk = next(row for row in rows if row.kind == DeviceKind.KIOSK)
    kiosk.paired_terminal_id = next(row for row in rows if row.kind == DeviceKind.PAYMENT_TERMINAL).id
    await session.flush()
    return [
        DemoDevice(row.id, row.kind, row.name, secret, row.paired_terminal_id, code)
        for row, secret, (_, _, code) in zip(rows, secrets, DEMO_DEVICES, strict=True)
    ]


def _rates() -> str:
    """The demo's tax rates in a line: `food 19% eat in, 7% takeaway; drinks 19%`."""
    described = []
    for name, rates in DEMO_TAX_RATES.items():
        if len(set(rates.values())) == 1:
            described.append(f"{name} {next(iter(rates.values())) / 100:g}%")
        else:
            modes = ", ".join(f"{rate / 100:g}% {mode.value.replace('_', ' ')}" for mode, rate in rates.items())
            described.append(f"{name} {modes}")
    return "; ".join(described)


def describe(result: DemoResult, base_url: str, api_prefix: str) -> str:
    """The friendly printout of a fresh demo: where to go, how to log in, and every device secret."""
    api = f"{base_url.rstrip('/')}{api_prefix}"
    branch = result.branch
    low = [item.name for _, items in DEMO_MENU for item in items if item.stock == LOW_STOCK]
    unlimited = [
        item.name for _, items in DEMO_MENU for item in items if item.stock is None and item.name not in DEMO_COMBOS
    ]
    lines = [
        "Demo data loaded.",
        "",
        f"  Branch     {branch.name} (id {result.branch_id}), {branch.currency}, {branch.timezone}, "
        f"eat in or take away, in {' and '.join(branch.locales)} (kitchen {branch.locales[0]})",
        f"  Tax        {_rates()}",
        f"  Menu       {result.categories} categories, {result.items} items; "
        f"{' and '.join(low)} running low ({LOW_STOCK} left), {' and '.join(unlimited)} unlimited; "
        + ", ".join(f"{c} {s:%H:%M}–{e:%H:%M} only" for c, (_, s, e) in DEMO_DAYPARTS.items())
        + "; combos: "
        + ", ".join(f"{combo} ({', '.join(slot for slot, _ in slots)})" for combo, slots in DEMO_COMBOS.items()),
        f"  Kitchen    stations {', '.join(code for code, _ in DEMO_STATIONS)}: "
        + ", ".join(f"{category} at {code}" for category, code in DEMO_CATEGORY_STATION.items())
        + f", the rest at {DEMO_STATIONS[0][0]}; ready when every station with lines has bumped it",
        "",
        f"  API        {api}",
        f"  Docs       {api}/docs  (Authorize with the admin login below)",
        "",
    ]
    if result.admin_password is None:
        lines.append(f"  Admin      a user named {result.admin_username!r} already existed; log in with its password")
    else:
        lines += [
            "  Admin login (shown only now, keep it):",
            f"    username  {result.admin_username}",
            f"    password  {result.admin_password}",
        ]
    lines += ["", "  Devices (secrets shown only now, keep them):"]
    name_width = max(len(device.name) for device in result.devices)
    kind_width = max(len(device.kind) for device in result.devices)
    for device in result.devices:
        paired = f"  (paired with terminal {device.paired_terminal_id})" if device.paired_terminal_id else ""
        paired += f"  (station {device.station})" if device.station else ""
        lines.append(
            f"    id {device.id:<3} {device.kind:<{kind_width}}  {device.name:<{name_width}}  "
            f"secret {device.secret}{paired}"
        )
    kiosk = next(device for device in result.devices if device.kind == DeviceKind.KIOSK)
    body = json.dumps({"device_id": kiosk.id, "secret": kiosk.secret})
    lines += [
        "",
        "  A device gets its access token with its id and secret, e.g. the kiosk:",
        f"    curl -s -X POST {api}/auth/device -H 'Content-Type: application/json' -d '{body}'",
    ]
    return "\n".join(lines)
