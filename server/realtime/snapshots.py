"""Channel snapshots, from the database: the state a client starts from when it cannot resume.

One provider per channel kind (PROTOCOL.md "Channels"). A snapshot is read after the
channel's position, so it contains at least every event up to the seq it is sent with;
events after that seq may repeat what it already shows, and clients apply them as
upserts.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Integer, bindparam, exists, select
from sqlalchemy.ext.asyncio import AsyncSession

from channels.names import ChannelName
from channels.presence import Presence
from persistence.base import table, utcnow
from persistence.database import Database
from persistence.enums import CartStatus, OrderStatus, PaymentStatus
from persistence.prepared import Prepared, one_of
from persistence.tables import Cart, Device, Order, Payment
from server.orders import cart_rows, station_progress
from server.orders.cart_pricing import price_cart
from server.orders.catalogue import read_kitchen
from server.payloads.menu import branch_menu
from server.payloads.order import BOARD_COLUMN, board_place, order_data
from server.payloads.payment import payment_data
from server.payloads.station import station_tickets
from server.settings import Settings

# A channel's snapshot in a locale (None: its default); only the menu's depends on it, carts and orders being in their
# own locales.
Provider = Callable[[AsyncSession, ChannelName, str | None], Awaitable[Any]]

OPEN_TICKETS = (OrderStatus.PAID, OrderStatus.PREPARING, OrderStatus.READY)
ON_BOARD = tuple(status for status, column in BOARD_COLUMN.items() if column is not None)


# A device's payments in flight: as the kiosk that asked, or as the terminal that charges.
_DEVICE_ID = bindparam("device_id", type_=Integer())
_PAYMENT = table(Payment).c
_PAYMENTS_IN_FLIGHT = ((_PAYMENT.kiosk_id == _DEVICE_ID) | (_PAYMENT.terminal_id == _DEVICE_ID)) & one_of(
    _PAYMENT.status, (PaymentStatus.PENDING, PaymentStatus.PROCESSING)
)
# Whether the device has open carts, orders awaiting payment and payments in flight: what its snapshot holds.
_DEVICE_HOLDS = Prepared(
    select(
        exists().where(Cart.device_id == _DEVICE_ID, Cart.status == CartStatus.OPEN).label("carts"),
        exists().where(Order.device_id == _DEVICE_ID, Order.status == OrderStatus.AWAITING_PAYMENT).label("orders"),
        exists().where(_PAYMENTS_IN_FLIGHT).label("payments"),
    )
)


class Snapshots:
    """Builds the snapshot of any channel."""

    def __init__(
        self, db: Database, presence: Presence, settings: Settings, clock: Callable[[], datetime] = utcnow
    ) -> None:
        self._db = db
        # The moment the menu's dayparts are read at (Services.clock).
        self._clock = clock
        self._presence = presence
        self._cart_idle = settings.cart_idle_timeout
        self._providers: dict[str, Provider] = {
            "branch:devices": self._devices,
            "branch:kitchen": self._kitchen,
            "branch:station": self._station,
            "branch:board": self._board,
            "branch:orders": self._orders,
            "branch:menu": self._menu,
            "device": self._device,
        }

    def register(self, kind: str, provider: Provider) -> None:
        """Replace the provider of a channel kind (`branch:menu`, `device`, ...)."""
        self._providers[kind] = provider

    async def snapshot(self, channel: ChannelName, locale: str | None = None) -> Any:
        """The current state of `channel`, its texts in `locale` where it has any (None: the branch's default)."""
        async with self._db.session() as session:
            return await self._providers[channel.kind](session, channel, locale)

    async def _devices(self, session: AsyncSession, channel: ChannelName, locale: str | None = None) -> Any:
        assert channel.branch_id is not None
        devices = (
            await session.scalars(select(Device).where(Device.branch_id == channel.branch_id).order_by(Device.id))
        ).all()
        online = await self._presence.online_devices(channel.branch_id)
        return {
            "devices": [
                {"id": d.id, "kind": d.kind, "name": d.name, "is_active": d.is_active, "online": d.id in online}
                for d in devices
            ]
        }

    async def _kitchen(self, session: AsyncSession, channel: ChannelName, locale: str | None = None) -> Any:
        statement = (
            select(Order)
            .where(Order.branch_id == channel.branch_id, Order.status.in_(OPEN_TICKETS))
            .order_by(Order.paid_at, Order.id)
        )
        return {"tickets": [order_data(order) for order in (await session.scalars(statement)).all()]}

    async def _station(self, session: AsyncSession, channel: ChannelName, locale: str | None = None) -> Any:
        assert channel.branch_id is not None and channel.station is not None
        kitchen = await read_kitchen(session, channel.branch_id)
        station = kitchen.by_code(channel.station)
        if station is None:
            return {"station": None, "tickets": []}  # no such station (yet): nothing is routed to it
        statement = (
            select(Order)
            .where(Order.branch_id == channel.branch_id, Order.status.in_(OPEN_TICKETS))
            .order_by(Order.paid_at, Order.id)
        )
        orders = [order for order in (await session.scalars(statement)).all() if station_progress.routed(order)]
        bumps = await station_progress.bumps_of(session, [order.id for order in orders])
        tickets = (station_tickets(order, kitchen, bumps.get(order.id, {})).get(channel.station) for order in orders)
        return {
            "station": {"code": station.code, "name": station.name, "is_expo": station.is_expo},
            "tickets": [ticket for ticket in tickets if ticket is not None],
        }

    async def _board(self, session: AsyncSession, channel: ChannelName, locale: str | None = None) -> Any:
        statement = (
            select(Order)
            .where(Order.branch_id == channel.branch_id, Order.status.in_(ON_BOARD))
            .order_by(Order.paid_at, Order.id)
        )
        columns: dict[str, list[dict[str, Any]]] = {"preparing": [], "ready": []}
        for order in (await session.scalars(statement)).all():
            column = BOARD_COLUMN[order.status]
            assert column is not None  # ON_BOARD holds only the statuses with a column
            columns[column].append(board_place(order))
        return columns

    async def _orders(self, session: AsyncSession, channel: ChannelName, locale: str | None = None) -> Any:
        since = utcnow() - timedelta(days=1)
        statement = (
            select(Order)
            .where(
                Order.branch_id == channel.branch_id,
                Order.created_at >= since,
                Order.status.not_in((OrderStatus.COMPLETED,)),
            )
            .order_by(Order.id)
        )
        return {"orders": [order_data(order) for order in (await session.scalars(statement)).all()]}

    async def _menu(self, session: AsyncSession, channel: ChannelName, locale: str | None = None) -> Any:
        assert channel.branch_id is not None
        return await branch_menu(session, channel.branch_id, self._clock(), locale=locale)

    async def _device(self, session: AsyncSession, channel: ChannelName, locale: str | None = None) -> Any:
        device_id = channel.device_id
        # Most devices have nothing open when they connect: one statement says which reads are needed at all.
        held = await _DEVICE_HOLDS.first(session, {"device_id": device_id})
        assert held is not None  # a SELECT of EXISTS returns its row
        carts = []
        if held.carts:
            rows = (
                await session.execute(
                    select(*cart_rows.CART_COLUMNS)
                    .where(Cart.device_id == device_id, Cart.status == CartStatus.OPEN)
                    .order_by(Cart.id)
                )
            ).all()
            carts = await cart_rows.with_lines(session, rows)
        orders: Sequence[Order] = []
        if held.orders:
            orders = (
                await session.scalars(
                    select(Order)
                    .where(Order.device_id == device_id, Order.status == OrderStatus.AWAITING_PAYMENT)
                    .order_by(Order.id)
                )
            ).all()
        payments: Sequence[Payment] = []
        if held.payments:
            in_flight = select(Payment).where(_PAYMENTS_IN_FLIGHT).order_by(Payment.id)
            payments = (await session.scalars(in_flight, {"device_id": device_id})).all()
        return {
            "carts": [(await price_cart(session, cart)).data(self._cart_idle) for cart in carts],
            "orders": [order_data(order, customer=True) for order in orders],
            "payments": [payment_data(payment) for payment in payments],
        }
