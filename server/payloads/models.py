"""The data shapes devices receive: carts, orders, the menu, snapshots, event and connection data.

The server builds this data as plain dicts (cart_view, order_view, menu_view, snapshots,
socket); these models describe it for the AsyncAPI document and the command replies.
Every model forbids extra fields and the tests hold real data to them, so a field added
to, renamed in or dropped from the data fails a test until the model says the same.

    carts       CartView (reply of every cart command, `cart.updated`)
    orders      OrderView (reply of every order and kitchen command, every `order.*` event)
    board       BoardEntry (`board.updated`), BoardSnapshot
    menu        MenuSnapshot, MenuItem (`menu.item_updated`), MenuItemRemoved: kept in server/payloads/menu.py
    snapshots   SNAPSHOTS: the snapshot data of each channel kind
    connection  WelcomeData, SubscribeReply, UnsubscribeReply, RefreshReply, DevicePresence
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from persistence.enums import CartStatus, DeviceKind, OrderStatus, PaymentMethod, PaymentStatus
from server.payloads.menu import (
    MenuCategory,
    MenuChoice,
    MenuItem,
    MenuItemRemoved,
    MenuOptionGroup,
    MenuSnapshot,
)

__all__ = [
    "SNAPSHOTS",
    "BoardEntry",
    "BoardPlace",
    "BoardSnapshot",
    "CartCustomer",
    "CartLineProblem",
    "CartLineView",
    "CartView",
    "ChannelPosition",
    "ChosenOption",
    "DevicePresence",
    "DevicePrincipal",
    "DeviceSnapshot",
    "DeviceView",
    "DevicesSnapshot",
    "KitchenSnapshot",
    "MenuCategory",
    "MenuChoice",
    "MenuItem",
    "MenuItemRemoved",
    "MenuOptionGroup",
    "MenuSnapshot",
    "OrderLineView",
    "OrderView",
    "OrdersSnapshot",
    "PaymentView",
    "RefreshReply",
    "SubscribeReply",
    "UnsubscribeReply",
    "UserPrincipal",
    "WelcomeData",
]


# Carts and orders ------------------------------------------------------------------------------------------------


class ChosenOption(BaseModel):
    """An option chosen on a cart or order line: the choice, its group, and its price delta in minor units."""

    model_config = ConfigDict(extra="forbid")

    choice_id: int
    group_id: int
    group: str = Field(description="the option group's name")
    name: str = Field(description="the choice's name")
    price_delta: int


class CartLineProblem(BaseModel):
    """Why an open cart's line cannot be ordered as it is right now."""

    model_config = ConfigDict(extra="forbid")

    code: Literal["removed", "unavailable", "out_of_stock", "options"] = Field(
        description="the item left the menu, was 86'd, fewer are left than the cart holds, or its options no longer fit"
    )
    message: str


class CartLineView(BaseModel):
    """A cart line priced from today's menu: `unit_price` is `item_price` plus the options' deltas."""

    model_config = ConfigDict(extra="forbid")

    id: int
    item_id: int
    name: str
    qty: int
    item_price: int
    options: list[ChosenOption]
    unit_price: int
    line_total: int = Field(description="unit_price × qty")
    problem: CartLineProblem | None


class CartCustomer(BaseModel):
    """The known customer attached to a cart by phone."""

    model_config = ConfigDict(extra="forbid")

    id: int
    name: str


class CartView(BaseModel):
    """A cart priced by the server; money in minor units of `currency`, tax included in `total`."""

    model_config = ConfigDict(extra="forbid")

    id: int
    status: CartStatus
    branch_id: int
    device_id: int
    currency: str
    customer_phone: str | None = Field(description="the phone attached to the cart, normalised")
    customer: CartCustomer | None
    lines: list[CartLineView]
    subtotal: int = Field(description="total minus tax: the net amount")
    tax: int
    total: int = Field(description="the sum of the line totals: what the customer pays")
    updated_at: datetime
    expires_at: datetime = Field(description="when the cart idles out unless it changes before")


class OrderLineView(BaseModel):
    """An order line, frozen when the order was placed: name, options and prices never change afterwards."""

    model_config = ConfigDict(extra="forbid")

    id: int
    item_id: int
    name: str
    qty: int
    unit_price: int
    options: list[ChosenOption]
    line_total: int


class OrderView(BaseModel):
    """An order with its frozen lines and the moments it changed state; money in minor units of `currency`."""

    model_config = ConfigDict(extra="forbid")

    id: int
    number: int = Field(description="short, per branch and business day, from 1: what the board shows")
    business_date: date = Field(description="the calendar date in the branch's time zone when it was placed")
    status: OrderStatus
    branch_id: int
    device_id: int | None = Field(description="the kiosk that placed it")
    cart_id: int | None
    customer_name: str | None
    currency: str
    subtotal: int
    tax: int
    total: int
    lines: list[OrderLineView]
    created_at: datetime
    paid_at: datetime | None
    started_at: datetime | None
    ready_at: datetime | None = Field(description="cleared by a recall")
    completed_at: datetime | None
    cancelled_at: datetime | None
    cancel_reason: Literal["cancelled_by_kiosk", "payment_timeout"] | None
    refunded_at: datetime | None


# The order board -------------------------------------------------------------------------------------------------


class BoardEntry(BaseModel):
    """`board.updated`: an order's number moved between the board's columns (null: off the board)."""

    model_config = ConfigDict(extra="forbid")

    order_id: int
    number: int
    column: Literal["preparing", "ready"] | None = Field(
        description="`preparing` once paid, `ready` when ready, null once completed or taken back"
    )


class BoardPlace(BaseModel):
    """An order's number in one column of the board snapshot."""

    model_config = ConfigDict(extra="forbid")

    order_id: int
    number: int


# Snapshots -------------------------------------------------------------------------------------------------------


class KitchenSnapshot(BaseModel):
    """`branch:{b}:kitchen`: open tickets (paid, preparing or ready), the first paid first."""

    model_config = ConfigDict(extra="forbid")

    tickets: list[OrderView]


class BoardSnapshot(BaseModel):
    """`branch:{b}:board`: the orders preparing (paid orders included) and ready, the first paid first."""

    model_config = ConfigDict(extra="forbid")

    preparing: list[BoardPlace]
    ready: list[BoardPlace]


class OrdersSnapshot(BaseModel):
    """`branch:{b}:orders`: orders created in the last 24 hours and not completed, by id."""

    model_config = ConfigDict(extra="forbid")

    orders: list[OrderView]


class DeviceView(BaseModel):
    """A device of the branch and whether it has a live connection."""

    model_config = ConfigDict(extra="forbid")

    id: int
    kind: DeviceKind
    name: str
    is_active: bool
    online: bool


class DevicesSnapshot(BaseModel):
    """`branch:{b}:devices`: every device of the branch, by id."""

    model_config = ConfigDict(extra="forbid")

    devices: list[DeviceView]


class PaymentView(BaseModel):
    """A payment: reply of every payment command, data of every `payment.*` event; money in minor units."""

    model_config = ConfigDict(extra="forbid")

    id: int
    order_id: int
    branch_id: int
    method: PaymentMethod
    kiosk_id: int | None
    terminal_id: int | None
    amount: int
    currency: str
    status: PaymentStatus
    provider_ref: str | None = Field(description="the acquirer's or payment API's reference")
    message: str | None = Field(description="the terminal's or API's words, for people")
    created_at: datetime
    approved_at: datetime | None
    finished_at: datetime | None


class DeviceSnapshot(BaseModel):
    """`device:{d}`: its open carts, its orders awaiting payment and its payments pending or processing."""

    model_config = ConfigDict(extra="forbid")

    carts: list[CartView]
    orders: list[OrderView]
    payments: list[PaymentView]


# Channel kind (as `ChannelName.kind` spells it) -> the data of its snapshot.
SNAPSHOTS: dict[str, type[BaseModel]] = {
    "branch:menu": MenuSnapshot,
    "branch:kitchen": KitchenSnapshot,
    "branch:board": BoardSnapshot,
    "branch:orders": OrdersSnapshot,
    "branch:devices": DevicesSnapshot,
    "device": DeviceSnapshot,
}


# The connection's own frames, and presence -----------------------------------------------------------------------


class ChannelPosition(BaseModel):
    """Where the client starts on a channel: its seq and epoch, and whether missed events follow (resumed)."""

    model_config = ConfigDict(extra="forbid")

    seq: int = Field(ge=0)
    epoch: str
    resumed: bool


class DevicePrincipal(BaseModel):
    """A device, as `welcome` names it."""

    model_config = ConfigDict(extra="forbid")

    kind: Literal["device"]
    id: int
    branch_id: int
    device_kind: DeviceKind


class UserPrincipal(BaseModel):
    """A user, as `welcome` names it; `branch_id` null for chain-wide users (admins)."""

    model_config = ConfigDict(extra="forbid")

    kind: Literal["user"]
    id: int
    branch_id: int | None
    role: str
    permissions: list[str]


class WelcomeData(BaseModel):
    """The answer to `hello`: who the connection acts for and the channels it was subscribed to."""

    model_config = ConfigDict(extra="forbid")

    connection_id: str
    # A plain union: AsyncAPI spells `discriminator` differently from the OpenAPI form pydantic writes.
    principal: DevicePrincipal | UserPrincipal
    server_time: datetime
    heartbeat_s: float = Field(description="seconds between the server's WebSocket pings")
    channels: dict[str, ChannelPosition] = Field(description="each channel subscribed on hello, by name")


class SubscribeReply(ChannelPosition):
    """`subscribe` succeeded: the channel and where the client starts on it."""

    channel: str


class UnsubscribeReply(BaseModel):
    """`unsubscribe` done (also when the client was not subscribed)."""

    model_config = ConfigDict(extra="forbid")

    channel: str


class RefreshReply(BaseModel):
    """`auth.refresh` accepted: the connection now ends when the new token expires."""

    model_config = ConfigDict(extra="forbid")

    expires_at: datetime


class DevicePresence(BaseModel):
    """`device.online` / `device.offline`: a device got its first connection or lost its last one."""

    model_config = ConfigDict(extra="forbid")

    device_id: int
    branch_id: int
    online: bool
    at: datetime
