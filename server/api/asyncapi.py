"""The AsyncAPI 3.0.0 document of the device protocol, generated from the code, at `{API_V1_STR}/asyncapi.json`.

What it is read from:

    the command registry          every command: its data model, who may send it, its reply model and errors
    server.api.asyncapi_schemas   each channel's events, the data model of each event, the component schemas
    server.api.asyncapi_messages  the frames as messages, the channels and the send operations
    server.api.asyncapi_text      the words: what channels, events and close codes are, who may subscribe
    channels.names                the channel kinds

The server's data is built from the models of server/payloads/, which the document's
schemas come from. docs/protocol.md says the same in words, with examples.
"""

from __future__ import annotations

import functools
import json
from typing import Any, get_args

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

import server
from channels.names import BRANCH_TOPICS
from server.api.asyncapi_messages import (
    CONNECTION,
    channel_object,
    command_message,
    connection_commands,
    error_reply_message,
    event_message,
    hello_message,
    ok_reply_message,
    on_connection,
    ping_message,
    pong_message,
    send_operation,
    snapshot_message,
    welcome_message,
)
from server.api.asyncapi_schemas import CHANNEL_EVENT_DATA, CHANNEL_EVENTS, Schemas
from server.api.asyncapi_text import CHANNEL_SUMMARIES, command_text, hello_text, info_text, server_object
from server.commands.router import CommandRegistry
from server.errors import ErrorCode
from server.payloads.snapshots import SNAPSHOTS
from server.realtime.limits import SocketLimits
from server.settings import Settings

ASYNCAPI_VERSION = "3.0.0"
SERVER = "ws"


def asyncapi_document(settings: Settings, commands: CommandRegistry) -> dict[str, Any]:
    """The AsyncAPI 3.0.0 document of the protocol, with every command of `commands`."""
    for spec in commands.commands.values():
        unknown = set(spec.errors) - set(get_args(ErrorCode))
        if unknown:
            raise ValueError(f"command {spec.name} declares unknown error codes {sorted(unknown)}")
    schemas = Schemas(commands.commands.values())
    limits = SocketLimits.from_settings(settings)
    messages: dict[str, Any] = {}
    channels: dict[str, Any] = {}
    operations: dict[str, Any] = {}
    connection: dict[str, Any] = {}

    def message(key: str, body: dict[str, Any]) -> dict[str, str]:
        messages[key] = {"contentType": "application/json", **body}
        return {"$ref": f"#/components/messages/{key}"}

    # The handshake, pings and errors.
    connection["hello"] = message("hello", hello_message(schemas))
    connection["welcome"] = message("welcome", welcome_message(schemas))
    connection["ping"] = message("ping", ping_message())
    connection["pong"] = message("pong", pong_message())
    connection["reply.error"] = message("reply.error", error_reply_message(schemas))
    operations["send.hello"] = {
        "action": "send",
        "channel": {"$ref": f"#/channels/{CONNECTION}"},
        "summary": f"Authenticate: the first frame, within {limits.hello_timeout_s:g} s of the upgrade",
        "description": hello_text(settings.API_V1_STR, limits),
        "messages": on_connection("hello"),
        "reply": {"channel": {"$ref": f"#/channels/{CONNECTION}"}, "messages": on_connection("welcome")},
    }
    operations["send.ping"] = {
        "action": "send",
        "channel": {"$ref": f"#/channels/{CONNECTION}"},
        "summary": "Application-level keep-alive, for clients that cannot see WebSocket pings",
        "description": "Answered with `pong`; needs no `id`, takes no command token and is never rate limited.",
        "messages": on_connection("ping"),
        "reply": {"channel": {"$ref": f"#/channels/{CONNECTION}"}, "messages": on_connection("pong")},
    }

    # Commands: the connection's own, then every registered one.
    for name, summary, description, data, reply in connection_commands(schemas):
        connection[f"command.{name}"] = message(f"command.{name}", command_message(name, summary, description, data))
        connection[f"reply.{name}"] = message(f"reply.{name}", ok_reply_message(name, reply))
        operations[f"send.{name}"] = send_operation(name, summary, description)
    for spec in commands.commands.values():
        description = command_text(spec)
        data = {"$ref": schemas.ref(spec.model, "validation")}
        reply = {"$ref": schemas.ref(spec.reply, "serialization")} if spec.reply else {"type": "object"}
        connection[f"command.{spec.name}"] = message(
            f"command.{spec.name}", command_message(spec.name, spec.summary, description, data)
        )
        connection[f"reply.{spec.name}"] = message(f"reply.{spec.name}", ok_reply_message(spec.name, reply))
        operations[f"send.{spec.name}"] = send_operation(spec.name, spec.summary, description)

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
        "messages": on_connection("welcome", "reply.error", "pong"),
    }

    # The protocol channels: their events and snapshot.
    for kind in _channel_kinds():
        channel_id = kind.replace(":", ".")
        channel_messages = {}
        model = CHANNEL_EVENT_DATA.get(kind)
        for event in CHANNEL_EVENTS[kind]:
            key = f"event.{event}" if model is None else f"{kind.removeprefix('branch:')}_event.{event}"
            if key not in messages:
                message(key, event_message(event, schemas, model))
            channel_messages[key] = {"$ref": f"#/components/messages/{key}"}
        snapshot_key = f"snapshot.{channel_id}"
        channel_messages[snapshot_key] = message(snapshot_key, snapshot_message(kind, schemas))
        channels[channel_id] = channel_object(kind, channel_messages)
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
            "description": info_text(settings.API_V1_STR, limits),
        },
        "defaultContentType": "application/json",
        "servers": {SERVER: server_object(settings, limits)},
        "channels": channels,
        "operations": operations,
        "components": {"schemas": schemas.components, "messages": messages},
    }


def _channel_kinds() -> list[str]:
    kinds = [f"branch:{topic}" for topic in BRANCH_TOPICS] + ["branch:station", "device"]
    for table in (CHANNEL_EVENTS, SNAPSHOTS, CHANNEL_SUMMARIES):
        if set(table) != set(kinds):
            raise ValueError(f"channel kinds {sorted(kinds)} and the document's tables {sorted(table)} disagree")
    return kinds


# Serving ---------------------------------------------------------------------------------------------------------


def routes(settings: Settings, commands: CommandRegistry) -> list[BaseRoute]:
    """`{API_V1_STR}/asyncapi.json`: public, built on first request and kept for the app's life."""

    @functools.cache
    def document() -> bytes:
        # Built on first request rather than with the app: many apps (tests) never serve it.
        return json.dumps(asyncapi_document(settings, commands), separators=(",", ":")).encode()

    async def asyncapi_json(request: Request) -> Response:
        return Response(document(), media_type="application/json")

    return [Route(f"{settings.API_V1_STR}/asyncapi.json", asyncapi_json, methods=["GET"])]
