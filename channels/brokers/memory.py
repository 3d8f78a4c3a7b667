"""The in-process broker: the embedded default when `REDIS_URL` is unset (one server process)."""

from __future__ import annotations

import time
from collections import OrderedDict, deque
from typing import Any

from channels.brokers.base import MAX_PINS, Broker, BrokerListener, Delivery, event_frame, event_tail, new_epoch

# Remembered event ids; a re-published outbox row comes back within seconds, not after 100k others.
_DEDUPE_SIZE = 100_000


class _Channel:
    __slots__ = ("epoch", "history", "seq")

    def __init__(self) -> None:
        self.seq = 0
        self.epoch = new_epoch()
        self.history: deque[tuple[float, Delivery]] = deque()


class MemoryBroker(Broker):
    """Channels, history and fan-out in this process's memory; the epoch changes with every process start."""

    def __init__(self, *, history_size: int, history_ttl_s: int) -> None:
        super().__init__(history_size=history_size, history_ttl_s=history_ttl_s)
        self._channels: dict[str, _Channel] = {}
        self._seen: OrderedDict[str, Delivery] = OrderedDict()
        self._subscribed: set[str] = set()
        self._listener: BrokerListener | None = None
        # Per channel: the position its values were pinned at, and the values.
        self._pins: dict[str, tuple[tuple[int, str], dict[str, str]]] = {}

    async def start(self, listener: BrokerListener) -> None:
        """Deliver to `listener` from now on."""
        self._listener = listener

    async def close(self) -> None:
        """Stop delivering."""
        self._listener = None

    def _channel(self, name: str) -> _Channel:
        channel = self._channels.get(name)
        if channel is None:
            channel = self._channels[name] = _Channel()
        return channel

    def _trim(self, channel: _Channel, now: float) -> None:
        history = channel.history
        while history and (len(history) > self.history_size or now - history[0][0] > self.history_ttl_s):
            history.popleft()

    async def publish(self, channel: str, event_id: str, event: str, data_json: str, ts: str) -> Delivery:
        """Assign the next seq and deliver; an event id seen before returns its first delivery."""
        seen = self._seen.get(event_id)
        if seen is not None:
            return seen
        state = self._channel(channel)
        state.seq += 1
        delivery = Delivery(
            channel,
            state.seq,
            state.epoch,
            event_frame(channel, state.seq, state.epoch, event_tail(event, data_json, ts)),
        )
        now = time.monotonic()
        state.history.append((now, delivery))
        self._trim(state, now)
        self._seen[event_id] = delivery
        if len(self._seen) > _DEDUPE_SIZE:
            self._seen.popitem(last=False)
        if self._listener is not None and channel in self._subscribed:
            self._listener.deliver(delivery)
        return delivery

    async def position(self, channel: str) -> tuple[int, str]:
        """The last seq and epoch of `channel`."""
        state = self._channel(channel)
        return state.seq, state.epoch

    async def history(self, channel: str, after_seq: int, epoch: str) -> list[Delivery] | None:
        """Kept events after `after_seq`, or None when resuming from there is impossible."""
        state = self._channel(channel)
        if epoch != state.epoch or after_seq > state.seq:
            return None
        self._trim(state, time.monotonic())
        kept = [delivery for _, delivery in state.history if delivery.seq > after_seq]
        if after_seq < state.seq and (not kept or kept[0].seq != after_seq + 1):
            return None
        return kept

    async def pinned(self, channel: str, key: str) -> tuple[str | None, tuple[int, str]]:
        """The value pinned under `key` at the channel's current position, and that position."""
        at = await self.position(channel)
        pinned_at, values = self._pins.get(channel, (None, {}))
        return (values.get(key) if pinned_at == at else None), at

    async def pin(self, channel: str, at: tuple[int, str], key: str, value: str, ttl_s: int) -> None:
        """Pin `value` at `at`; values of this process live as long as it does, so `ttl_s` is not needed."""
        pinned_at, values = self._pins.get(channel, (None, {}))
        if pinned_at != at or len(values) >= MAX_PINS:
            values = {}
            self._pins[channel] = (at, values)
        values[key] = value

    async def subscribe(self, channel: str) -> None:
        """Deliver this channel's events to the listener."""
        self._subscribed.add(channel)

    async def unsubscribe(self, channel: str) -> None:
        """Stop delivering this channel's events."""
        self._subscribed.discard(channel)

    async def send_control(self, message: dict[str, Any]) -> None:
        """Hand a control message to the listener (this is the only instance)."""
        if self._listener is not None:
            self._listener.control(message)

    async def ping(self) -> None:
        """The in-process broker is always there."""
