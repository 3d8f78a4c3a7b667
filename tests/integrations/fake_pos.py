"""A POS on loopback for the push tests: a real HTTP/1.1 server that answers as the test scripts it.

Each request takes the next step of the script (then `default`): a `Reply`, `DROP` (close
the connection without an answer) or `SLOW` (answer 200 only after `slow_s`, past the
client's timeout). Every request is recorded, including those it never answers.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections import deque
from collections.abc import AsyncIterator, Iterable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

DROP = "drop"
SLOW = "slow"
_REASONS = {200: "OK", 201: "Created", 400: "Bad Request", 408: "Request Timeout", 429: "Too Many Requests"}


@dataclass(frozen=True)
class Reply:
    """An answer: status, body and extra headers."""

    status: int = 200
    body: str = ""
    headers: dict[str, str] = field(default_factory=dict)


Step = Reply | str


@dataclass(frozen=True)
class Received:
    """One request as the POS saw it: method, path, headers (lower-case names) and JSON body."""

    method: str
    path: str
    headers: dict[str, str]
    body: dict[str, Any]


class FakePos:
    """The server; `url` once started."""

    def __init__(self, script: Iterable[Step] = (), default: Step = Reply(200), slow_s: float = 3.0) -> None:
        self.script: deque[Step] = deque(script)
        self.default = default
        self.slow_s = slow_s
        self.received: list[Received] = []
        self._server: asyncio.Server | None = None
        self._handlers: set[asyncio.Task[Any]] = set()
        self.url = ""

    def will(self, *steps: Step) -> None:
        """Append steps to the script."""
        self.script.extend(steps)

    async def start(self) -> None:
        """Listen on a free loopback port."""
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        port = self._server.sockets[0].getsockname()[1]
        self.url = f"http://127.0.0.1:{port}/orders"

    async def stop(self) -> None:
        """Stop listening and end every open exchange."""
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
        for task in list(self._handlers):
            task.cancel()
        await asyncio.gather(*self._handlers, return_exceptions=True)

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._handlers.add(task)
        try:
            await self._exchange(reader, writer)
        except (ConnectionError, asyncio.IncompleteReadError):
            pass  # the client gave up first (its timeout): nothing to answer
        finally:
            self._handlers.discard(task)
            writer.close()
            with contextlib.suppress(ConnectionError):
                await writer.wait_closed()

    async def _exchange(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head = (await reader.readuntil(b"\r\n\r\n")).decode("latin-1").split("\r\n")
        method, path, _ = head[0].split(" ", 2)
        headers = {}
        for line in head[1:]:
            if line:
                name, _, value = line.partition(":")
                headers[name.strip().lower()] = value.strip()
        raw = await reader.readexactly(int(headers.get("content-length", "0")))
        self.received.append(Received(method, path, headers, json.loads(raw) if raw else {}))
        step = self.script.popleft() if self.script else self.default
        if step == DROP:
            return
        if step == SLOW:
            await asyncio.sleep(self.slow_s)
            step = Reply(200)
        assert isinstance(step, Reply)
        body = step.body.encode()
        lines = [f"HTTP/1.1 {step.status} {_REASONS.get(step.status, 'Status')}", f"Content-Length: {len(body)}"]
        lines += ["Content-Type: text/plain", "Connection: close"]
        lines += [f"{name}: {value}" for name, value in step.headers.items()]
        writer.write(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body)
        await writer.drain()


@asynccontextmanager
async def running_pos(script: Iterable[Step] = (), default: Step = Reply(200)) -> AsyncIterator[FakePos]:
    """A started `FakePos`, stopped when the block ends."""
    pos = FakePos(script, default)
    await asyncio.wait_for(pos.start(), 5)
    try:
        yield pos
    finally:
        await asyncio.wait_for(pos.stop(), 5)
