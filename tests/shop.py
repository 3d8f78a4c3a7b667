"""A branch ready to sell, for the order tests: a menu with options and stock, and its devices.

Alpha (branch a of the test world, EUR, Europe/Berlin, 19 % tax) sells:

- Burger 900, Size exactly one (Regular 0 default, Large +150), Extras up to two
  (Cheese +100, Bacon +200), unlimited; gluten, eggs and sesame, 550 kcal (Large +220, Cheese
  milk and +110, Bacon +90);
- Fries 350, 10 left; no allergens, 320 kcal;
- Cola 300, unlimited, no options; no allergens, calories not known.

Commands can be sent in process (`Shop.send`, through the app's command registry, as the
socket does) or over a real socket with `channels.client.DeviceClient`.
"""

from __future__ import annotations

import asyncio
import itertools
import json
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import update

from channels.frames import parse_client_frame
from persistence.enums import DeviceKind
from persistence.tables import (
    Branch,
    Category,
    Item,
    ItemAvailability,
    KnownCustomer,
    OptionChoice,
    OptionGroup,
    Order,
    Payment,
)
from persistence.tables import Device as DeviceRow
from server.auth.principals import Principal, authenticate
from server.commands import command_registry
from server.commands.router import execute
from server.services import Services
from tests.world import PASSWORD_HASH, World

COMMANDS = command_registry()


LIMIT_S = 10
TAX_BP = 1900


@dataclass
class Device:
    """A device of the shop: its id, token and principal."""

    id: int
    token: str
    principal: Principal


@dataclass
class Shop:
    """Branch a: its menu, a known customer, a kiosk paired with a terminal, a second kiosk, a kitchen, a board."""

    services: Services
    branch_id: int
    burger: int
    fries: int
    cola: int
    choices: dict[str, int]
    customer_phone: str
    kiosk: Device
    kiosk2: Device
    terminal: Device
    kitchen: Device
    board: Device
    staff: Principal
    _ids: itertools.count[int] = field(default_factory=itertools.count)

    async def request(
        self, sender: Device | Principal, kind: str, data: dict[str, Any], command_id: str | None = None
    ) -> dict[str, Any]:
        """Send a command in process as `sender` (a fresh command id unless given); the parsed reply frame."""
        principal = sender.principal if isinstance(sender, Device) else sender
        command_id = command_id or f"t{next(self._ids)}"
        frame = parse_client_frame(json.dumps({"type": kind, "id": command_id, "data": data}))
        text, _ = await asyncio.wait_for(execute(COMMANDS, self.services, principal, frame), LIMIT_S)
        reply: dict[str, Any] = json.loads(text)
        return reply

    async def send(self, sender: Device | Principal, kind: str, data: dict[str, Any]) -> dict[str, Any]:
        """Send a command that must succeed; its reply data."""
        reply = await self.request(sender, kind, data)
        assert reply["ok"], reply
        data_out: dict[str, Any] = reply["data"]
        return data_out

    async def error(self, sender: Device | Principal, kind: str, data: dict[str, Any]) -> dict[str, Any]:
        """Send a command that must fail; its error."""
        reply = await self.request(sender, kind, data)
        assert not reply["ok"], reply
        error: dict[str, Any] = reply["error"]
        return error

    async def stock(self, item_id: int) -> int | None:
        """How many of the item branch a has left."""
        async with self.services.db.session() as session:
            row = await session.get(ItemAvailability, (self.branch_id, item_id))
        assert row is not None
        return row.stock

    async def set_item(self, item_id: int, **values: Any) -> None:
        """Change the branch's offer of an item directly (stock, available)."""
        async with self.services.db.session() as session:
            await session.execute(
                update(ItemAvailability)
                .where(ItemAvailability.branch_id == self.branch_id, ItemAvailability.item_id == item_id)
                .values(**values)
            )

    async def terminal_online(self, online: bool = True) -> None:
        """Make the terminal count as connected (or not), as its socket would."""
        presence = self.services.presence
        if online:
            await presence.connected(self.terminal.id, self.branch_id, "test-terminal")
        else:
            await presence.disconnected(self.terminal.id, self.branch_id, "test-terminal")

    async def deadlines_while_held(self, row: type[Order | Payment], row_id: int, now: datetime) -> int:
        """Run the deadline worker once at `now` while another transaction holds the row, as a payment result or
        an order being paid would; it must not wait for it (bounded). How many it acted on."""
        async with self.services.db.session() as session:
            await session.get(row, row_id, with_for_update=True)
            return await asyncio.wait_for(self.services.deadlines.run_once(now), LIMIT_S)

    async def placed_order(self, lines: list[dict[str, Any]] | None = None) -> dict[str, Any]:
        """An order of the first kiosk awaiting payment, with `lines` (default: one cola)."""
        cart = await self.send(self.kiosk, "cart.create", {})
        for line in lines or [{"item_id": self.cola, "qty": 1}]:
            await self.send(self.kiosk, "cart.add", {"cart_id": cart["id"], **line})
        return await self.send(self.kiosk, "order.place", {"cart_id": cart["id"]})

    async def paid_order(
        self, lines: list[dict[str, Any]] | None = None, kiosk: Device | None = None
    ) -> dict[str, Any]:
        """Place an order from `kiosk` (default: the first) with `lines` (default: one cola) and mark it paid."""
        kiosk = kiosk or self.kiosk
        cart = await self.send(kiosk, "cart.create", {})
        for line in lines or [{"item_id": self.cola, "qty": 1}]:
            await self.send(kiosk, "cart.add", {"cart_id": cart["id"], **line})
        order = await self.send(kiosk, "order.place", {"cart_id": cart["id"]})
        return await self.send(self.staff, "order.mark_paid", {"order_id": order["id"]})

    async def pay_at_terminal(self, order: dict[str, Any], provider_ref: str) -> dict[str, Any]:
        """Pay an order of the first kiosk at its paired terminal, which reports the acquirer's reference; the
        approved payment."""
        await self.terminal_online()
        payment = await self.send(self.kiosk, "payment.start", {"order_id": order["id"]})
        result = {"payment_id": payment["id"], "status": "approved", "provider_ref": provider_ref}
        return await self.send(self.terminal, "payment.result", result)


async def principal_of(services: Services, token: str) -> Principal:
    """The principal a token stands for, authenticated as the socket does."""
    async with services.db.session() as session:
        return await authenticate(session, services.tokens, token)


# The shop's devices: (kind, name), in the order of Shop's fields.
DEVICES = [
    (DeviceKind.KIOSK, "kiosk 1"),
    (DeviceKind.KIOSK, "kiosk 2"),
    (DeviceKind.PAYMENT_TERMINAL, "terminal 1"),
    (DeviceKind.KITCHEN_DISPLAY, "kitchen"),
    (DeviceKind.ORDER_BOARD, "board"),
]


async def build_shop(services: Services, world: World) -> Shop:
    """Set up branch a's menu, stock, a known customer and devices, in one transaction."""
    branch_id = world.branch_a
    async with services.db.session() as session:
        await session.execute(update(Branch).where(Branch.id == branch_id).values(tax_rate_bp=TAX_BP))
        mains, drinks = Category(name="Mains", position=0), Category(name="Drinks", position=1)
        session.add_all([mains, drinks])
        await session.flush()
        regular = OptionChoice(name="Regular", price_delta=0, is_default=True, calories=0, position=0)
        large = OptionChoice(name="Large", price_delta=150, calories=220, position=1)
        cheese = OptionChoice(name="Cheese", price_delta=100, allergens=["milk"], calories=110, position=0)
        bacon = OptionChoice(name="Bacon", price_delta=200, calories=90, position=1)
        burger = Item(
            category_id=mains.id,
            name="Burger",
            price=900,
            allergens=["gluten", "eggs", "sesame"],
            calories=550,
            option_groups=[
                OptionGroup(name="Size", min_select=1, max_select=1, position=0, choices=[regular, large]),
                OptionGroup(name="Extras", min_select=0, max_select=2, position=1, choices=[cheese, bacon]),
            ],
        )
        fries = Item(category_id=mains.id, name="Fries", price=350, calories=320, position=1)
        cola = Item(category_id=drinks.id, name="Cola", price=300)
        devices = [
            DeviceRow(branch_id=branch_id, kind=kind, name=name, secret_hash=PASSWORD_HASH) for kind, name in DEVICES
        ]
        session.add_all([burger, fries, cola, *devices])
        await session.flush()
        kiosk, _, terminal, _, _ = devices
        kiosk.paired_terminal_id = terminal.id
        session.add_all(
            [
                ItemAvailability(branch_id=branch_id, item_id=burger.id, available=True, stock=None),
                ItemAvailability(branch_id=branch_id, item_id=fries.id, available=True, stock=10),
                ItemAvailability(branch_id=branch_id, item_id=cola.id, available=True, stock=None),
                KnownCustomer(phone="+4930123456", name="Ana"),
            ]
        )
        await session.flush()
        ids = (burger.id, fries.id, cola.id)
        choices = {c.name: c.id for c in (regular, large, cheese, bacon)}
        tokens = [services.tokens.issue("device", device.id, secret_version=1)[0] for device in devices]
        shop_devices = [
            Device(device.id, token, await authenticate(session, services.tokens, token))
            for device, token in zip(devices, tokens, strict=True)
        ]
        staff = await authenticate(session, services.tokens, world.staff_a.headers["Authorization"].split()[1])
    kiosk1, kiosk2, terminal1, kitchen, board = shop_devices
    return Shop(
        services=services,
        branch_id=branch_id,
        burger=ids[0],
        fries=ids[1],
        cola=ids[2],
        choices=choices,
        customer_phone="+49 30 123456",
        kiosk=kiosk1,
        kiosk2=kiosk2,
        terminal=terminal1,
        kitchen=kitchen,
        board=board,
        staff=staff,
    )
