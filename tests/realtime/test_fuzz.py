"""Random frames against a live server: after a kiosk's hello, and as the hello itself (docs/protocol.md).

Each frame after hello gets exactly one reply (or a pong, for a ping) with a stable error
code, never `internal`, and the socket stays open; or the connection is closed with a
code of the "Close codes" table for the cause (a frame over the size limit, too many
bad frames or refused commands, text that is not UTF-8). Each frame as the hello gets
the 4001 close (a welcome only for a hello with a valid token). Meanwhile a kitchen
display connected throughout keeps getting its replies, and the server logs no warning.

The runs are seeded (`derandomize`) and small; hypothesis runs in a worker thread and
hands each example to the server's event loop.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, get_args

import pytest
import websockets
from hypothesis import HealthCheck, Phase, given
from hypothesis import settings as run_settings
from hypothesis import strategies as st
from websockets.asyncio.client import ClientConnection
from websockets.exceptions import ConnectionClosed

from channels.client import DeviceClient
from persistence.enums import DeviceKind
from server.commands import command_registry
from server.errors import ErrorCode
from server.realtime.connection import CONNECTION_COMMANDS
from server.services import Services
from server.settings import Settings
from tests.live import add_device, live_server
from tests.world import World

COMMANDS = command_registry()


TIMEOUT_S = 5.0
EXAMPLE_LIMIT_S = 15.0
RUN_LIMIT_S = 120.0
AFTER_HELLO_EXAMPLES = 100
AS_HELLO_EXAMPLES = 40
# The second device asks for the menu every this many examples (and once at the end).
BYSTANDER_EVERY = 10
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


# -- frames ------------------------------------------------------------------------------------


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


# -- the live connections ----------------------------------------------------------------------


class Kiosk:
    """A kiosk's raw socket that says hello, and opens again when the server closes it."""

    def __init__(self, url: str, token: str) -> None:
        self.url = url
        self.token = token
        self.ws: ClientConnection | None = None

    async def open(self) -> ClientConnection:
        """The open socket, after a new hello if the last one was closed."""
        if self.ws is None:
            ws = await websockets.connect(self.url, max_size=None, open_timeout=TIMEOUT_S, close_timeout=1)
            await ws.send(json.dumps({"type": "hello", "token": self.token}))
            welcome = json.loads(await asyncio.wait_for(ws.recv(), TIMEOUT_S))
            assert welcome["type"] == "welcome", welcome
            self.ws = ws
        return self.ws

    async def close(self) -> None:
        """Close the socket if it is open."""
        if self.ws is not None:
            await asyncio.wait_for(self.ws.close(), TIMEOUT_S)
            self.ws = None


async def send(ws: ClientConnection, frame: Fuzzed) -> None:
    """Send the frame as it is: a text frame, a binary one, or raw bytes in a text frame."""
    if frame.opcode == "binary":
        await ws.send(frame.payload, text=False)
    elif frame.opcode == "raw":
        assert isinstance(frame.payload, bytes)
        await ws.send(frame.payload, text=True)
    else:
        await ws.send(frame.payload)


async def answers(ws: ClientConnection, frame: Fuzzed) -> tuple[list[dict[str, Any]], int | None]:
    """Send the frame then a ping; the replies and pongs up to that ping's pong, or the close code."""
    answered: list[dict[str, Any]] = []
    pongs_due = 2 if frame.ping else 1
    try:
        await send(ws, frame)
        await ws.send('{"type":"ping"}')
        async with asyncio.timeout(TIMEOUT_S):
            while pongs_due:
                received = json.loads(await ws.recv())
                if received.get("type") in ("reply", "pong"):
                    answered.append(received)
                    pongs_due -= received["type"] == "pong"
    except ConnectionClosed as closed:
        return answered, closed.rcvd.code if closed.rcvd is not None else 1006
    return answered, None


def check_answers(frame: Fuzzed, answered: list[dict[str, Any]], code: int | None, log: str) -> None:
    """Exactly one reply (a pong for a ping) that a client can act on, or a close of the table for the cause."""
    context = f"\n{frame.shown()}\nanswers: {answered}\nclose: {code}\nserver log: {log or '(nothing)'}"
    replies = [item for item in answered if item["type"] == "reply"]
    if code is not None:
        assert code in expected_closes(frame) and code in documented_closes(), "an unexpected close" + context
        assert all(reply.get("error", {}).get("code") != "internal" for reply in replies), "internal" + context
        return
    if frame.ping:
        assert not replies and len(answered) == 2, "a ping gets one pong" + context
        return
    assert len(replies) == 1 and answered[-1]["type"] == "pong", "not exactly one reply" + context
    reply = replies[0]
    ids = {frame.reply_id, None} if frame.id_may_be_null else {frame.reply_id}
    assert reply["id"] in ids, "the reply's id" + context
    if frame.channel is not None and not CHANNEL.fullmatch(frame.channel):
        # No such channel: not one to subscribe to, nor to be refused as another's.
        refused = not reply["ok"] and reply["error"]["code"] in ("invalid", "rate_limited")
        assert refused, "a subscribe to a malformed channel name" + context
    if not reply["ok"]:
        assert reply["error"]["code"] in STABLE_CODES, "an unstable error code" + context


async def check_hello(url: str, frame: Fuzzed, valid_token: bool) -> tuple[str, int | None]:
    """Send the frame as the first one; ("welcome", None) or ("closed", code)."""
    async with websockets.connect(url, max_size=None, open_timeout=TIMEOUT_S, close_timeout=1) as ws:
        try:
            await send(ws, frame)
            async with asyncio.timeout(TIMEOUT_S):
                first = json.loads(await ws.recv())
        except ConnectionClosed as closed:
            return "closed", closed.rcvd.code if closed.rcvd is not None else 1006
        assert valid_token and first["type"] == "welcome", f"{frame.shown()}\nanswered before a hello: {first}"
        return "welcome", None


# -- the runs ----------------------------------------------------------------------------------


class Logged(logging.Handler):
    """The server's warnings and errors while the fuzzer runs, shown with each failure."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        """Keep the record's text (with its traceback)."""
        text = f"{record.levelname} {record.name}: {record.getMessage()}"
        if record.exc_info and record.exc_info[1] is not None:
            text += f" [{type(record.exc_info[1]).__name__}: {record.exc_info[1]}]"
        self.lines.append(text)

    def take(self) -> str:
        """The lines since the last call."""
        taken, self.lines = self.lines, []
        return "\n".join(taken)


def fuzz(
    loop: asyncio.AbstractEventLoop,
    strategy: st.SearchStrategy[Any],
    examples: int,
    check: Callable[[Any], Coroutine[Any, Any, None]],
) -> None:
    """Run `check` on `examples` seeded examples of `strategy`, each on `loop` (call from a worker thread)."""

    @run_settings(
        max_examples=examples,
        derandomize=True,
        database=None,
        deadline=None,
        # Each example is a round trip to a live server: shrinking would repeat hundreds of them.
        phases=(Phase.explicit, Phase.generate),
        suppress_health_check=list(HealthCheck),
    )
    @given(strategy)
    def run(example: Any) -> None:
        asyncio.run_coroutine_threadsafe(check(example), loop).result(EXAMPLE_LIMIT_S)

    run()


@pytest.fixture
def settings(settings: Settings) -> Settings:
    """The runtime's settings with room for many bad frames: the fuzzer means to reach the replies."""
    return settings.model_copy(update={"WS_MAX_BAD_FRAMES": 1000})


# The socket layer is the same on both runtimes: the fuzzer runs on the production one (PostgreSQL and Redis).
pytestmark = pytest.mark.parametrize("backend", ["postgresql"], indirect=True)


@pytest.fixture
def logged() -> Any:
    """The server's warnings and errors, captured."""
    handler = Logged()
    root = logging.getLogger()
    root.addHandler(handler)
    yield handler
    root.removeHandler(handler)


async def test_random_frames_after_hello_get_one_stable_reply(services: Services, world: World, logged: Logged) -> None:
    """Random frames after a kiosk's hello get one reply each, never `internal`, or a documented close."""
    _, kiosk_token = await add_device(services, world.branch_a, DeviceKind.KIOSK)
    _, kitchen_token = await add_device(services, world.branch_a, DeviceKind.KITCHEN_DISPLAY)
    examples = 0
    async with live_server(services) as live, DeviceClient(live.ws, kitchen_token) as bystander:
        kiosk = Kiosk(live.ws, kiosk_token)

        async def check(frame: Fuzzed) -> None:
            nonlocal examples
            ws = await kiosk.open()
            answered, code = await answers(ws, frame)
            if code is not None:
                kiosk.ws = None
            check_answers(frame, answered, code, logged.take())
            examples += 1
            if examples % BYSTANDER_EVERY == 0:
                await asyncio.wait_for(bystander.command("menu.get", {}), TIMEOUT_S)

        loop = asyncio.get_running_loop()
        await asyncio.wait_for(asyncio.to_thread(fuzz, loop, FRAMES, AFTER_HELLO_EXAMPLES, check), RUN_LIMIT_S)
        await asyncio.wait_for(bystander.command("menu.get", {}), TIMEOUT_S)
        await kiosk.close()
    assert examples == AFTER_HELLO_EXAMPLES
    assert not logged.take(), "the server logged warnings or errors"


HELLO_FRAMES = st.one_of(
    FRAMES,
    st.builds(
        lambda token, resume: Fuzzed(json.dumps({"type": "hello", "token": token, "resume": resume})),
        st.one_of(st.text(max_size=30), st.sampled_from(["a.b.c", "eyJhbGciOiJub25lIn0.e30.", "Bearer x"])),
        JSON,
    ),
    st.builds(lambda extra: Fuzzed(json.dumps({"type": "hello", **extra})), st.dictionaries(st.text(max_size=6), JSON)),
)


async def test_random_first_frames_are_refused_with_4001(services: Services, world: World, logged: Logged) -> None:
    """A random first frame closes the socket with 4001 (or a documented WebSocket-layer close), nothing else."""
    _, kiosk_token = await add_device(services, world.branch_a, DeviceKind.KIOSK)
    _, kitchen_token = await add_device(services, world.branch_a, DeviceKind.KITCHEN_DISPLAY)
    # Half of the hellos carry the kiosk's valid token, with random resume positions.
    with_token = st.builds(
        lambda resume: Fuzzed(
            json.dumps({"type": "hello", "token": kiosk_token, "resume": resume}), notes={"valid": True}
        ),
        st.one_of(JSON, st.dictionaries(CHANNELS, st.fixed_dictionaries({"seq": NUMBERS, "epoch": JSON}))),
    )
    examples = 0
    async with live_server(services) as live, DeviceClient(live.ws, kitchen_token) as bystander:

        async def check(frame: Fuzzed) -> None:
            nonlocal examples
            outcome, code = await check_hello(live.ws, frame, bool(frame.notes.get("valid")))
            context = f"\n{frame.shown()}\nclose: {code}\nserver log: {logged.take() or '(nothing)'}"
            if outcome == "closed":
                allowed = {4001} | (expected_closes(frame) & {NOT_UTF8_CLOSE, 1009})
                assert code in allowed and code in documented_closes(), "a bad hello's close" + context
            examples += 1
            if examples % BYSTANDER_EVERY == 0:
                await asyncio.wait_for(bystander.command("menu.get", {}), TIMEOUT_S)

        loop = asyncio.get_running_loop()
        strategy = st.one_of(HELLO_FRAMES, with_token)
        await asyncio.wait_for(asyncio.to_thread(fuzz, loop, strategy, AS_HELLO_EXAMPLES, check), RUN_LIMIT_S)
        await asyncio.wait_for(bystander.command("menu.get", {}), TIMEOUT_S)
    assert examples == AS_HELLO_EXAMPLES
    assert not logged.take(), "the server logged warnings or errors"
