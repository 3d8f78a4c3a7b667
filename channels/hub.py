"""The hub: this instance's connections, their channels, and fan-out of broker deliveries.

Each delivery arrives once per instance with its complete frame text; the hub builds the
WebSocket frame's bytes once and writes those same bytes to every local subscriber's
socket: nothing is serialised or encoded per subscriber, no task wakes per subscriber,
and nothing touches the database. A subscriber whose unsent bytes pass the bound is
closed with 4008 (it resumes on reconnect) and never slows anyone else.

Joining a channel (on `hello` or `subscribe`) and repairing a gap share one procedure,
`prepare` then `complete` (`_resync` for a gap): live deliveries are buffered for that
subscriber, the missed events are sent from history (or, when history cannot cover them
or they are more than the caller's `max_replay`, one snapshot), and then the buffer is
flushed from where that left off. Every subscriber therefore sees each channel's seqs in
order with no gap and no duplicate.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

from channels import frames
from channels.brokers.base import Broker, Delivery
from channels.names import ChannelName, parse
from channels.shared_snapshots import SharedSnapshots
from channels.wire import wire_frame

log = logging.getLogger("channels.hub")

# A channel's snapshot, in a locale (None: the channel's default): a kiosk reads its menu in its customer's language.
SnapshotSource = Callable[[ChannelName, str | None], Awaitable[Any]]


def close_message(
    *, principal: str | None = None, session: str | None = None, code: int, reason: str
) -> dict[str, Any]:
    """A control message that closes, on every instance, the sockets of a principal (`device:7`) or a session."""
    return {"type": "close", "principal": principal, "session": session, "code": code, "reason": reason}


class Transport(Protocol):
    """How the hub reaches one client connection (the socket endpoint implements it)."""

    def send(self, frame: bytes) -> bool:
        """Write a complete WebSocket frame without waiting; False when the client is too far behind."""

    def close(self, code: int, reason: str) -> None:
        """Close the connection with a WebSocket close code, without waiting."""


@dataclass(frozen=True)
class ChannelStatus:
    """Where a subscriber starts on a channel, as the `welcome` frame reports it."""

    seq: int
    epoch: str
    resumed: bool

    def public(self) -> dict[str, Any]:
        """The `welcome`/`subscribe` reply shape."""
        return {"seq": self.seq, "epoch": self.epoch, "resumed": self.resumed}


@dataclass(eq=False, slots=True)
class Subscriber:
    """One connection as the hub sees it: who it is, its transport and its place on each channel."""

    connection_id: str
    principal: str
    transport: Transport
    session_id: str | None = None
    # The locale its snapshots are read in (None: each channel's default); live events are the same for everyone.
    locale: str | None = None
    # channel -> (epoch, last seq sent)
    positions: dict[str, tuple[str, int]] = field(default_factory=dict)
    # channel -> deliveries held back while the channel is being synced
    pending: dict[str, list[Delivery]] = field(default_factory=dict)
    closed: bool = False

    def send(self, frame: str) -> None:
        """Send a frame's text; a client too far behind is closed as too slow."""
        self.send_wire(wire_frame(frame))

    def send_wire(self, wire: bytes) -> None:
        """Send a frame already built for the wire (one delivery's bytes serve every subscriber)."""
        if self.closed:
            return
        if not self.transport.send(wire):
            self.close(frames.TOO_SLOW, "send queue overflowed")

    def close(self, code: int, reason: str) -> None:
        """Close the connection once."""
        if not self.closed:
            self.closed = True
            self.transport.close(code, reason)


@dataclass
class _Prepared:
    status: ChannelStatus
    frames: list[str]
    last: int


class Hub:
    """Local subscribers per channel, fed by the broker."""

    def __init__(self, broker: Broker, snapshots: SnapshotSource, *, max_replay: int) -> None:
        self.broker = broker
        self._snapshots = snapshots
        # Devices joining a channel at the same position share one read of its snapshot.
        self._shared = SharedSnapshots()
        # Missed events replayed per channel, on a join or a gap's repair; a longer gap gets a snapshot, so that
        # catching up never fills a subscriber's send buffer (which would close it as too slow, again and again).
        self.max_replay = max_replay
        self._channels: dict[str, set[Subscriber]] = {}
        self._subscribers: dict[str, Subscriber] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self.delivered = 0
        # Set while no connection is attached: shutdown waits on it.
        self.empty = asyncio.Event()
        self.empty.set()

    # -- connections ---------------------------------------------------------------------

    def attach(self, subscriber: Subscriber) -> None:
        """Start tracking a connection (after its `hello` was accepted)."""
        self._subscribers[subscriber.connection_id] = subscriber
        self.empty.clear()

    async def detach(self, subscriber: Subscriber) -> None:
        """Forget a connection and leave all its channels."""
        self._subscribers.pop(subscriber.connection_id, None)
        if not self._subscribers:
            self.empty.set()
        for channel in list(subscriber.positions) + list(subscriber.pending):
            await self.leave(subscriber, channel)

    def close_all(self, code: int, reason: Callable[[], str]) -> None:
        """Close every connection (shutdown), each with the reason `reason()` gives it."""
        for subscriber in list(self._subscribers.values()):
            subscriber.close(code, reason())

    # -- channels ------------------------------------------------------------------------

    async def prepare(self, subscriber: Subscriber, channel: str, since: tuple[int, str] | None) -> _Prepared:
        """Subscribe and work out what the subscriber missed (more than `max_replay` events: a snapshot instead);
        nothing is sent yet (see `complete`)."""
        if channel not in self._channels:
            # Only a channel the broker really subscribed is recorded, or a failure here would silence it.
            await self.broker.subscribe(channel)
            self._channels.setdefault(channel, set())
        subscriber.pending.setdefault(channel, [])
        self._channels[channel].add(subscriber)
        try:
            return await self._missed(channel, since, subscriber.locale)
        except BaseException:
            await self.leave(subscriber, channel)
            raise

    def complete(self, subscriber: Subscriber, channel: str, prepared: _Prepared) -> None:
        """Send what `prepare` found, then the deliveries held back meanwhile, then go live."""
        for frame in prepared.frames:
            subscriber.send(frame)
        subscriber.positions[channel] = (prepared.status.epoch, prepared.last)
        held = subscriber.pending.pop(channel, [])
        for delivery in held:
            self._offer(subscriber, delivery)

    async def leave(self, subscriber: Subscriber, channel: str) -> None:
        """Unsubscribe; the broker subscription goes when the last local subscriber leaves."""
        subscriber.positions.pop(channel, None)
        subscriber.pending.pop(channel, None)
        members = self._channels.get(channel)
        if members is None:
            return
        members.discard(subscriber)
        if not members:
            del self._channels[channel]
            await self.broker.unsubscribe(channel)

    async def _missed(self, channel: str, since: tuple[int, str] | None, locale: str | None = None) -> _Prepared:
        seq, epoch, history = await self.broker.resume(channel, since)
        if since is not None and history is not None and len(history) <= self.max_replay:
            last = history[-1].seq if history else since[0]
            return _Prepared(ChannelStatus(max(seq, last), epoch, True), [d.frame for d in history], last)
        parsed = parse(channel)
        assert parsed is not None, channel

        async def read() -> str:
            return frames.snapshot(channel, seq, epoch, await self._snapshots(parsed, locale))

        # Shared only between subscribers of one locale.
        frame = await self._shared.frame(channel if locale is None else f"{channel}@{locale}", (seq, epoch), read)
        return _Prepared(ChannelStatus(seq, epoch, False), [frame], seq)

    # -- fan-out -------------------------------------------------------------------------

    def deliver(self, delivery: Delivery) -> None:
        """A broker delivery: hand its frame to every local subscriber of the channel."""
        subscribers = self._channels.get(delivery.channel)
        if not subscribers:
            return
        wire = wire_frame(delivery.frame)
        for subscriber in tuple(subscribers):
            self._offer(subscriber, delivery, wire)

    def _offer(self, subscriber: Subscriber, delivery: Delivery, wire: bytes | None = None) -> None:
        held = subscriber.pending.get(delivery.channel)
        if held is not None:
            held.append(delivery)
            return
        position = subscriber.positions.get(delivery.channel)
        if position is None:
            return
        epoch, last = position
        if delivery.epoch == epoch and delivery.seq <= last:
            return  # already sent (history and live overlap)
        if delivery.epoch != epoch or delivery.seq != last + 1:
            # A gap or a new epoch: hold this one back and repair from history or a snapshot.
            subscriber.pending[delivery.channel] = [delivery]
            self._spawn(self._resync(subscriber, delivery.channel))
            return
        subscriber.positions[delivery.channel] = (epoch, delivery.seq)
        subscriber.send_wire(wire if wire is not None else wire_frame(delivery.frame))
        self.delivered += 1

    async def _resync(self, subscriber: Subscriber, channel: str) -> None:
        position = subscriber.positions.get(channel)
        since = (position[1], position[0]) if position else None
        try:
            prepared = await self._missed(channel, since, subscriber.locale)
        except Exception:
            log.exception("could not resync %s for %s", channel, subscriber.connection_id)
            subscriber.close(frames.GOING_AWAY, "could not recover missed events; reconnect and resume")
            return
        if channel in subscriber.pending and not subscriber.closed:
            self.complete(subscriber, channel, prepared)

    def control(self, message: dict[str, Any]) -> None:
        """A control message from any instance: close the connections it names."""
        if message.get("type") != "close":
            return
        principal, session = message.get("principal"), message.get("session")
        code = int(message.get("code", frames.FORBIDDEN))
        reason = str(message.get("reason", ""))
        for subscriber in list(self._subscribers.values()):
            if (principal and subscriber.principal == principal) or (session and subscriber.session_id == session):
                subscriber.close(code, reason)

    def reconnected(self) -> None:
        """The broker came back: check every channel for events published while it was away."""
        for channel, members in list(self._channels.items()):
            for subscriber in list(members):
                if channel not in subscriber.pending and channel in subscriber.positions:
                    subscriber.pending[channel] = []
                    self._spawn(self._resync(subscriber, channel))

    def _spawn(self, coro: Awaitable[None]) -> None:
        task: asyncio.Task[None] = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
