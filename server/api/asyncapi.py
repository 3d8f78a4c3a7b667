"""The AsyncAPI 3.0.0 document of the device protocol, generated from the code, at `{API_V1_STR}/asyncapi.json`.

What it is read from:

    server.commands registry    every command: its data model, who may send it, its reply model and errors
    server.socket               `hello` and the data models of the connection's own commands
    channels.names, .rules      the channel kinds, who may subscribe, what each device kind gets on `hello`
    channels.frames             close codes

The server writes welcome, snapshot and presence frames as plain JSON; the models below
describe them, and the tests hold them to what a live server sends. docs/protocol.md
says the same in words, with examples.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Iterable
from datetime import datetime
from typing import Any, Literal, get_args

from pydantic import BaseModel, ConfigDict, Field
from pydantic.json_schema import JsonSchemaMode, models_json_schema
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

import server
from channels import frames
from channels.names import BRANCH_TOPICS
from channels.rules import DEVICE_MAY_SUBSCRIBE, DEVICE_TOPICS, OWN_CHANNEL_ON_HELLO
from persistence.enums import CartStatus, DeviceKind, OrderStatus, PaymentStatus
from server.api.openapi import ErrorBody
from server.commands import registry
from server.commands.menu import Availability
from server.commands.router import CommandRegistry, CommandSpec
from server.errors import ErrorCode
from server.settings import Settings
from server.socket import (
    COMMAND_BURST,
    COMMAND_RATE_PER_S,
    HELLO_TIMEOUT_S,
    SEND_QUEUE_SIZE,
    Hello,
    RefreshData,
    SubscribeData,
    UnsubscribeData,
)

ASYNCAPI_VERSION = "3.0.0"
SERVER = "ws"
# The channel of frames that belong to no protocol channel: handshake, commands, replies, pings.
CONNECTION = "connection"
_REF_PREFIX = "#/components/schemas/"

# Frames the server writes itself ---------------------------------------------------------------------------------


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


class OrderLineView(BaseModel):
    """One line of an order in a snapshot."""

    model_config = ConfigDict(extra="forbid")

    item_id: int
    name: str
    qty: int
    options: list[dict[str, Any]] = Field(description="the options chosen, as priced when the order was placed")


class OrderView(BaseModel):
    """An order in a snapshot; money in minor units of `currency`."""

    model_config = ConfigDict(extra="forbid")

    id: int
    number: int
    status: OrderStatus
    branch_id: int
    device_id: int | None
    customer_name: str | None
    currency: str
    total: int
    created_at: datetime
    paid_at: datetime | None
    lines: list[OrderLineView]


class MenuChoice(BaseModel):
    """One choice of an option group; `price_delta` in minor units."""

    model_config = ConfigDict(extra="forbid")

    id: int
    name: str
    price_delta: int
    is_default: bool


class MenuOptionGroup(BaseModel):
    """A group of choices of an item, and how many of them a cart line may hold."""

    model_config = ConfigDict(extra="forbid")

    id: int
    name: str
    min_select: int
    max_select: int
    choices: list[MenuChoice]


class MenuItem(BaseModel):
    """An item the branch offers; `available` is false when 86'd or when its counted stock is 0."""

    model_config = ConfigDict(extra="forbid")

    id: int
    name: str
    description: str | None
    image_url: str | None
    price: int
    available: bool
    stock: int | None = Field(description="how many are left; null when the branch does not count them")
    option_groups: list[MenuOptionGroup]


class MenuCategory(BaseModel):
    """A category with the items the branch offers in it, in display order."""

    model_config = ConfigDict(extra="forbid")

    id: int
    name: str
    position: int
    items: list[MenuItem]


class MenuSnapshot(BaseModel):
    """`branch:{b}:menu`: the branch's menu, categories and items in display order, with availability."""

    model_config = ConfigDict(extra="forbid")

    branch_id: int
    currency: str | None
    categories: list[MenuCategory]


class KitchenSnapshot(BaseModel):
    """`branch:{b}:kitchen`: open tickets (paid, preparing or ready), the first paid first."""

    model_config = ConfigDict(extra="forbid")

    tickets: list[OrderView]


class BoardSnapshot(BaseModel):
    """`branch:{b}:board`: the order numbers preparing and ready."""

    model_config = ConfigDict(extra="forbid")

    preparing: list[int]
    ready: list[int]


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


class CartView(BaseModel):
    """An open cart of the device."""

    model_config = ConfigDict(extra="forbid")

    id: int
    status: CartStatus


class PaymentView(BaseModel):
    """A payment in flight of the device; `amount` in minor units of `currency`."""

    model_config = ConfigDict(extra="forbid")

    id: int
    order_id: int
    status: PaymentStatus
    amount: int
    currency: str


class DeviceSnapshot(BaseModel):
    """`device:{d}`: its open carts, its orders awaiting payment and its payments pending or processing."""

    model_config = ConfigDict(extra="forbid")

    carts: list[CartView]
    orders: list[OrderView]
    payments: list[PaymentView]


# What each channel kind carries ----------------------------------------------------------------------------------

_KITCHEN_EVENTS = (
    "order.queued",
    "order.preparing",
    "order.ready",
    "order.recalled",
    "order.completed",
    "order.cancelled",
)

# Channel kind (as `ChannelName.kind` spells it) -> the events PROTOCOL.md names for it.
CHANNEL_EVENTS: dict[str, tuple[str, ...]] = {
    "branch:menu": ("menu.item_updated", "menu.item_removed", "stock.changed"),
    "branch:kitchen": _KITCHEN_EVENTS,
    "branch:board": ("board.updated",),
    "branch:orders": _KITCHEN_EVENTS,
    "branch:devices": ("device.online", "device.offline"),
    "device": ("cart.updated", "payment.requested", "payment.cancel_requested"),
}

SNAPSHOTS: dict[str, type[BaseModel]] = {
    "branch:menu": MenuSnapshot,
    "branch:kitchen": KitchenSnapshot,
    "branch:board": BoardSnapshot,
    "branch:orders": OrdersSnapshot,
    "branch:devices": DevicesSnapshot,
    "device": DeviceSnapshot,
}

# Events whose data has a model in the code; the others get theirs with the order and payment work.
EVENT_DATA: dict[str, type[BaseModel]] = {
    "stock.changed": Availability,
    "device.online": DevicePresence,
    "device.offline": DevicePresence,
}

_CHANNEL_SUMMARIES = {
    "branch:menu": "The menu of branch b, with availability.",
    "branch:kitchen": "The kitchen queue of branch b.",
    "branch:board": "The order board of branch b: numbers preparing and ready.",
    "branch:orders": "Every order and payment event of branch b, for staff.",
    "branch:devices": "The devices of branch b and whether they are online.",
    "device": "Everything addressed to device d.",
}

_CHANNEL_NOTES = {
    "branch:orders": "Besides the order events listed, every order and payment event of the branch comes here; "
    "their names are listed with the order and payment work.",
    "device": "Besides the events listed, the orders and payments of the device (`order.*`, `payment.*`) come "
    "here; their names are listed with the order and payment work.",
}

_EVENT_SUMMARIES = {
    "menu.item_updated": "An item of the menu changed.",
    "menu.item_removed": "An item left the menu.",
    "stock.changed": "An item's availability or stock changed in the branch (86'd or back).",
    "order.queued": "A paid order joined the kitchen queue.",
    "order.preparing": "The kitchen started an order.",
    "order.ready": "An order is ready for pick-up.",
    "order.recalled": "A ready order went back to preparing.",
    "order.completed": "An order was handed over.",
    "order.cancelled": "An order was cancelled.",
    "board.updated": "The numbers preparing and ready changed.",
    "device.online": "A device got its first live connection.",
    "device.offline": "A device lost its last live connection.",
    "cart.updated": "A cart of the kiosk changed.",
    "payment.requested": "The terminal is asked to charge a payment.",
    "payment.cancel_requested": "The terminal is asked to stop a payment.",
}

CLOSE_CODES: dict[int, str] = {
    frames.GOING_AWAY: "server going away (restart, deploy): reconnect and resume",
    frames.TOO_BIG: "a frame over the size limit: fix the client",
    # Not the protocol's own: the WebSocket layer's keep-alive, and the handshake when the database is down.
    1011: "no answer to a ping in time, or the database unreachable during the handshake: reconnect with backoff",
    frames.PROTOCOL_ABUSE: "too many bad frames: fix the client",
    frames.UNAUTHORIZED: "no hello in time, a bad, expired or revoked token, or logged out: get a new token, reconnect",
    frames.FORBIDDEN: "the device, user or branch is disabled: stop",
    frames.TOO_SLOW: "the send queue overflowed: reconnect and resume",
    frames.RATE_LIMITED: "too many commands: back off, reconnect",
}


# The document ----------------------------------------------------------------------------------------------------


def asyncapi_document(settings: Settings, commands: CommandRegistry) -> dict[str, Any]:
    """The AsyncAPI 3.0.0 document of the protocol, with every command of `commands`."""
    for spec in commands.commands.values():
        unknown = set(spec.errors) - set(get_args(ErrorCode))
        if unknown:
            raise ValueError(f"command {spec.name} declares unknown error codes {sorted(unknown)}")
    schemas = _Schemas(commands.commands.values())
    messages: dict[str, Any] = {}
    channels: dict[str, Any] = {}
    operations: dict[str, Any] = {}
    connection: dict[str, Any] = {}

    def message(key: str, body: dict[str, Any]) -> dict[str, str]:
        messages[key] = {"contentType": "application/json", **body}
        return {"$ref": f"#/components/messages/{key}"}

    # The handshake, pings and errors.
    connection["hello"] = message("hello", _hello(schemas))
    connection["welcome"] = message("welcome", _welcome(schemas))
    connection["ping"] = message("ping", _ping())
    connection["pong"] = message("pong", _pong())
    connection["reply.error"] = message("reply.error", _error_reply(schemas))
    operations["send.hello"] = {
        "action": "send",
        "channel": {"$ref": f"#/channels/{CONNECTION}"},
        "summary": f"Authenticate: the first frame, within {HELLO_TIMEOUT_S:g} s of the upgrade",
        "description": _hello_text(settings.API_V1_STR),
        "messages": _on_connection("hello"),
        "reply": {"channel": {"$ref": f"#/channels/{CONNECTION}"}, "messages": _on_connection("welcome")},
    }
    operations["send.ping"] = {
        "action": "send",
        "channel": {"$ref": f"#/channels/{CONNECTION}"},
        "summary": "Application-level keep-alive, for clients that cannot see WebSocket pings",
        "description": "Answered with `pong`; needs no `id`, takes no command token and is never rate limited.",
        "messages": _on_connection("ping"),
        "reply": {"channel": {"$ref": f"#/channels/{CONNECTION}"}, "messages": _on_connection("pong")},
    }

    # Commands: the connection's own, then every registered one.
    for name, summary, description, data, reply in _connection_commands(schemas):
        connection[f"command.{name}"] = message(f"command.{name}", _command(name, summary, description, data))
        connection[f"reply.{name}"] = message(f"reply.{name}", _ok_reply(name, reply))
        operations[f"send.{name}"] = _send(name, summary, description)
    for spec in commands.commands.values():
        description = _command_text(spec)
        data = {"$ref": schemas.ref(spec.model, "validation")}
        reply = {"$ref": schemas.ref(spec.reply, "serialization")} if spec.reply else {"type": "object"}
        connection[f"command.{spec.name}"] = message(
            f"command.{spec.name}", _command(spec.name, spec.summary, description, data)
        )
        connection[f"reply.{spec.name}"] = message(f"reply.{spec.name}", _ok_reply(spec.name, reply))
        operations[f"send.{spec.name}"] = _send(spec.name, spec.summary, description)

    channels[CONNECTION] = {
        "address": None,
        "title": "The connection",
        "description": "Frames that belong to no channel: the handshake, commands and their replies, pings.",
        "messages": connection,
    }
    operations["receive.connection"] = {
        "action": "receive",
        "channel": {"$ref": f"#/channels/{CONNECTION}"},
        "summary": "Frames of the connection itself",
        "description": "`welcome` once, a `reply` to every command (`ok` true with data, or false with an error; "
        "`id` null when the frame's id could not be read) and `pong` to every `ping`.",
        "messages": _on_connection("welcome", "reply.error", "pong"),
    }

    # The protocol channels: their events and snapshot.
    for kind in _channel_kinds():
        channel_id = kind.replace(":", ".")
        channel_messages = {}
        for event in CHANNEL_EVENTS[kind]:
            key = f"event.{event}"
            if key not in messages:
                message(key, _event(event, schemas))
            channel_messages[key] = {"$ref": f"#/components/messages/{key}"}
        snapshot_key = f"snapshot.{channel_id}"
        channel_messages[snapshot_key] = message(snapshot_key, _snapshot(kind, schemas))
        channels[channel_id] = _channel(kind, channel_messages)
        operations[f"receive.{channel_id}"] = {
            "action": "receive",
            "channel": {"$ref": f"#/channels/{channel_id}"},
            "summary": f"Events and snapshots of {channels[channel_id]['address']}",
            "messages": [{"$ref": f"#/channels/{channel_id}/messages/{key}"} for key in channel_messages],
        }

    return {
        "asyncapi": ASYNCAPI_VERSION,
        "info": {
            "title": f"{settings.PROJECT_NAME} device protocol",
            "version": server.__version__,
            "description": _info_text(settings.API_V1_STR),
        },
        "defaultContentType": "application/json",
        "servers": {SERVER: _server(settings)},
        "channels": channels,
        "operations": operations,
        "components": {"schemas": schemas.components, "messages": messages},
    }


def _channel_kinds() -> list[str]:
    kinds = [f"branch:{topic}" for topic in BRANCH_TOPICS] + ["device"]
    for table in (CHANNEL_EVENTS, SNAPSHOTS, _CHANNEL_SUMMARIES):
        if set(table) != set(kinds):
            raise ValueError(f"channel kinds {sorted(kinds)} and the document's tables {sorted(table)} disagree")
    return kinds


# Schemas ---------------------------------------------------------------------------------------------------------


class _Schemas:
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
        keys, definitions = models_json_schema(list(wanted), ref_template=_REF_PREFIX + "{model}")
        self._refs = {key: str(schema["$ref"]) for key, schema in keys.items()}
        self.components: dict[str, Any] = {**definitions.get("$defs", {}), "CommandId": _COMMAND_ID}

    def ref(self, model: type[BaseModel], mode: JsonSchemaMode) -> str:
        """The `$ref` of `model` in `mode`."""
        return self._refs[(model, mode)]


_COMMAND_ID: dict[str, Any] = {
    "type": "string",
    "minLength": 1,
    "maxLength": frames.MAX_ID_LENGTH,
    "description": "Chosen by the client, unique per principal for 24 hours; the reply carries it back.",
}
_ID_REF = {"$ref": _REF_PREFIX + "CommandId"}


def _frame(properties: dict[str, Any], *, strict: bool = True) -> dict[str, Any]:
    """A frame: an object with these properties, all required; server frames have nothing else."""
    schema: dict[str, Any] = {"type": "object", "properties": properties, "required": list(properties)}
    if strict:
        schema["additionalProperties"] = False
    return schema


# Messages --------------------------------------------------------------------------------------------------------


def _hello(schemas: _Schemas) -> dict[str, Any]:
    payload = {"allOf": [{"$ref": schemas.ref(Hello, "validation")}, {"properties": {"type": {"const": "hello"}}}]}
    return {
        "name": "hello",
        "title": "hello",
        "summary": "The first frame: the access token, and optionally where the client left each channel.",
        "payload": payload,
    }


def _welcome(schemas: _Schemas) -> dict[str, Any]:
    payload = _frame({"type": {"const": "welcome"}, "data": {"$ref": schemas.ref(WelcomeData, "serialization")}})
    return {
        "name": "welcome",
        "title": "welcome",
        "summary": "The answer to a valid hello; each channel's missed events or snapshot follow.",
        "payload": payload,
    }


def _ping() -> dict[str, Any]:
    return {
        "name": "ping",
        "title": "ping",
        "summary": "Are you there?",
        "payload": _frame({"type": {"const": "ping"}}, strict=False),
    }


def _pong() -> dict[str, Any]:
    return {
        "name": "pong",
        "title": "pong",
        "summary": "The answer to ping.",
        "payload": _frame({"type": {"const": "pong"}}),
    }


def _error_reply(schemas: _Schemas) -> dict[str, Any]:
    payload = _frame(
        {
            "type": {"const": "reply"},
            "id": {"anyOf": [_ID_REF, {"type": "null"}]},
            "ok": {"const": False},
            "error": {"$ref": schemas.ref(ErrorBody, "serialization")},
        }
    )
    return {
        "name": "reply",
        "title": "failed reply",
        "summary": "A command or frame failed; `error.code` is one of the protocol's stable codes.",
        "payload": payload,
    }


def _command(name: str, summary: str, description: str, data: dict[str, Any]) -> dict[str, Any]:
    payload = _frame({"type": {"const": name}, "id": _ID_REF, "data": data}, strict=False)
    payload["required"] = ["type", "id"]
    return {"name": name, "title": name, "summary": summary, "description": description, "payload": payload}


def _ok_reply(name: str, data: dict[str, Any]) -> dict[str, Any]:
    payload = _frame({"type": {"const": "reply"}, "id": _ID_REF, "ok": {"const": True}, "data": data})
    return {"name": "reply", "title": f"{name} reply", "summary": f"{name} succeeded.", "payload": payload}


def _event(event: str, schemas: _Schemas) -> dict[str, Any]:
    model = EVENT_DATA.get(event)
    data = {"$ref": schemas.ref(model, "serialization")} if model else {"type": "object"}
    description = (
        "" if model else "The data schema of this event comes with the order and payment work; until then, any object."
    )
    payload = _frame(
        {
            "type": {"const": "event"},
            "channel": {"type": "string"},
            "seq": {"type": "integer", "minimum": 1, "description": "one more than the channel's previous event"},
            "epoch": {"type": "string", "description": "the life of the channel's history this seq belongs to"},
            "event": {"const": event},
            "data": data,
            "ts": {"type": "string", "format": "date-time"},
        }
    )
    body = {"name": event, "title": event, "summary": _EVENT_SUMMARIES[event], "payload": payload}
    return {**body, "description": description} if description else body


def _snapshot(kind: str, schemas: _Schemas) -> dict[str, Any]:
    model = SNAPSHOTS[kind]
    payload = _frame(
        {
            "type": {"const": "snapshot"},
            "channel": {"type": "string"},
            "seq": {"type": "integer", "minimum": 0, "description": "the channel's position the snapshot is as of"},
            "epoch": {"type": "string"},
            "data": {"$ref": schemas.ref(model, "serialization")},
        }
    )
    return {
        "name": "snapshot",
        "title": f"{kind} snapshot",
        "summary": (model.__doc__ or "").strip(),
        "description": "Sent instead of missed events when they cannot be resumed. It shows at least every event up "
        "to its seq; later events may repeat what it already shows, so apply them as upserts.",
        "payload": payload,
    }


# Channels and operations -----------------------------------------------------------------------------------------


def _channel(kind: str, messages: dict[str, Any]) -> dict[str, Any]:
    topic = kind.removeprefix("branch:") if kind != "device" else None
    address = f"branch:{{b}}:{topic}" if topic else "device:{d}"
    parameters = (
        {"b": {"description": "The branch id.", "examples": ["1"]}}
        if topic
        else {"d": {"description": "The device id.", "examples": ["7"]}}
    )
    description = f"{_CHANNEL_SUMMARIES[kind]}\n\n**Who may subscribe:** {_audience(topic)}"
    if kind in _CHANNEL_NOTES:
        description += f"\n\n{_CHANNEL_NOTES[kind]}"
    return {
        "address": address,
        "title": address,
        "summary": _CHANNEL_SUMMARIES[kind],
        "description": description,
        "parameters": parameters,
        "messages": messages,
    }


def _audience(topic: str | None) -> str:
    """Who may subscribe to a channel kind and who gets it on `hello`, in words, from channels/rules.py."""
    if topic is None:
        hello = " or ".join(f"`{kind}`" for kind in sorted(OWN_CHANNEL_ON_HELLO))
        return f"device d itself (subscribed on hello when it is a {hello}) and chain-wide users (admins)."
    kinds = [kind for kind, topics in DEVICE_MAY_SUBSCRIBE.items() if topic in topics]
    on_hello = [kind for kind, topics in DEVICE_TOPICS.items() if topic in topics]
    devices = (
        f"devices of branch b of kind {' or '.join(f'`{kind}`' for kind in kinds)}"
        f" (subscribed on hello: {', '.join(f'`{kind}`' for kind in on_hello) or 'none'})"
        if kinds
        else "no device"
    )
    return f"users of branch b (any role), chain-wide users (admins), and {devices}."


def _connection_commands(schemas: _Schemas) -> list[tuple[str, str, str, dict[str, Any], dict[str, Any]]]:
    """(name, summary, description, data schema, reply data schema) of the commands the connection answers itself."""
    return [
        (
            "subscribe",
            "Add a channel, from where the client left it or from a snapshot",
            "With `since` and `epoch` the missed events follow the reply when the channel's history still has them; "
            "otherwise one snapshot does. Then live events. A channel the principal may not see is `forbidden`; "
            "a name that is no channel is `invalid`. Subscribing again to a channel already held syncs it again.",
            {"$ref": schemas.ref(SubscribeData, "validation")},
            {"$ref": schemas.ref(SubscribeReply, "serialization")},
        ),
        (
            "unsubscribe",
            "Drop a channel",
            "Nothing of the channel follows the reply. Succeeds also for a channel the connection does not hold.",
            {"$ref": schemas.ref(UnsubscribeData, "validation")},
            {"$ref": schemas.ref(UnsubscribeReply, "serialization")},
        ),
        (
            "auth.refresh",
            "Replace the connection's token before it expires",
            "The token must be a valid access token of the same principal; the connection then closes with 4001 "
            "when the new token expires instead. `unauthorized` (bad token, or another principal's) or `forbidden` "
            "(disabled) leave the connection and its old expiry as they were.",
            {"$ref": schemas.ref(RefreshData, "validation")},
            {"$ref": schemas.ref(RefreshReply, "serialization")},
        ),
    ]


def _command_text(spec: CommandSpec) -> str:
    errors = ", ".join(f"`{code}`" for code in spec.errors) or "none beyond the common ones"
    parts = [
        spec.description,
        f"**Who:** {spec.who.describe()}.",
        f"**Errors:** {errors}; besides, any command may fail with `invalid` (data), `forbidden` (sender), "
        "`rate_limited`, `unavailable` or `internal`.",
        "**Idempotent:** a retry with the same `id` gets the first reply again, and nothing runs twice.",
    ]
    return "\n\n".join(part for part in parts if part)


def _on_connection(*keys: str) -> list[dict[str, str]]:
    return [{"$ref": f"#/channels/{CONNECTION}/messages/{key}"} for key in keys]


def _send(name: str, summary: str, description: str) -> dict[str, Any]:
    return {
        "action": "send",
        "channel": {"$ref": f"#/channels/{CONNECTION}"},
        "summary": summary,
        "description": description,
        "messages": _on_connection(f"command.{name}"),
        "reply": {
            "channel": {"$ref": f"#/channels/{CONNECTION}"},
            "messages": _on_connection(f"reply.{name}", "reply.error"),
        },
    }


# Texts -----------------------------------------------------------------------------------------------------------


def _hello_text(prefix: str) -> str:
    return (
        f"The token is an access token from `POST {prefix}/auth/device` (devices) or `POST {prefix}/auth/login` "
        "(users). `resume` maps a channel to the last `seq` seen and its `epoch`; only the channels the principal is "
        f"subscribed to on hello are resumed. No hello within {HELLO_TIMEOUT_S:g} s, a first frame that is not a "
        "hello, or a bad, expired or revoked token closes with 4001; a disabled device, user or branch with 4003."
    )


def _info_text(prefix: str) -> str:
    return (
        f"One WebSocket per device (or staff tool) at `{prefix}/ws`: a `hello` with an access token, then commands "
        "in and events out, as JSON text frames. The full description, with examples of every frame, is "
        "docs/protocol.md; REST (login and admin) is the OpenAPI document at "
        f"`{prefix}/openapi.json`.\n\n"
        "Every command gets exactly one `reply` with the command's `id`. Every event of a channel carries `seq` "
        "(one more than the last, no gaps) and `epoch`; a client that reconnects with both gets the events it "
        "missed, or a snapshot when they are gone.\n\n"
        "**Limits:** a frame over the size limit closes with 1009; "
        f"{COMMAND_RATE_PER_S:g} commands a second with bursts of {COMMAND_BURST}, then `rate_limited` replies and "
        f"at last 4029; bad frames beyond the limit a minute close with 4000; a client whose "
        f"{SEND_QUEUE_SIZE} queued frames are not read is closed with 4008."
    )


def _server(settings: Settings) -> dict[str, Any]:
    closes = "\n".join(f"| {code} | {meaning} |" for code, meaning in sorted(CLOSE_CODES.items()))
    return {
        "host": "{host}",
        "protocol": "ws",
        "pathname": f"{settings.API_V1_STR}/ws",
        "title": "The device WebSocket",
        "description": (
            f"`ws://` locally, `wss://` behind TLS. Say `hello` within {HELLO_TIMEOUT_S:g} s. The server sends "
            f"WebSocket pings every {settings.WS_HEARTBEAT_S:g} s and drops a peer that does not answer one within "
            f"as long (1011). Frames over {settings.WS_MAX_MESSAGE_BYTES} bytes close the connection with 1009.\n\n"
            f"| close code | meaning |\n| --- | --- |\n{closes}"
        ),
        "variables": {"host": {"default": "127.0.0.1:8000", "description": "The server's host and port."}},
    }


# Serving ---------------------------------------------------------------------------------------------------------


def routes(settings: Settings, commands: CommandRegistry = registry) -> list[BaseRoute]:
    """`{API_V1_STR}/asyncapi.json`: public, built on first request and kept for the app's life."""

    @functools.cache
    def document() -> bytes:
        # Built on first request rather than with the app: many apps (tests) never serve it.
        return json.dumps(asyncapi_document(settings, commands), separators=(",", ":")).encode()

    async def asyncapi_json(request: Request) -> Response:
        return Response(document(), media_type="application/json")

    return [Route(f"{settings.API_V1_STR}/asyncapi.json", asyncapi_json, methods=["GET"])]
