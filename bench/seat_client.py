"""One socket of the chain across its connections: where each of its channels stands, and the gaps its resumes found.

A `Follower` keeps, per channel, the last seq and epoch it applied (from snapshots and
events), and says them when it connects again: devices in the `hello`'s `resume`, staff
in `subscribe` with `since` and `epoch` (users are subscribed to nothing on hello). A gap
is a channel whose resume the server could not honour (`resumed: false`, so a snapshot
instead of the missed events), an event that skips a seq, or an event of another epoch
with no snapshot before it.

`SeatClient` is the light WireClient that walks every frame (so it also answers the
server's pings) and parses the text ones; the chain's sockets see few events each, so
parsing them all costs little.
"""

from __future__ import annotations

import asyncio
import json
import random
import time
from typing import Any
from urllib.parse import urlsplit

import orjson

from bench.chain import STAFF, Seat
from bench.wire_client import WireClient
from channels import names
from channels.reconnecting import backoff_s

# The reconnecting client's backoff (channels/reconnecting.py) from a shorter first ceiling.
BACKOFF_BASE_S = 0.1
WELCOME_LIMIT_S = 30.0


def staff_channels(branch_id: int) -> list[str]:
    """What a member of staff watches: the branch's orders and its devices."""
    return [names.branch_orders(branch_id), names.branch_devices(branch_id)]


class Follower:
    """One seat's channels across connections: last seq and epoch of each, gaps seen, when it was last welcomed.

    `arrivals`, when given, gets (branch id, stock, monotonic time) for every `stock.changed` event.
    """

    def __init__(self, seat: Seat, arrivals: list[tuple[int, int, float]] | None = None) -> None:
        self.seat = seat
        self.arrivals = arrivals
        self.positions: dict[str, tuple[int, str]] = {}
        self.gaps = 0
        self.resumed = 0
        self.attempts = 0
        self.welcomed_at = 0.0
        self.client: SeatClient | None = None
        self._asked: set[str] = set()

    def hello(self) -> bytes:
        """The `hello`: the token, and for a device every channel's position as `resume`."""
        frame: dict[str, Any] = {"type": "hello", "token": self.seat.token}
        if self.seat.kind != STAFF and self.positions:
            frame["resume"] = {
                channel: {"seq": seq, "epoch": epoch} for channel, (seq, epoch) in self.positions.items()
            }
        self._asked = set(self.positions)
        return json.dumps(frame).encode()

    def subscribes(self) -> list[bytes]:
        """Staff's `subscribe` frames (with `since` and `epoch` where it has a position); none for devices."""
        if self.seat.kind != STAFF:
            return []
        frames = []
        for channel in staff_channels(self.seat.branch_id):
            data: dict[str, Any] = {"channel": channel}
            if channel in self.positions:
                data["since"], data["epoch"] = self.positions[channel]
            frames.append(json.dumps({"type": "subscribe", "id": channel, "data": data}).encode())
        return frames

    def status(self, channel: str, status: dict[str, Any]) -> None:
        """A channel's status from `welcome` or a `subscribe` reply: a resume asked for and not honoured is a gap."""
        if status.get("resumed"):
            self.resumed += 1
        elif channel in self._asked:
            self.gaps += 1

    def frame(self, frame: dict[str, Any]) -> None:
        """A snapshot or event: move the channel's position; count a skipped seq or a changed epoch."""
        channel, seq, epoch = frame["channel"], frame["seq"], frame["epoch"]
        if frame["type"] == "snapshot":
            self.positions[channel] = (seq, epoch)
            return
        held = self.positions.get(channel)
        if held is not None:
            if held[1] == epoch and seq <= held[0]:
                return  # already applied (a repeat after a snapshot)
            if held[1] != epoch or seq != held[0] + 1:
                self.gaps += 1
        self.positions[channel] = (seq, epoch)
        if self.arrivals is not None and frame["event"] == "stock.changed":
            self.arrivals.append((self.seat.branch_id, frame["data"]["stock"], time.monotonic()))


class SeatClient(WireClient):
    """A connection of one follower: `ready` once welcomed (and, for staff, once its subscriptions are answered)."""

    def __init__(self, host: str, path: str, follower: Follower) -> None:
        super().__init__(host, path, follower.hello(), None)
        self.walks = True
        self._follower = follower
        self._pending: set[str] = set()

    def _text(self, buffer: bytearray, start: int, end: int) -> None:
        frame = orjson.loads(memoryview(buffer)[start:end])
        kind = frame.get("type")
        follower = self._follower
        if kind in ("event", "snapshot"):
            follower.frame(frame)
        elif kind == "welcome":
            for channel, status in frame["data"]["channels"].items():
                follower.status(channel, status)
            subscribes = follower.subscribes()
            self._pending = {json.loads(sub)["id"] for sub in subscribes}
            for subscribe in subscribes:
                self._send(subscribe)
            if not self._pending:
                self._welcomed()
        elif kind == "reply":
            if not frame["ok"]:
                self._fail(ConnectionError(f"refused: {frame['error']}"))
                return
            follower.status(frame["data"]["channel"], frame["data"])
            self._pending.discard(frame["id"])
            if not self._pending:
                self._welcomed()

    def _welcomed(self) -> None:
        if not self.ready.done():
            self._follower.welcomed_at = time.monotonic()
            self.ready.set_result(None)


async def connect(url: str, follower: Follower) -> SeatClient:
    """One connection of `follower` to `url`, welcomed; errors raised."""
    parts = urlsplit(url)
    host, port = parts.hostname or "127.0.0.1", parts.port or 80
    follower.attempts += 1
    _, client = await asyncio.get_running_loop().create_connection(
        lambda: SeatClient(f"{host}:{port}", parts.path, follower), host, port
    )
    try:
        await asyncio.wait_for(client.ready, WELCOME_LIMIT_S)
    except BaseException:
        if client.transport is not None:
            client.transport.abort()
        raise
    follower.client = client
    return client


async def rejoin(url: str, follower: Follower, rng: random.Random) -> None:
    """Connect again after full-jitter exponential backoff, as many times as it takes."""
    attempt = 0
    while True:
        await asyncio.sleep(backoff_s(attempt, rng, BACKOFF_BASE_S))
        try:
            await connect(url, follower)
            return
        except (OSError, TimeoutError):  # ConnectionError is an OSError
            attempt += 1


def cut(followers: list[Follower]) -> None:
    """Drop every follower's connection at once, without a close frame (a reset)."""
    for follower in followers:
        client = follower.client
        if client is not None and client.transport is not None:
            client.transport.abort()
        follower.client = None
