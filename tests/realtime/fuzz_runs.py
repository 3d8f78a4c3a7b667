"""How the socket fuzzer runs: a kiosk's raw socket that opens again when closed, each frame's answers
checked against the protocol, the server's warnings captured, and seeded hypothesis runs on the server's loop.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Callable, Coroutine
from typing import Any

import websockets
from hypothesis import HealthCheck, Phase, given
from hypothesis import settings as run_settings
from hypothesis import strategies as st
from websockets.asyncio.client import ClientConnection
from websockets.exceptions import ConnectionClosed

from tests.realtime.fuzz_frames import CHANNEL, STABLE_CODES, Fuzzed, documented_closes, expected_closes

TIMEOUT_S = 5.0
EXAMPLE_LIMIT_S = 15.0


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
