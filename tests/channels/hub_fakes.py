"""Stand-ins for the hub's tests: a broker that delivers nothing by itself, transports that keep what they
are sent, snapshots on demand, and subscribers that join in one step.

Each test hands the hub exactly the deliveries it wants, in the order it wants, so lost, late and
out-of-epoch events are staged directly.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

from redis.exceptions import ConnectionError as RedisConnectionError

from channels import names
from channels.brokers.base import Broker, BrokerListener, Delivery, event_frame, event_tail
from channels.hub import Hub, Subscriber
from channels.names import ChannelName
from tests.channels.hub_helpers import frame_text, join

LIMIT_S = 10
KITCHEN = names.branch_kitchen(1)
MENU = names.branch_menu(1)
# The hub fixture's replay limit: longer gaps come as a snapshot.
MAX_REPLAY = 8
TS = "2026-11-26T12:00:00.000Z"


class FakeBroker(Broker):
    """One epoch for every channel, events written by the test, and switches for the failures a hub must survive."""

    def __init__(self) -> None:
        super().__init__(history_size=100, history_ttl_s=60)
        self.epoch = "epoch-1"
        self.events: dict[str, list[Delivery]] = {}
        self.subscribed: set[str] = set()
        self.subscribes = 0
        self.history_asked = 0
        # Channels whose history has lost everything but the last event (trimmed, or expired).
        self.trimmed: set[str] = set()
        self.refuse_subscribe = False
        self.failing = False
        # While set and not yet released, history waits: a repair or join caught halfway.
        self.history_gate: asyncio.Event | None = None

    def add(self, channel: str, event: str = "order.queued") -> Delivery:
        """Publish one event now (without delivering it anywhere) and return its delivery."""
        kept = self.events.setdefault(channel, [])
        seq = len(kept) + 1
        tail = event_tail(event, json.dumps({"n": seq}), TS)
        delivery = Delivery(channel, seq, self.epoch, event_frame(channel, seq, self.epoch, tail))
        kept.append(delivery)
        return delivery

    def restart(self) -> None:
        """Lose every channel's history and counter, as a Redis restart does: a new epoch begins."""
        self.epoch = "epoch-2"
        self.events.clear()

    async def start(self, listener: BrokerListener) -> None:
        """Nothing to connect."""

    async def close(self) -> None:
        """Nothing to release."""

    async def publish(self, channel: str, event_id: str, event: str, data_json: str, ts: str) -> Delivery:
        """Not used by the hub."""
        raise AssertionError("the hub never publishes")

    async def position(self, channel: str) -> tuple[int, str]:
        """The channel's last seq and the epoch."""
        if self.failing:
            raise RedisConnectionError("broker down")
        return len(self.events.get(channel, [])), self.epoch

    async def history(self, channel: str, after_seq: int, epoch: str) -> list[Delivery] | None:
        """The events after `after_seq`, None for another epoch or a trimmed gap."""
        self.history_asked += 1
        if self.history_gate is not None:
            await self.history_gate.wait()
        if self.failing:
            raise RedisConnectionError("broker down")
        kept = self.events.get(channel, [])
        if epoch != self.epoch or after_seq > len(kept):
            return None
        if channel in self.trimmed and after_seq < len(kept) - 1:
            return None
        return kept[after_seq:]

    async def pinned(self, channel: str, key: str) -> tuple[str | None, tuple[int, str]]:
        """Not used by the hub."""
        raise AssertionError("the hub pins nothing")

    async def pin(self, channel: str, at: tuple[int, str], key: str, value: str, ttl_s: int) -> None:
        """Not used by the hub."""
        raise AssertionError("the hub pins nothing")

    async def subscribe(self, channel: str) -> None:
        """Count the call; refuse it when told to."""
        self.subscribes += 1
        if self.refuse_subscribe:
            raise RedisConnectionError("no confirmation")
        self.subscribed.add(channel)

    async def unsubscribe(self, channel: str) -> None:
        """Forget the channel."""
        self.subscribed.discard(channel)

    async def send_control(self, message: dict[str, Any]) -> None:
        """Not used by the hub."""

    async def ping(self) -> None:
        """Always answers."""


class Transport:
    """A connection as the hub sees it: keeps every frame it is sent and how it was closed."""

    def __init__(self) -> None:
        self.wires: list[bytes] = []
        self.frames: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        self.closes: list[tuple[int, str]] = []
        self.keeping_up = True

    def send(self, frame: bytes) -> bool:
        """Keep the frame, or say the client is too far behind."""
        if not self.keeping_up:
            return False
        self.wires.append(frame)
        self.frames.put_nowait(json.loads(frame_text(frame)))
        return True

    def close(self, code: int, reason: str) -> None:
        """Record the close."""
        self.closes.append((code, reason))

    async def next(self) -> tuple[str, int, str]:
        """The next frame as (type, seq, epoch), failing the test if none comes."""
        frame = await asyncio.wait_for(self.frames.get(), LIMIT_S)
        return frame["type"], frame["seq"], frame["epoch"]

    async def taken(self, count: int) -> list[tuple[str, int, str]]:
        """The next `count` frames, then nothing more pending."""
        received = [await self.next() for _ in range(count)]
        await asyncio.sleep(0)
        assert self.frames.empty(), f"more than {count} frames: {received} then {self.frames.get_nowait()}"
        return received


class Snapshots:
    """A snapshot source that counts what it was asked for."""

    def __init__(self) -> None:
        self.asked: list[str] = []

    async def __call__(self, channel: ChannelName, locale: str | None = None) -> Any:
        self.asked.append(channel.name if locale is None else f"{channel.name}@{locale}")
        return {"state": len(self.asked)}


def subscriber(name: str, principal: str = "user:1", session: str | None = None) -> tuple[Subscriber, Transport]:
    """A connection and its transport."""
    transport = Transport()
    return Subscriber(name, principal, transport, session_id=session), transport


async def joined(hub: Hub, name: str, channel: str = KITCHEN) -> tuple[Subscriber, Transport]:
    """A connection that joined `channel` afresh, its snapshot already taken off its transport."""
    connection, transport = subscriber(name)
    await join(hub, connection, channel)
    assert (await transport.next())[0] == "snapshot"
    return connection, transport


def event(delivery: Delivery) -> tuple[str, int, str]:
    """A delivery as a transport reports its frame."""
    return "event", delivery.seq, delivery.epoch
