"""The simulator's own branch and devices, written straight into the server's database.

The simulator and the benchmarks run beside a server and read the same settings (the
environment and `.env`): they add a branch named "Simulator" that sells every item of
the menu without a stock limit, kiosks each paired with a terminal, kitchen displays and
order boards (made once, then reused by name), and, when asked, kitchen stations of the
given codes with one display each (the branch's stations are then exactly those), and sign
device tokens with the server's `JWT_SECRET_KEY`. So nothing has to be typed in, and no device secret is ever shown: the
devices' stored secret is one nobody knows.
"""

from __future__ import annotations

import asyncio
import json
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy import delete, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from persistence.database import Database
from persistence.enums import DeviceKind
from persistence.tables import Branch, Device, Item, ItemAvailability, Station
from server.auth.passwords import generate_secret, hash_secret
from server.auth.tokens import TokenCodec
from server.settings import Settings

BRANCH_NAME = "Simulator"
# `provision_in`: the fleet as the checkout it runs in makes it, printed as JSON on the last line.
_PROVISION_SCRIPT = """
import asyncio, dataclasses, json, sys
from bench.provision import provision_for
from server.settings import Settings
kiosks, kitchens, boards = (int(arg) for arg in sys.argv[1:])
fleet = asyncio.run(provision_for(Settings(_env_file=None), kiosks=kiosks, kitchens=kitchens, boards=boards))
print(json.dumps(dataclasses.asdict(fleet)))
"""


class NoMenu(Exception):
    """The database has no menu to sell from (no demo loaded and nothing added)."""


@dataclass(frozen=True)
class SimDevice:
    """A device of the simulator's branch and its access token."""

    id: int
    kind: DeviceKind
    name: str
    token: str
    paired_terminal_id: int | None = None


@dataclass(frozen=True)
class Fleet:
    """Everything the simulator drives: kiosks (each with its terminal), kitchen displays, order boards."""

    branch_id: int
    kiosks: list[SimDevice]
    terminals: dict[int, SimDevice]
    kitchens: list[SimDevice]
    boards: list[SimDevice]
    # A display of each kitchen station, by station code (none: the branch has no stations).
    stations: dict[str, SimDevice] = field(default_factory=dict)
    # The languages the branch offers: each kiosk says one of them in its hello.
    locales: tuple[str, ...] = ()


async def _branch(session: AsyncSession) -> Branch:
    branch = await session.scalar(select(Branch).where(Branch.name == BRANCH_NAME))
    if branch is None:
        # Money, the business day and the languages like the first branch's (the demo's), so totals read familiar
        # and kiosks have languages to pick from.
        model = await session.scalar(select(Branch).order_by(Branch.id).limit(1))
        branch = Branch(
            name=BRANCH_NAME,
            currency=model.currency if model else "EUR",
            timezone=model.timezone if model else "UTC",
            tax_rate_bp=model.tax_rate_bp if model else 0,
            default_locale=model.default_locale if model else "en",
            locales=list(model.locales) if model else ["en"],
            kitchen_locale=model.kitchen_locale if model else "en",
            address="load generator",
        )
        session.add(branch)
        await session.flush()
    branch.is_active = True
    return branch


async def _offer_everything(session: AsyncSession, branch_id: int) -> None:
    items = (await session.scalars(select(Item.id).where(Item.deleted_at.is_(None)))).all()
    if not items:
        raise NoMenu("the database has no menu: run `make run` (it loads the demo) or add items first")
    offered = {
        row.item_id: row
        for row in (await session.scalars(select(ItemAvailability).where(ItemAvailability.branch_id == branch_id)))
    }
    for item_id in items:
        row = offered.get(item_id)
        if row is None:
            session.add(ItemAvailability(branch_id=branch_id, item_id=item_id, available=True, stock=None))
        else:
            row.available, row.stock = True, None


async def _devices(
    session: AsyncSession, branch_id: int, kind: DeviceKind, prefix: str, count: int, secret_hash: str
) -> list[Device]:
    existing = {
        device.name: device
        for device in await session.scalars(
            select(Device).where(Device.branch_id == branch_id, Device.kind == kind, Device.name.like(f"{prefix}-%"))
        )
    }
    rows = []
    for number in range(1, count + 1):
        name = f"{prefix}-{number:05d}"
        device = existing.get(name)
        if device is None:
            device = Device(branch_id=branch_id, kind=kind, name=name, secret_hash=secret_hash)
            session.add(device)
        device.is_active = True
        rows.append(device)
    await session.flush()
    return rows


async def _stations(session: AsyncSession, branch_id: int, codes: Sequence[str], secret_hash: str) -> dict[str, Device]:
    """The branch's stations made exactly `codes` (in that order), each with a display `sim-station-<code>`."""
    existing = {
        station.code: station
        for station in await session.scalars(select(Station).where(Station.branch_id == branch_id))
    }
    gone = [station.id for code, station in existing.items() if code not in codes]
    if gone:
        await session.execute(update(Device).where(Device.station_id.in_(gone)).values(station_id=None))
        await session.execute(delete(Station).where(Station.id.in_(gone)))
    displays = {}
    for position, code in enumerate(codes):
        station = existing.get(code)
        if station is None:
            station = Station(branch_id=branch_id, code=code, name=code.title())
            session.add(station)
        station.position, station.is_expo = position, False
        await session.flush()
        [display] = await _devices(
            session, branch_id, DeviceKind.KITCHEN_DISPLAY, f"sim-station-{code}", 1, secret_hash
        )
        display.station_id = station.id
        displays[code] = display
    await session.flush()
    return displays


async def provision_for(
    settings: Settings, *, kiosks: int, kitchens: int, boards: int, stations: Sequence[str] = ()
) -> Fleet:
    """`provision` in the database of `settings`, with tokens signed by its `JWT_SECRET_KEY`."""
    db = Database.from_url(settings.database_url)
    try:
        return await provision(
            db, TokenCodec(settings), kiosks=kiosks, kitchens=kitchens, boards=boards, stations=stations
        )
    finally:
        await db.dispose()


async def provision_in(root: Path, env: dict[str, str], *, kiosks: int, kitchens: int, boards: int) -> Fleet:
    """`provision_for` as the checkout at `root` does it, in the database of `env`, so its tables are its own."""
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        _PROVISION_SCRIPT,
        str(kiosks),
        str(kitchens),
        str(boards),
        env=env,
        cwd=root,
        stdout=asyncio.subprocess.PIPE,
    )
    out, _ = await process.communicate()
    if process.returncode:
        raise RuntimeError(f"provisioning the simulator's devices in {root} failed with {process.returncode}")
    fleet = json.loads(out.decode().strip().splitlines()[-1])

    def device(row: dict[str, Any]) -> SimDevice:
        return SimDevice(**(row | {"kind": DeviceKind(row["kind"])}))

    return Fleet(
        fleet["branch_id"],
        [device(row) for row in fleet["kiosks"]],
        {int(terminal_id): device(row) for terminal_id, row in fleet["terminals"].items()},
        [device(row) for row in fleet["kitchens"]],
        [device(row) for row in fleet["boards"]],
        {code: device(row) for code, row in fleet.get("stations", {}).items()},
        tuple(fleet.get("locales", ())),
    )


async def provision(
    db: Database, codec: TokenCodec, *, kiosks: int, kitchens: int, boards: int, stations: Sequence[str] = ()
) -> Fleet:
    """Make (or reuse) the simulator's branch and devices in `db`, with kitchen stations of the `stations` codes
    (none: no stations) and a display of each; their tokens, signed by `codec`."""
    secret_hash = await hash_secret(generate_secret())
    async with db.session() as session:
        branch = await _branch(session)
        await _offer_everything(session, branch.id)
        kiosk_rows = await _devices(session, branch.id, DeviceKind.KIOSK, "sim-kiosk", kiosks, secret_hash)
        terminal_rows = await _devices(
            session, branch.id, DeviceKind.PAYMENT_TERMINAL, "sim-terminal", kiosks, secret_hash
        )
        kitchen_rows = await _devices(
            session, branch.id, DeviceKind.KITCHEN_DISPLAY, "sim-kitchen", kitchens, secret_hash
        )
        board_rows = await _devices(session, branch.id, DeviceKind.ORDER_BOARD, "sim-board", boards, secret_hash)
        station_rows = await _stations(session, branch.id, stations, secret_hash)
        for kiosk, terminal in zip(kiosk_rows, terminal_rows, strict=True):
            kiosk.paired_terminal_id = terminal.id
        await session.flush()

        def signed(device: Device) -> SimDevice:
            token, _ = codec.issue("device", device.id, secret_version=device.secret_version)
            return SimDevice(device.id, device.kind, device.name, token, device.paired_terminal_id)

        terminals = {device.id: signed(device) for device in terminal_rows}
        return Fleet(
            branch.id,
            [signed(device) for device in kiosk_rows],
            terminals,
            [signed(device) for device in kitchen_rows],
            [signed(device) for device in board_rows],
            {code: signed(device) for code, device in station_rows.items()},
            tuple(branch.locales),
        )


async def reissue(settings: Settings, device: SimDevice) -> str:
    """A new token for `device` (after a 4001 close), signed for its current secret version in the database."""
    db = Database.from_url(settings.database_url)
    try:
        async with db.session() as session:
            row = await session.get(Device, device.id)
            if row is None:
                raise NoMenu(f"device {device.id} no longer exists")
            version = row.secret_version
    finally:
        await db.dispose()
    token, _ = TokenCodec(settings).issue("device", device.id, secret_version=version)
    return token
