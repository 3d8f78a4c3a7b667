"""An order as every device and channel sees it, and which channels hear of each change.

One shape everywhere (replies, events, snapshots, the REST routes, the POS push): `OrderView`,
so a client applies any of them as an upsert by `id`, keeping the highest `version`. Who
hears what (PROTOCOL.md "Channels"):

- the kiosk that placed it (`device:{d}`) and staff (`branch:{b}:orders`): every change,
  as `order.placed`, `order.paid`, `order.preparing`, `order.ready`, `order.recalled`,
  `order.completed`, `order.cancelled`, `order.refunded`;
- the kitchen (`branch:{b}:kitchen`): from payment on, with `order.queued` for a newly
  paid order and `order.cancelled` for one taken back (refunded);
- the order board (`branch:{b}:board`): `board.updated` whenever the order's number moves
  between its columns: `preparing` from payment until ready, `ready`, then off (null).

Its lines' names and options are in the order's `locale` for the customer (the kiosk's
`device:{d}` events, snapshot and replies, the receipt) and in the branch's kitchen locale
for everyone else (kitchen, staff, POS), both frozen at placement.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from channels import names
from channels.unit_of_work import Emit
from persistence.base import flushed
from persistence.enums import OrderStatus, ServiceMode
from persistence.order_records import OrderLineRecord, OrderRecord
from persistence.tables import Order, OrderLine
from server.payloads.cart import ChosenOption, LineComponent
from server.payloads.moment import Moment
from server.payloads.taxes import RateTaxView

BoardColumn = Literal["preparing", "ready"]

# An order as the ORM loads it (snapshots, REST lists) or as a prepared statement reads it (moves): the same fields.
AnyOrder = Order | OrderRecord


class OrderComponent(LineComponent):
    """A filled slot of an order's combo line, with the kitchen station its item was routed to at placement."""

    station: str | None = Field(
        default=None, description="the kitchen station the component goes to; null: the branch has no stations"
    )


class OrderLineView(BaseModel):
    """An order line, frozen when the order was placed: name, options and prices never change afterwards."""

    model_config = ConfigDict(extra="forbid", from_attributes=True)

    id: int
    item_id: int
    name: str
    qty: int
    unit_price: int
    options: list[ChosenOption]
    line_total: int
    tax_rate_bp: int | None = Field(description="the rate the line was taxed at; null on orders from before rates")
    note: str | None = Field(description="the customer's note of the cart line (allergies): flag it; null: none")
    components: list[OrderComponent] = Field(
        default_factory=list, description="a combo's filled slots as priced at placement; empty for any other item"
    )
    station: str | None = Field(
        default=None, description="the kitchen station the line was routed to at placement; null: the branch has none"
    )


class OrderView(BaseModel):
    """An order with its frozen lines and the moments it changed state; money in minor units of `currency`."""

    model_config = ConfigDict(extra="forbid", from_attributes=True)

    id: int
    version: int = Field(description="raised by every change of the order: keep the newest, ignore an older one")
    number: int = Field(description="short, per branch and business day, from 1: what the board shows")
    business_date: date = Field(description="the calendar date in the branch's time zone when it was placed")
    status: OrderStatus
    branch_id: int
    device_id: int | None = Field(description="the kiosk that placed it")
    cart_id: int | None
    customer_name: str | None
    currency: str
    service_mode: ServiceMode = Field(description="eat in or take away, as the cart was placed")
    locale: str | None = Field(
        default=None,
        description=(
            "the customer's language, the cart's at placement: the kiosk's payloads and the receipt name the lines "
            "in it, the kitchen's, staff's and POS's in the branch's kitchen locale; null: placed before languages"
        ),
    )
    subtotal: int
    tax: int
    taxes: list[RateTaxView] = Field(description="the tax per rate, lowest rate first")
    total: int
    lines: list[OrderLineView]
    created_at: Moment
    paid_at: Moment | None
    started_at: Moment | None
    ready_at: Moment | None = Field(description="cleared by a recall")
    completed_at: Moment | None
    cancelled_at: Moment | None
    cancel_reason: Literal["cancelled_by_kiosk", "payment_timeout"] | None
    refunded_at: Moment | None


class BoardEntry(BaseModel):
    """`board.updated`: an order's number moved between the board's columns (null: off the board)."""

    model_config = ConfigDict(extra="forbid")

    order_id: int
    version: int = Field(description="the order's version: keep the newest entry of each order")
    number: int
    column: BoardColumn | None = Field(
        description="`preparing` once paid, `ready` when ready, null once completed or taken back"
    )


class BoardPlace(BaseModel):
    """An order's number in one column of the board snapshot."""

    model_config = ConfigDict(extra="forbid")

    order_id: int
    version: int = Field(description="the order's version")
    number: int


# What the order board shows for an order in each status; None: not on the board.
BOARD_COLUMN: dict[OrderStatus, BoardColumn | None] = {
    OrderStatus.AWAITING_PAYMENT: None,
    OrderStatus.PAID: "preparing",
    OrderStatus.PREPARING: "preparing",
    OrderStatus.READY: "ready",
    OrderStatus.COMPLETED: None,
    OrderStatus.CANCELLED: None,
    OrderStatus.REFUNDED: None,
}

# The event for the kiosk and staff, by the status an order has just reached.
_EVENT: dict[OrderStatus, str] = {
    OrderStatus.AWAITING_PAYMENT: "order.placed",
    OrderStatus.PAID: "order.paid",
    OrderStatus.PREPARING: "order.preparing",
    OrderStatus.READY: "order.ready",
    OrderStatus.COMPLETED: "order.completed",
    OrderStatus.CANCELLED: "order.cancelled",
    OrderStatus.REFUNDED: "order.refunded",
}

# The kitchen's name for a change where it differs from the kiosk's.
_KITCHEN_EVENT: dict[OrderStatus, str] = {OrderStatus.PAID: "order.queued", OrderStatus.REFUNDED: "order.cancelled"}


def order_data(order: AnyOrder, *, customer: bool = False) -> dict[str, Any]:
    """The order with its frozen lines and the moments it changed state, as JSON data: its lines named in the
    kitchen's locale, or with `customer` in the order's (the kiosk's, the receipt's)."""
    view = OrderView.model_validate(flushed(order))
    if customer:
        rows: Sequence[OrderLine | OrderLineRecord] = order.lines
        for line, row in zip(view.lines, rows, strict=True):
            if row.display_name is not None:
                line.name = row.display_name
            if row.display_options is not None:
                line.options = [ChosenOption.model_validate(option) for option in row.display_options]
            if row.display_components is not None:
                line.components = [OrderComponent.model_validate(part) for part in row.display_components]
    return view.model_dump(mode="json")


def _bilingual(order: AnyOrder) -> bool:
    """Whether a line of the order has names for the customer other than the kitchen's."""
    lines: Sequence[OrderLine | OrderLineRecord] = order.lines
    return any(
        (line.display_name is not None and line.display_name != line.name)
        or (line.display_options is not None and line.display_options != line.options)
        or line.display_components is not None
        for line in lines
    )


def board_place(order: AnyOrder) -> dict[str, Any]:
    """The order's number as a column of the board snapshot lists it."""
    return BoardPlace(order_id=order.id, version=flushed(order).version, number=order.number).model_dump(mode="json")


def board_entry(order: AnyOrder) -> dict[str, Any]:
    """`board.updated` data: the order's number and the board column it now shows in (null: off the board)."""
    entry = BoardEntry(
        order_id=order.id, version=flushed(order).version, number=order.number, column=BOARD_COLUMN[order.status]
    )
    return entry.model_dump(mode="json")


def kitchen_event(order: AnyOrder, *, recalled: bool = False) -> str | None:
    """The kitchen's event for `order` having just reached its status; None when the kitchen does not hear of it."""
    event = "order.recalled" if recalled else _EVENT[order.status]
    in_kitchen = order.status in (OrderStatus.PAID, OrderStatus.PREPARING, OrderStatus.READY, OrderStatus.COMPLETED)
    if in_kitchen or (order.status == OrderStatus.REFUNDED):
        return _KITCHEN_EVENT.get(order.status, event)
    return None


def announce(emit: Emit, order: AnyOrder, *, recalled: bool = False, previous: OrderStatus | None = None) -> None:
    """Emit the events of `order` having just reached its status (`recalled`: back to preparing from ready); its
    stations' kitchens hear of it through server/orders/station_progress.py."""
    data = order_data(order)
    event = "order.recalled" if recalled else _EVENT[order.status]
    emit(names.branch_orders(order.branch_id), event, data)
    if order.device_id is not None:
        # Built again only when the customer's names differ from the kitchen's (a kiosk in another language).
        emit(names.device(order.device_id), event, order_data(order, customer=True) if _bilingual(order) else data)
    in_kitchen = kitchen_event(order, recalled=recalled)
    if in_kitchen is not None:
        emit(names.branch_kitchen(order.branch_id), in_kitchen, data)
    before = BOARD_COLUMN[previous] if previous is not None else None
    if BOARD_COLUMN[order.status] != before:
        emit(names.branch_board(order.branch_id), "board.updated", board_entry(order))
