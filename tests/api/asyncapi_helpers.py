"""What the AsyncAPI tests share: the command registry, the channel kinds, and a check of frames
against the document's message payloads.
"""

from __future__ import annotations

from typing import Any

import pytest

from channels.names import BRANCH_TOPICS, parse
from server.commands import command_registry

COMMANDS = command_registry()

PREFIX = "/api/v1"
CHANNEL_KINDS = [f"branch.{topic}" for topic in BRANCH_TOPICS] + ["branch.station", "device"]
# A station's kitchen hears the kitchen's events with its own ticket: its messages are its own.
STATION_EVENTS = "station_event."
LIMIT_S = 10


class _Frames:
    """Checks frames against the document's message payloads."""

    def __init__(self, document: dict[str, Any]) -> None:
        jsonschema = pytest.importorskip("jsonschema")
        self._document = document
        self._validator = jsonschema.Draft202012Validator
        self.checked: set[str] = set()

    def check(self, message: str, frame: dict[str, Any]) -> None:
        """Fail unless `frame` is a valid `message` of the document (timestamps and dates in their formats too)."""
        root = {"$ref": f"#/components/messages/{message}/payload", "components": self._document["components"]}
        validator = self._validator(root, format_checker=self._validator.FORMAT_CHECKER)
        errors = [error.message for error in validator.iter_errors(frame)]
        assert not errors, f"{message}: {errors} in {frame}"
        self.checked.add(message)

    def frame(self, frame: dict[str, Any], command: str | None = None) -> None:
        """Fail unless `frame` is a valid message of the document; an event also one its channel lists."""
        if frame["type"] == "reply":
            self.check(f"reply.{command}" if frame["ok"] else "reply.error", frame)
        elif frame["type"] in ("event", "snapshot"):
            parsed = parse(frame["channel"])
            assert parsed is not None, frame
            kind = parsed.kind.replace(":", ".")
            events = STATION_EVENTS if kind == "branch.station" else "event."
            message = f"{events}{frame['event']}" if frame["type"] == "event" else f"snapshot.{kind}"
            assert message in self._document["channels"][kind]["messages"], f"{message} is not listed on {kind}"
            self.check(message, frame)
        else:
            self.check(frame["type"], frame)
