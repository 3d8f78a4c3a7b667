"""The AsyncAPI 3.0.0 document of the device protocol, generated from the code, at `{API_V1_STR}/asyncapi.json`.

What it is read from:

    server.commands registry    every command: its data model, who may send it, its reply model and errors
    server.realtime.socket               `hello` and the data models of the connection's own commands
    server.payloads                    the data of replies, events, snapshots and the connection's own frames
    channels.names              the channel kinds
    server.api.asyncapi_text    the words: what channels, events and close codes are, who may subscribe

The server builds its data from the models of server/payloads/, which the document's schemas
come from. docs/protocol.md says the same in words, with examples.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Iterable
from typing import Any, get_args

from pydantic import BaseModel
from pydantic.json_schema import JsonSchemaMode, models_json_schema
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

import server
from channels import frames
from channels.names import BRANCH_TOPICS
from persistence.enums import PaymentStatus
from server.api.asyncapi_text import (
    CHANNEL_NOTES,
    CHANNEL_SUMMARIES,
    CONNECTION_COMMANDS,
    EVENT_SUMMARIES,
    audience,
    command_text,
    hello_text,
    info_text,
    server_object,
)
from server.api.openapi import ErrorBody
from server.commands import registry
from server.commands.menu import Availability
from server.commands.router import CommandRegistry, CommandSpec
from server.errors import ErrorCode
from server.payloads.cart import CartView
from server.payloads.connection import DevicePresence, RefreshReply, SubscribeReply, UnsubscribeReply, WelcomeData
from server.payloads.menu import MenuItem, MenuItemRemoved
from server.payloads.order import BoardEntry, OrderView
from server.payloads.payment import PaymentView
from server.payloads.snapshots import SNAPSHOTS
from server.realtime.socket import HELLO_TIMEOUT_S, Hello, RefreshData, SubscribeData, UnsubscribeData
from server.settings import Settings

ASYNCAPI_VERSION = "3.0.0"
SERVER = "ws"
# The channel of frames that belong to no protocol channel: handshake, commands, replies, pings.
CONNECTION = "connection"
_REF_PREFIX = "#/components/schemas/"

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
# Channel kind (as `ChannelName.kind` spells it) -> the events the server sends on it.
CHANNEL_EVENTS: dict[str, tuple[str, ...]] = {
    "branch:menu": ("menu.item_updated", "menu.item_removed", "stock.changed"),
    "branch:kitchen": (
        "order.queued",
        "order.preparing",
        "order.ready",
        "order.recalled",
        "order.completed",
        "order.cancelled",
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
        "description": hello_text(settings.API_V1_STR),
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
        description = command_text(spec)
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
            "description": info_text(settings.API_V1_STR),
        },
        "defaultContentType": "application/json",
        "servers": {SERVER: server_object(settings)},
        "channels": channels,
        "operations": operations,
        "components": {"schemas": schemas.components, "messages": messages},
    }


def _channel_kinds() -> list[str]:
    kinds = [f"branch:{topic}" for topic in BRANCH_TOPICS] + ["device"]
    for table in (CHANNEL_EVENTS, SNAPSHOTS, CHANNEL_SUMMARIES):
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
    description = "" if model else "The data schema of this event comes with the payment work; until then, any object."
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
    body = {"name": event, "title": event, "summary": EVENT_SUMMARIES[event], "payload": payload}
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
    description = f"{CHANNEL_SUMMARIES[kind]}\n\n**Who may subscribe:** {audience(topic)}"
    if kind in CHANNEL_NOTES:
        description += f"\n\n{CHANNEL_NOTES[kind]}"
    return {
        "address": address,
        "title": address,
        "summary": CHANNEL_SUMMARIES[kind],
        "description": description,
        "parameters": parameters,
        "messages": messages,
    }


def _connection_commands(schemas: _Schemas) -> list[tuple[str, str, str, dict[str, Any], dict[str, Any]]]:
    """(name, summary, description, data schema, reply data schema) of the commands the connection answers itself."""
    models: dict[str, tuple[type[BaseModel], type[BaseModel]]] = {
        "subscribe": (SubscribeData, SubscribeReply),
        "unsubscribe": (UnsubscribeData, UnsubscribeReply),
        "auth.refresh": (RefreshData, RefreshReply),
    }
    return [
        (
            name,
            *CONNECTION_COMMANDS[name],
            {"$ref": schemas.ref(data, "validation")},
            {"$ref": schemas.ref(reply, "serialization")},
        )
        for name, (data, reply) in models.items()
    ]


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
