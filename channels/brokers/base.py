"""What a broker does: order each channel, keep its recent history, fan events out to every instance.

Publishing assigns the channel's next `seq`, appends the event to the channel's bounded
history and hands it to every instance subscribed to the channel, as one atomic step.
An event id already published returns its first delivery and is not published again,
so a re-published outbox row never gets a second seq. `epoch` names one life of a
channel's history: when the history is lost (a Redis restart), the next publish starts
a new epoch and clients resuming with the old one get a snapshot instead.

Every event frame is built once, here, as complete JSON text; the hub sends those same
characters to every subscriber.

A value may be pinned to a channel's position: it is kept until the channel's next
publish (or a lost epoch) makes it stale. Whoever reads the position before reading what
the value is made from, and pins it at that position, never keeps a value older than an
event published on the channel (server/auth/known_principals.py keeps principals so).
"""

from __future__ import annotations

import json
import secrets
from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple, Protocol

# Values pinned to one channel at most; one more drops them all (they are kept to spare work, never needed).
MAX_PINS = 32


@dataclass(frozen=True, slots=True)
class Delivery:
    """One published event: its channel position and its complete frame text."""

    channel: str
    seq: int
    epoch: str
    frame: str


class Outgoing(NamedTuple):
    """An event to publish: `Broker.publish`'s arguments."""

    channel: str
    event_id: str
    event: str
    data_json: str
    ts: str


class BrokerListener(Protocol):
    """What the broker calls on the instance that started it (the hub)."""

    def deliver(self, delivery: Delivery) -> None:
        """An event of a channel this instance subscribed to."""

    def control(self, message: dict[str, Any]) -> None:
        """A control message sent to every instance (revocations, disconnects)."""

    def reconnected(self) -> None:
        """The broker's connection came back; events may have been missed meanwhile."""


def new_epoch() -> str:
    """A fresh random epoch name."""
    return secrets.token_urlsafe(6)


def event_tail(event: str, data_json: str, ts: str) -> str:
    """The part of an event frame after `epoch`: the same for every seq, so it is built once by the publisher."""
    return f'"event":{json.dumps(event)},"data":{data_json},"ts":{json.dumps(ts)}}}'


def event_frame(channel: str, seq: int, epoch: str, tail: str) -> str:
    """The complete event frame text (PROTOCOL.md), from its position and its tail."""
    return f'{{"type":"event","channel":{json.dumps(channel)},"seq":{seq},"epoch":{json.dumps(epoch)},{tail}'


class Broker(ABC):
    """A channel broker; see the module docstring for the guarantees."""

    def __init__(self, *, history_size: int, history_ttl_s: int) -> None:
        self.history_size = history_size
        self.history_ttl_s = history_ttl_s

    @abstractmethod
    async def start(self, listener: BrokerListener) -> None:
        """Connect, and from now on call `listener` for deliveries and control messages."""

    @abstractmethod
    async def close(self) -> None:
        """Stop delivering and release connections."""

    @abstractmethod
    async def publish(self, channel: str, event_id: str, event: str, data_json: str, ts: str) -> Delivery:
        """Assign the next seq, keep the event in history, fan it out; idempotent per `event_id`."""

    async def publish_many(self, events: Sequence[Outgoing]) -> None:
        """Publish `events` in order, as `publish` one by one would; a broker may send them together."""
        for outgoing in events:
            await self.publish(*outgoing)

    @abstractmethod
    async def position(self, channel: str) -> tuple[int, str]:
        """The channel's last seq (0 when none yet) and its current epoch."""

    @abstractmethod
    async def history(self, channel: str, after_seq: int, epoch: str) -> list[Delivery] | None:
        """The kept events after `after_seq`, in order; None when they cannot all be given
        (another epoch, or the next one has left the history)."""

    async def resume(self, channel: str, since: tuple[int, str] | None) -> tuple[int, str, list[Delivery] | None]:
        """The channel's position (`position`) and, when `since` (a seq and an epoch) is of its epoch, the kept events
        after that seq (`history`); None in place of the events when there is no `since` or they cannot all be given.
        A broker may read both at once."""
        seq, epoch = await self.position(channel)
        if since is None or since[1] != epoch:
            return seq, epoch, None
        return seq, epoch, await self.history(channel, since[0], epoch)

    @abstractmethod
    async def pinned(self, channel: str, key: str) -> tuple[str | None, tuple[int, str]]:
        """The value pinned under `key` at the channel's current position (None when there is none, or it was
        pinned at another position), and that position: a seq and an epoch, as `position` gives them."""

    @abstractmethod
    async def pin(self, channel: str, at: tuple[int, str], key: str, value: str, ttl_s: int) -> None:
        """Pin `value` under `key` to position `at` of the channel, for at most `ttl_s` seconds: a publish on the
        channel, a lost epoch, or a pin at another position drops it, and every other value pinned at `at`; so does
        a pin beyond `MAX_PINS` on the channel."""

    @abstractmethod
    async def subscribe(self, channel: str) -> None:
        """Start receiving this channel's deliveries on this instance."""

    @abstractmethod
    async def unsubscribe(self, channel: str) -> None:
        """Stop receiving this channel's deliveries on this instance."""

    @abstractmethod
    async def send_control(self, message: dict[str, Any]) -> None:
        """Send a control message to every instance, this one included."""

    @abstractmethod
    async def ping(self) -> None:
        """Raise unless the broker answers."""
