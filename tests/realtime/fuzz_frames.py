"""The frames the socket fuzzer sends: hypothesis strategies for commands, subscribes, nested and odd
JSON, binary and non-UTF-8 text, and the close codes each frame may earn (docs/protocol.md "Close codes").
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, get_args

from hypothesis import strategies as st

from server.commands import command_registry
from server.errors import ErrorCode
from server.realtime.connection import CONNECTION_COMMANDS

COMMANDS = command_registry()


MAX_MESSAGE_BYTES = 65536
PROTOCOL_DOC = Path(__file__).resolve().parents[2] / "docs" / "protocol.md"
STABLE_CODES = set(get_args(ErrorCode)) - {"internal"}
CHANNEL = re.compile(r"branch:[1-9][0-9]{0,9}:(menu|kitchen|board|orders|devices)|device:[1-9][0-9]{0,9}")


# 1007: a text frame that is not UTF-8, refused by the WebSocket layer itself as RFC 6455 requires.
NOT_UTF8_CLOSE = 1007


def documented_closes() -> set[int]:
    """The close codes of the "Close codes" table in docs/protocol.md."""
    text = PROTOCOL_DOC.read_text()
    section = text.split("## Close codes", 1)[1].split("\n## ", 1)[0]
    return {int(code) for code in re.findall(r"^\| (\d{4}) \|", section, re.MULTILINE)}


@dataclass(frozen=True)
class Fuzzed:
    """A frame to send and what its answer must look like."""

    payload: str | bytes
    # text: a text frame; binary: a binary frame; raw: bytes sent as a text frame (not necessarily UTF-8)
    opcode: Literal["text", "binary", "raw"] = "text"
    reply_id: str | None = None  # the id the reply must carry
    # A frame too deep to decode at all has no readable id: its reply may carry null instead.
    id_may_be_null: bool = False
    ping: bool = False  # a `{"type":"ping"}`: answered with a pong, not a reply
    channel: str | None = None  # a `subscribe` to this channel: an ok reply only for a well-formed name
    notes: dict[str, Any] = field(default_factory=dict)

    def size(self) -> int:
        """The frame's payload in bytes."""
        return len(self.payload.encode("utf-8", "surrogatepass") if isinstance(self.payload, str) else self.payload)

    def shown(self, limit: int = 300) -> str:
        """The frame, shortened for a failure message."""
        text = repr(self.payload)
        return f"{self.opcode} frame of {self.size()} bytes: {text[:limit]}{'...' if len(text) > limit else ''}"


def readable_id(value: object) -> str | None:
    """The id a reply carries for a frame's `id`: itself when it is a 1-64 character string, else null."""
    return value if isinstance(value, str) and 0 < len(value) <= 64 else None


NUMBERS = st.one_of(
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from([0, -1, 2**31, 2**63, 10**30, -(10**30), 1e308, -0.0, 5e-324]),
)
SCALARS = st.one_of(st.none(), st.booleans(), NUMBERS, st.text(max_size=12))
JSON = st.recursive(
    SCALARS,
    lambda children: st.one_of(
        st.lists(children, max_size=4), st.dictionaries(st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=10,
)
KNOWN_TYPES = st.sampled_from(sorted(COMMANDS.commands) + list(CONNECTION_COMMANDS) + ["hello", "ping"])
ODD_TYPES = st.one_of(st.text(max_size=12), st.sampled_from(["", "cart.create\n", "CART.CREATE", "ping ", "\x00"]))
BAD_IDS = st.one_of(
    st.sampled_from(["", "x" * 65, "é" * 65]), st.integers(), st.none(), st.lists(st.integers(), max_size=2)
)
WELL_FORMED = st.sampled_from(["branch:1:menu", "branch:1:board", "branch:1:devices", "branch:2:kitchen", "device:1"])
CHANNEL_SUFFIXES = st.sampled_from(["\n", " ", "\x00", ":", "\r\n", "/x"])


@st.composite
def channel_names(draw: st.DrawFn) -> str:
    """A channel name: well-formed, well-formed with something after it, or any text."""
    choice = draw(st.integers(0, 9))
    if choice < 4:
        return draw(WELL_FORMED)
    if choice < 8:
        return draw(WELL_FORMED) + draw(CHANNEL_SUFFIXES)
    return draw(st.one_of(st.text(max_size=20), st.sampled_from(["branch:01:menu", "branch:1:menus", "device:0"])))


CHANNELS = channel_names()


@st.composite
def commands(draw: st.DrawFn) -> Fuzzed:
    """A JSON object of a command's shape with random type, id and data."""
    frame: dict[str, Any] = {}
    kind = draw(KNOWN_TYPES if draw(st.integers(0, 9)) < 7 else ODD_TYPES)
    frame["type"] = kind if draw(st.integers(0, 9)) else draw(JSON)
    # Mostly a valid id, so that most frames get past parsing to validation and the handlers.
    if draw(st.integers(0, 9)):
        frame["id"] = draw(st.text(min_size=1, max_size=64)) if draw(st.integers(0, 4)) else draw(BAD_IDS)
    channel = None
    if kind in ("subscribe", "unsubscribe") and draw(st.booleans()):
        channel = draw(CHANNELS)
        data: Any = {"channel": channel}
        if draw(st.booleans()):
            data["since"] = draw(NUMBERS)
            data["epoch"] = draw(st.one_of(st.text(max_size=70), JSON))
    else:
        fields = st.sampled_from(["item_id", "cart_id", "order_id", "payment_id", "quantity", "token", "options"])
        choice = draw(st.integers(0, 9))
        data = draw(st.dictionaries(fields, JSON)) if choice < 5 else {} if choice < 7 else draw(JSON)
    if draw(st.integers(0, 9)):
        frame["data"] = data
    text = json.dumps(frame)  # floats: NaN and Infinity are written as such, which JSON does not allow
    ping = frame.get("type") == "ping"
    subscribe = channel if frame.get("type") == "subscribe" and isinstance(frame.get("data"), dict) else None
    return Fuzzed(text, reply_id=readable_id(frame.get("id")), ping=ping, channel=subscribe)


@st.composite
def subscribes(draw: st.DrawFn) -> Fuzzed:
    """A `subscribe` with a valid id to a channel name, well-formed or nearly so."""
    channel = draw(CHANNELS)
    frame_id = draw(st.text(min_size=1, max_size=64))
    frame = {"type": "subscribe", "id": frame_id, "data": {"channel": channel}}
    return Fuzzed(json.dumps(frame), reply_id=frame_id, channel=channel)


@st.composite
def nested(draw: st.DrawFn) -> Fuzzed:
    """A command whose data nests arrays or objects deeply, under the size limit."""
    depth = draw(st.one_of(st.integers(1, 100), st.integers(100, 5000), st.just(3000)))
    opener, closer = draw(st.sampled_from([("[", "]"), ('{"a":', "}")]))
    inner = opener * depth + "1" + closer * depth
    return Fuzzed(
        '{"type":"cart.add","id":"deep","data":{"x":' + inner + "}}",
        reply_id="deep",
        id_may_be_null=True,
        notes={"depth": depth},
    )


@st.composite
def numbers(draw: st.DrawFn) -> Fuzzed:
    """A command holding a number literal no JSON library reads as a machine number."""
    digits = draw(st.integers(1, 6000))
    literal = draw(st.sampled_from(["1" * digits, f"1e{digits}", f"-0.{'0' * digits}1", "NaN", "-Infinity"]))
    return Fuzzed('{"type":"cart.add","id":"num","data":{"qty":' + literal + "}}", reply_id="num")


@st.composite
def sized(draw: st.DrawFn) -> Fuzzed:
    """A command padded to a size around the frame limit."""
    size = draw(st.integers(MAX_MESSAGE_BYTES - 64, MAX_MESSAGE_BYTES + 64))
    head = '{"type":"cart.create","id":"big","data":{"pad":"'
    pad = "x" * max(0, size - len(head) - 3)
    return Fuzzed(head + pad + '"}}', reply_id="big")


TEXTS = st.one_of(
    st.text(max_size=40).map(Fuzzed),
    JSON.map(lambda value: Fuzzed(json.dumps(value))),
    st.sampled_from(["", " ", "{", "}", "[]", "null", '"ping"', '{"type":"ping"', "\ufeff{}"]).map(Fuzzed),
)
BINARY = st.one_of(
    st.binary(max_size=40).map(lambda raw: Fuzzed(raw, "binary")),
    st.just(Fuzzed(b'{"type":"ping"}', "binary")),
    st.just(Fuzzed(b'{"type":"cart.create","id":"b1","data":{}}', "binary")),
)
NOT_UTF8 = st.one_of(
    st.sampled_from([b"\xff", b"\xc3\x28", b'{"type":"\xed\xa0\x80"}', b"\xf4\x90\x80\x80", b"\x80abc"]),
    st.binary(min_size=1, max_size=20).filter(lambda raw: not _utf8(raw)),
).map(lambda raw: Fuzzed(raw, "raw"))
OTHERS = st.one_of(TEXTS, BINARY, NOT_UTF8, nested(), numbers(), sized())


@st.composite
def any_frame(draw: st.DrawFn) -> Fuzzed:
    """Mostly command-shaped objects (they reach validation and the handlers), some subscribes, then the rest."""
    choice = draw(st.integers(0, 9))
    return draw(commands() if choice < 6 else subscribes() if choice < 7 else OTHERS)


FRAMES = any_frame()


def _utf8(raw: bytes) -> bool:
    try:
        raw.decode()
    except UnicodeDecodeError:
        return False
    return True


def expected_closes(frame: Fuzzed) -> set[int]:
    """The closes a frame may bring after hello (the table's codes for its cause) besides a reply."""
    allowed = {4000, 4029}  # too many bad frames, or refused commands, within the limits' window
    if frame.size() > MAX_MESSAGE_BYTES:
        allowed.add(1009)
    if frame.opcode == "raw":
        allowed.add(NOT_UTF8_CLOSE)
    return allowed
