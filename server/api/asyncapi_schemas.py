"""What the AsyncAPI document says of the data: each channel's events, each event's data model, and the schemas.

The schemas are the ones pydantic writes from the models: the payloads (server/payloads/),
the data of every registered command and reply, the connection's own frames
(server/realtime/connection.py) and the error body. The tests hold a live server's frames to
them, so the document cannot drift from what the server sends.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from pydantic import BaseModel
from pydantic.json_schema import JsonSchemaMode, models_json_schema

from channels import frames
from persistence.enums import PaymentStatus
from server.api.openapi import ErrorBody
from server.commands.menu import Availability
from server.commands.router import CommandSpec
from server.payloads.cart import CartView
from server.payloads.connection import (
    DevicePresence,
    RefreshReply,
    SubscribeReply,
    UnsubscribeReply,
    WelcomeData,
)
from server.payloads.menu import MenuItem, MenuItemRemoved
from server.payloads.order import BoardEntry, OrderView
from server.payloads.payment import PaymentView
from server.payloads.snapshots import SNAPSHOTS
from server.payloads.station import StationTicket
from server.realtime.connection import Hello, RefreshData, SubscribeData, UnsubscribeData

REF_PREFIX = "#/components/schemas/"

# What each channel kind carries ----------------------------------------------------------------------------------

# What the kiosk that placed an order and the branch's staff hear of it (server/payloads/order.py, `announce`).
_ORDER_EVENTS = (
    "order.placed",
    "order.paid",
    "order.preparing",
    "order.ready",
    "order.recalled",
    "order.completed",
    "order.cancelled",
    "order.refunded",
)
_PAYMENT_EVENTS = tuple(f"payment.{status.value}" for status in PaymentStatus)
_KITCHEN_EVENTS = (
    "order.queued",
    "order.preparing",
    "order.ready",
    "order.recalled",
    "order.completed",
    "order.cancelled",
)
# Channel kind (as `ChannelName.kind` spells it) -> the events the server sends on it.
CHANNEL_EVENTS: dict[str, tuple[str, ...]] = {
    "branch:menu": ("menu.item_updated", "menu.item_removed", "stock.changed"),
    "branch:kitchen": _KITCHEN_EVENTS,
    "branch:station": (
        *_KITCHEN_EVENTS,
        "station.bumped",
        "station.recalled",
    ),
    "branch:board": ("board.updated",),
    "branch:orders": (*_ORDER_EVENTS, *_PAYMENT_EVENTS),
    "branch:devices": ("device.online", "device.offline"),
    "device": ("cart.updated", *_ORDER_EVENTS, *_PAYMENT_EVENTS, "payment.requested", "payment.cancel_requested"),
}

# The data of each event the server sends.
EVENT_DATA: dict[str, type[BaseModel]] = {
    **dict.fromkeys((*_PAYMENT_EVENTS, "payment.requested", "payment.cancel_requested"), PaymentView),
    "cart.updated": CartView,
    **dict.fromkeys((*_ORDER_EVENTS, "order.queued"), OrderView),
    "board.updated": BoardEntry,
    "menu.item_updated": MenuItem,
    "menu.item_removed": MenuItemRemoved,
    "stock.changed": Availability,
    "device.online": DevicePresence,
    "device.offline": DevicePresence,
    "station.bumped": StationTicket,
    "station.recalled": StationTicket,
}
# The channel kinds whose every event carries another model than the event's own elsewhere: a station's kitchen hears
# the kitchen's events with the station's ticket.
CHANNEL_EVENT_DATA: dict[str, type[BaseModel]] = {"branch:station": StationTicket}


# The component schemas -------------------------------------------------------------------------------------------

COMMAND_ID: dict[str, Any] = {
    "type": "string",
    "minLength": 1,
    "maxLength": frames.MAX_ID_LENGTH,
    "description": "Chosen by the client, unique per principal for 24 hours; the reply carries it back.",
}
ID_REF = {"$ref": REF_PREFIX + "CommandId"}


class Schemas:
    """The component schemas of every model the document uses, and how to point at them."""

    def __init__(self, specs: Iterable[CommandSpec]) -> None:
        inputs: list[type[BaseModel]] = [Hello, SubscribeData, UnsubscribeData, RefreshData]
        outputs: list[type[BaseModel]] = [ErrorBody, WelcomeData, SubscribeReply, UnsubscribeReply, RefreshReply]
        outputs += [*SNAPSHOTS.values(), *EVENT_DATA.values()]
        wanted: dict[tuple[type[BaseModel], JsonSchemaMode], None] = {}
        wanted.update(dict.fromkeys((model, "validation") for model in inputs))
        wanted.update(dict.fromkeys((model, "serialization") for model in outputs))
        for spec in specs:
            wanted[(spec.model, "validation")] = None
            if spec.reply is not None:
                wanted[(spec.reply, "serialization")] = None
        keys, definitions = models_json_schema(list(wanted), ref_template=REF_PREFIX + "{model}")
        self._refs = {key: str(schema["$ref"]) for key, schema in keys.items()}
        self.components: dict[str, Any] = {**definitions.get("$defs", {}), "CommandId": COMMAND_ID}

    def ref(self, model: type[BaseModel], mode: JsonSchemaMode) -> str:
        """The `$ref` of `model` in `mode`."""
        return self._refs[(model, mode)]
