"""The frames of the device protocol (PROTOCOL.md): parsing what clients send, encoding what they get.

Every frame is one JSON object in one text WebSocket message.
"""

from __future__ import annotations

import json
import random
import re
from dataclasses import dataclass
from typing import Any

import orjson

# Close codes (PROTOCOL.md "Close codes").
GOING_AWAY = 1001
TOO_BIG = 1009
PROTOCOL_ABUSE = 4000
UNAUTHORIZED = 4001
FORBIDDEN = 4003
TOO_SLOW = 4008
RATE_LIMITED = 4029
TRY_AGAIN_LATER = 1013
# How a 1001 or 1013 close says when to come back: its reason ends with `retry_after=<seconds>`.
_RETRY_AFTER = re.compile(r"retry_after=(\d+(?:\.\d+)?)$")

MAX_ID_LENGTH = 64
# How deep objects and arrays may nest in a frame. No command needs more than a few levels; far deeper JSON
# would exhaust Python's recursion in decoding, validation or encoding, wherever that happens to come.
MAX_DEPTH = 32
PONG = '{"type":"pong"}'


def with_retry_hint(reason: str, spread_s: float) -> str:
    """`reason` with a retry hint at random within `spread_s` seconds, so that the devices a close sends away come
    back spread over that time rather than all at once."""
    return f"{reason}; retry_after={random.uniform(0, spread_s):.1f}"


def retry_after(reason: str) -> float | None:
    """The seconds a close reason asks the client to wait before it reconnects, None when it asks nothing."""
    match = _RETRY_AFTER.search(reason)
    return None if match is None else float(match[1])


class BadFrame(Exception):
    """A frame that is not a valid command; answered with an `invalid` reply, the connection stays."""

    def __init__(self, message: str, frame_id: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.frame_id = frame_id


@dataclass(frozen=True, slots=True)
class ClientFrame:
    """A parsed client frame: `type`, the client's `id` (None for hello and ping) and `data`."""

    type: str
    id: str | None
    data: dict[str, Any]
    raw: dict[str, Any]


def parse_client_frame(text: str | bytes) -> ClientFrame:
    """Parse one client frame; `BadFrame` for anything that is not a JSON object with a string `type`.

    Commands need an `id` of 1-64 characters and an object (or absent) `data`; `hello`
    and `ping` need no id.
    """
    too_deep = f"the frame nests deeper than {MAX_DEPTH} levels"
    try:
        raw = json.loads(text)
    except (ValueError, UnicodeDecodeError) as exc:
        raise BadFrame("the frame is not valid JSON") from exc
    except RecursionError as exc:
        raise BadFrame(too_deep) from exc
    if not isinstance(raw, dict):
        raise BadFrame("a frame must be a JSON object")
    frame_id = raw.get("id")
    readable_id = frame_id if isinstance(frame_id, str) and 0 < len(frame_id) <= MAX_ID_LENGTH else None
    if nests_too_deep(text, raw):
        raise BadFrame(too_deep, readable_id)
    kind = raw.get("type")
    if not isinstance(kind, str) or not kind:
        raise BadFrame("a frame needs a string `type`", readable_id)
    if kind in ("hello", "ping"):
        return ClientFrame(kind, readable_id, raw, raw)
    if readable_id is None:
        raise BadFrame(f"a command needs an `id` of 1-{MAX_ID_LENGTH} characters")
    data = raw.get("data", {})
    if not isinstance(data, dict):
        raise BadFrame("`data` must be a JSON object", readable_id)
    return ClientFrame(kind, readable_id, data, raw)


def nests_too_deep(text: str | bytes, value: Any) -> bool:
    """Whether `value`, decoded from the JSON `text`, nests objects and arrays deeper than `MAX_DEPTH`."""
    return _may_nest_deeper(text) and _depth(value) > MAX_DEPTH


def _may_nest_deeper(text: str | bytes) -> bool:
    # Counting brackets is cheap, and an ordinary command has too few to need the walk below.
    if isinstance(text, bytes):
        return text.count(b"{") + text.count(b"[") > MAX_DEPTH
    return text.count("{") + text.count("[") > MAX_DEPTH


def _depth(value: Any) -> int:
    """How deep objects and arrays nest in a decoded JSON value (a scalar is 0), without recursing."""
    deepest = 0
    stack = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, dict):
            children: Any = item.values()
        elif isinstance(item, list):
            children = item
        else:
            continue
        deepest = max(deepest, depth)
        stack.extend((child, depth + 1) for child in children)
    return deepest


# orjson writes what json.dumps(separators=(",", ":"), default=str) wrote (UTF-8 left as is, which JSON allows):
# datetimes and dataclasses still go through str(), keys that are not strings become strings. Several times faster,
# and every frame and event passes here.
_dump_options = orjson.OPT_NON_STR_KEYS | orjson.OPT_PASSTHROUGH_DATETIME | orjson.OPT_PASSTHROUGH_DATACLASS


def _dump(value: Any) -> str:
    return orjson.dumps(value, default=str, option=_dump_options).decode()


def reply_ok(frame_id: str | None, data: Any) -> str:
    """A success reply to command `frame_id`."""
    return _dump({"type": "reply", "id": frame_id, "ok": True, "data": data})


def reply_error(frame_id: str | None, code: str, message: str, details: dict[str, Any] | None = None) -> str:
    """A failure reply to command `frame_id` (None when the id could not be read)."""
    error = {"code": code, "message": message, "details": details or {}}
    return _dump({"type": "reply", "id": frame_id, "ok": False, "error": error})


def snapshot(channel: str, seq: int, epoch: str, data: Any) -> str:
    """The state of `channel` as of `seq`: events after it follow."""
    return _dump({"type": "snapshot", "channel": channel, "seq": seq, "epoch": epoch, "data": data})


def welcome(data: dict[str, Any]) -> str:
    """The answer to a valid `hello`."""
    return _dump({"type": "welcome", "data": data})


def encode_data(data: Any) -> str:
    """The JSON text of an event's data, as the broker puts it into the frame."""
    return _dump(data)
