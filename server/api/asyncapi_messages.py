"""The objects of the AsyncAPI document: every frame as a message, the channels, and the send operations.

Each builder returns one object of the document (server/api/asyncapi.py puts them
together); the schemas they point at come from server/api/asyncapi_schemas.py, the words
from server/api/asyncapi_text.py.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel

from server.api.asyncapi_schemas import EVENT_DATA, ID_REF, Schemas
from server.api.asyncapi_text import CHANNEL_NOTES, CHANNEL_SUMMARIES, CONNECTION_COMMANDS, EVENT_SUMMARIES, audience
from server.api.openapi import ErrorBody
from server.payloads.connection import RefreshReply, SubscribeReply, UnsubscribeReply, WelcomeData
from server.payloads.snapshots import SNAPSHOTS
from server.realtime.connection import Hello, RefreshData, SubscribeData, UnsubscribeData

# The channel of frames that belong to no protocol channel: handshake, commands, replies, pings.
CONNECTION = "connection"


def frame(properties: dict[str, Any], *, strict: bool = True) -> dict[str, Any]:
    """A frame: an object with these properties, all required; server frames have nothing else."""
    schema: dict[str, Any] = {"type": "object", "properties": properties, "required": list(properties)}
    if strict:
        schema["additionalProperties"] = False
    return schema


# Messages --------------------------------------------------------------------------------------------------------


def hello_message(schemas: Schemas) -> dict[str, Any]:
    """`hello`: the client's first frame."""
    payload = {"allOf": [{"$ref": schemas.ref(Hello, "validation")}, {"properties": {"type": {"const": "hello"}}}]}
    return {
        "name": "hello",
        "title": "hello",
        "summary": "The first frame: the access token, and optionally where the client left each channel.",
        "payload": payload,
    }


def welcome_message(schemas: Schemas) -> dict[str, Any]:
    """`welcome`: the answer to a valid `hello`."""
    payload = frame({"type": {"const": "welcome"}, "data": {"$ref": schemas.ref(WelcomeData, "serialization")}})
    return {
        "name": "welcome",
        "title": "welcome",
        "summary": "The answer to a valid hello; each channel's missed events or snapshot follow.",
        "payload": payload,
    }


def ping_message() -> dict[str, Any]:
    """`ping`: the application-level keep-alive."""
    return {
        "name": "ping",
        "title": "ping",
        "summary": "Are you there?",
        "payload": frame({"type": {"const": "ping"}}, strict=False),
    }


def pong_message() -> dict[str, Any]:
    """`pong`: the answer to `ping`."""
    return {
        "name": "pong",
        "title": "pong",
        "summary": "The answer to ping.",
        "payload": frame({"type": {"const": "pong"}}),
    }


def error_reply_message(schemas: Schemas) -> dict[str, Any]:
    """A failed reply, to any command or frame."""
    payload = frame(
        {
            "type": {"const": "reply"},
            "id": {"anyOf": [ID_REF, {"type": "null"}]},
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


def command_message(name: str, summary: str, description: str, data: dict[str, Any]) -> dict[str, Any]:
    """The frame of command `name` with its `data` schema."""
    payload = frame({"type": {"const": name}, "id": ID_REF, "data": data}, strict=False)
    payload["required"] = ["type", "id"]
    return {"name": name, "title": name, "summary": summary, "description": description, "payload": payload}


def ok_reply_message(name: str, data: dict[str, Any]) -> dict[str, Any]:
    """The successful reply of command `name` with its `data` schema."""
    payload = frame({"type": {"const": "reply"}, "id": ID_REF, "ok": {"const": True}, "data": data})
    return {"name": "reply", "title": f"{name} reply", "summary": f"{name} succeeded.", "payload": payload}


def event_message(event: str, schemas: Schemas, model: type[BaseModel] | None = None) -> dict[str, Any]:
    """The frame of event `event`, with its data model (`model`: the channel's, where it differs)."""
    data = {"$ref": schemas.ref(model or EVENT_DATA[event], "serialization")}
    payload = frame(
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
    return {"name": event, "title": event, "summary": EVENT_SUMMARIES[event], "payload": payload}


def snapshot_message(kind: str, schemas: Schemas) -> dict[str, Any]:
    """The snapshot frame of a channel kind, with its data model."""
    model = SNAPSHOTS[kind]
    payload = frame(
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


def channel_object(kind: str, messages: dict[str, Any]) -> dict[str, Any]:
    """The channel object of a channel kind: its address, parameters, words and messages."""
    topic = kind.removeprefix("branch:") if kind != "device" else None
    address = f"branch:{{b}}:{topic}" if topic else "device:{d}"
    parameters = (
        {"b": {"description": "The branch id.", "examples": ["1"]}}
        if topic
        else {"d": {"description": "The device id.", "examples": ["7"]}}
    )
    if topic == "station":
        address = "branch:{b}:kitchen:{station}"
        parameters["station"] = {"description": "The station's code.", "examples": ["grill"]}
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


def connection_commands(schemas: Schemas) -> list[tuple[str, str, str, dict[str, Any], dict[str, Any]]]:
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


def on_connection(*keys: str) -> list[dict[str, str]]:
    """References to messages of the connection channel."""
    return [{"$ref": f"#/channels/{CONNECTION}/messages/{key}"} for key in keys]


def send_operation(name: str, summary: str, description: str) -> dict[str, Any]:
    """The send operation of command `name`, with its replies."""
    return {
        "action": "send",
        "channel": {"$ref": f"#/channels/{CONNECTION}"},
        "summary": summary,
        "description": description,
        "messages": on_connection(f"command.{name}"),
        "reply": {
            "channel": {"$ref": f"#/channels/{CONNECTION}"},
            "messages": on_connection(f"reply.{name}", "reply.error"),
        },
    }
