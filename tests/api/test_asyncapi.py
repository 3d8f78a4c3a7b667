"""The AsyncAPI document of the device protocol, and docs/protocol.md: served, complete, and true to the
command registry and the socket's models.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any, get_args

import httpx
import pytest
from pydantic import BaseModel
from starlette.applications import Starlette

from channels import frames
from persistence.enums import DeviceKind, PaymentStatus
from server.api import asyncapi
from server.api.asyncapi import asyncapi_document
from server.commands.router import CommandContext, CommandRegistry, Who
from server.errors import ErrorCode
from server.realtime.connection import Hello, RefreshData, SubscribeData, UnsubscribeData
from server.settings import Settings
from tests.api.asyncapi_helpers import CHANNEL_KINDS, COMMANDS, PREFIX, STATION_EVENTS

REF = "#/components/schemas/{model}"
PROTOCOL_DOC = Path(__file__).resolve().parents[2] / "docs" / "protocol.md"


def _address(kind: str) -> str:
    """The channel address PROTOCOL.md writes for a channel kind of the document."""
    if kind == "branch.station":
        return "branch:{b}:kitchen:{station}"
    return "device:{d}" if kind == "device" else f"branch:{{b}}:{kind.removeprefix('branch.')}"


def _refs(node: object) -> Iterator[str]:
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "$ref" and isinstance(value, str):
                yield value
            else:
                yield from _refs(value)
    elif isinstance(node, list):
        for value in node:
            yield from _refs(value)


def _resolve(document: dict[str, Any], ref: str) -> Any:
    assert ref.startswith("#/"), f"{ref} is not a local reference"
    node: Any = document
    for part in ref[2:].split("/"):
        part = part.replace("~1", "/").replace("~0", "~")
        assert isinstance(node, dict) and part in node, f"{ref} does not resolve"
        node = node[part]
        while isinstance(node, dict) and set(node) == {"$ref"}:
            node = _resolve(document, node["$ref"])
    return node


def _model_schema(model: type[BaseModel], mode: str = "validation") -> dict[str, Any]:
    """What pydantic says the model's JSON schema is, with nested models pointing into components."""
    schema = model.model_json_schema(
        ref_template=REF, mode="serialization" if mode == "serialization" else "validation"
    )
    schema.pop("$defs", None)
    return schema


async def test_document_is_served_publicly_as_json() -> None:
    """`GET {API_V1_STR}/asyncapi.json` needs no token and answers the generated document."""
    settings = Settings(_env_file=None, API_V1_STR="/v9")
    app = Starlette(routes=asyncapi.routes(settings, COMMANDS))
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://testserver") as http:
        response = await http.get("/v9/asyncapi.json")
        again = await http.get("/v9/asyncapi.json")
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/json"
    assert response.json() == asyncapi_document(settings, COMMANDS)
    assert again.content == response.content
    assert response.json()["servers"]["ws"]["pathname"] == "/v9/ws"


def test_document_has_the_asyncapi_3_shape(document: dict[str, Any]) -> None:
    """Version 3.0.0 with info, the `ws` server, the six channel kinds, operations and components."""
    assert document["asyncapi"] == "3.0.0"
    assert document["info"]["title"] == "KIOSK Application device protocol"
    assert "docs/protocol.md" in document["info"]["description"]
    server = document["servers"]["ws"]
    assert (server["protocol"], server["pathname"]) == ("ws", f"{PREFIX}/ws")
    assert "{host}" in server["host"] and "host" in server["variables"]
    assert set(document["channels"]) == {"connection", *CHANNEL_KINDS}
    for kind in CHANNEL_KINDS:
        channel = document["channels"][kind]
        assert channel["address"] == _address(kind)
        assert set(re.findall(r"\{(\w+)\}", channel["address"])) == set(channel["parameters"]), kind
    for name, operation in document["operations"].items():
        assert operation["action"] == name.split(".")[0], name
    assert {"schemas", "messages"} <= set(document["components"])


def test_every_reference_resolves(document: dict[str, Any]) -> None:
    """No `$ref` points at a schema, message or channel that is not there."""
    refs = set(_refs(document))
    assert "#/components/schemas/CommandId" in refs
    for ref in refs:
        _resolve(document, ref)


def test_operations_use_only_messages_of_their_channels(document: dict[str, Any]) -> None:
    """AsyncAPI 3 requires an operation's messages (and its reply's) to be messages of its channel."""
    for name, operation in document["operations"].items():
        channel = operation["channel"]["$ref"]
        assert operation["messages"], name
        for message in operation["messages"]:
            assert message["$ref"].startswith(f"{channel}/messages/"), name
        reply = operation.get("reply")
        if reply is not None:
            for message in reply["messages"]:
                assert message["$ref"].startswith(f"{reply['channel']['$ref']}/messages/"), name


def test_every_registered_command_is_sent_with_its_models(document: dict[str, Any]) -> None:
    """Each command of the registry is a send operation whose data and reply schemas are its models' own."""
    assert COMMANDS.commands, "no command is registered"
    for name, spec in COMMANDS.commands.items():
        operation = document["operations"][f"send.{name}"]
        assert operation["action"] == "send"
        assert operation["summary"] == spec.summary
        assert spec.who.describe() in operation["description"]
        payload = _resolve(document, operation["messages"][0]["$ref"])["payload"]
        assert payload["properties"]["type"] == {"const": name}
        assert _resolve(document, payload["properties"]["data"]["$ref"]) == _model_schema(spec.model), name
        replies = [_resolve(document, message["$ref"])["payload"] for message in operation["reply"]["messages"]]
        assert [reply["properties"]["ok"] for reply in replies] == [{"const": True}, {"const": False}]
        if spec.reply is not None:
            reply_schema = _resolve(document, replies[0]["properties"]["data"]["$ref"])
            assert reply_schema == _model_schema(spec.reply, "serialization"), name


def test_connection_commands_use_the_socket_models(document: dict[str, Any]) -> None:
    """hello, subscribe, unsubscribe and auth.refresh are described by server/realtime/connection.py's own models."""
    hello = _resolve(document, "#/components/messages/hello")["payload"]["allOf"]
    assert _resolve(document, hello[0]["$ref"]) == _model_schema(Hello)
    for name, model in (("subscribe", SubscribeData), ("unsubscribe", UnsubscribeData), ("auth.refresh", RefreshData)):
        payload = _resolve(document, f"#/components/messages/command.{name}")["payload"]
        assert _resolve(document, payload["properties"]["data"]["$ref"]) == _model_schema(model), name
        assert document["operations"][f"send.{name}"]["reply"]["messages"]
    for name in ("send.hello", "send.ping", "receive.connection"):
        assert name in document["operations"]


def test_events_carry_their_data_model_or_say_it_is_coming(document: dict[str, Any]) -> None:
    """Every event the server sends has its data schema, and every event of the document is one it sends."""
    for kind in CHANNEL_KINDS:
        messages = document["channels"][kind]["messages"]
        assert f"snapshot.{kind}" in messages, kind
    expected = {
        "cart.updated": "CartView",
        "board.updated": "BoardEntry",
        "menu.item_updated": "MenuItem",
        "menu.item_removed": "MenuItemRemoved",
        "stock.changed": "Availability",
        "device.online": "DevicePresence",
        "device.offline": "DevicePresence",
    }
    for status in ("placed", "paid", "queued", "preparing", "ready", "recalled", "completed", "cancelled", "refunded"):
        expected[f"order.{status}"] = "OrderView"
    for status in PaymentStatus:
        expected[f"payment.{status.value}"] = "PaymentView"
    expected["payment.requested"] = expected["payment.cancel_requested"] = "PaymentView"
    messages = document["components"]["messages"]
    events = {key.removeprefix("event."): message for key, message in messages.items() if key.startswith("event.")}
    for event, message in events.items():
        data = message["payload"]["properties"]["data"]
        assert data == {"$ref": REF.format(model=expected[event])}, event
        assert "description" not in message, event
    assert set(expected) == set(events)
    # On a station's kitchen every event carries the station's ticket.
    station = {key: message for key, message in messages.items() if key.startswith(STATION_EVENTS)}
    assert {message["name"] for message in station.values()} == {
        *(f"order.{status}" for status in ("queued", "preparing", "ready", "recalled", "completed", "cancelled")),
        "station.bumped",
        "station.recalled",
    }
    for key, message in station.items():
        assert message["payload"]["properties"]["data"] == {"$ref": REF.format(model="StationTicket")}, key


class Paint(BaseModel):
    """Data of a test command."""

    colour: str


def test_generator_documents_any_registry_and_refuses_unknown_error_codes() -> None:
    """A newly registered command appears at once; a typo in its error codes fails loudly."""
    commands = CommandRegistry()

    @commands.command("wall.paint", Paint, who=Who(devices=frozenset({DeviceKind.KIOSK})), summary="Paint a wall")
    async def paint(ctx: CommandContext, data: Paint) -> dict[str, Any]:
        """Paint it."""
        return {}

    document = asyncapi_document(Settings(_env_file=None), commands)
    operation = document["operations"]["send.wall.paint"]
    assert "Paint it." in operation["description"] and "kiosk" in operation["description"]
    assert document["components"]["schemas"]["Paint"] == _model_schema(Paint)
    assert "send.item.set_available" not in document["operations"]

    typo = CommandRegistry()
    typo.command("wall.paint", Paint, who=Who(), summary="Paint", errors=("not_fond",))(paint)
    with pytest.raises(ValueError, match="not_fond"):
        asyncapi_document(Settings(_env_file=None), typo)


def test_protocol_doc_keeps_up_with_the_code() -> None:
    """docs/protocol.md names every registered command, every close code and every error code."""
    text = PROTOCOL_DOC.read_text()
    for name in COMMANDS.commands:
        assert f"`{name}`" in text, name
    close_codes = [value for key, value in vars(frames).items() if key.isupper() and isinstance(value, int)]
    close_codes = [code for code in close_codes if 1000 <= code < 5000]
    assert close_codes
    for code in close_codes:
        assert re.search(rf"\b{code}\b", text), code
    for code in get_args(ErrorCode):
        assert f"`{code}`" in text, code
    for kind in CHANNEL_KINDS:
        assert f"`{_address(kind)}`" in text, kind


def test_combos_are_in_the_document_as_fields_a_device_may_ignore(document: dict[str, Any]) -> None:
    """A menu item's `combo_slots`, a cart or order line's `components` and `cart.add`'s `components` are described,
    and none is required of what a device sends."""
    schemas = document["components"]["schemas"]
    assert "combo_slots" in schemas["MenuItem"]["properties"]
    for line in ("CartLineView", "OrderLineView", "ReceiptLine"):
        assert "components" in schemas[line]["properties"], line
    add = schemas["AddToCart"]
    assert "components" in add["properties"] and "components" not in add.get("required", [])
    assert set(schemas["ComponentIn"]["required"]) == {"slot_id", "item_id"}
    assert {"upcharge", "available", "option_groups"} <= set(schemas["MenuComboChoice"]["properties"])
