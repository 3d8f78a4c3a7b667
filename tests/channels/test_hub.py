"""The hub on its own: fan-out, joining and leaving channels, and gap repair, with a fake broker and transports.

The fake broker delivers nothing by itself: each test hands the hub exactly the deliveries
it wants, in the order it wants, so lost, late and out-of-epoch events are staged directly.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest
from redis.exceptions import ConnectionError as RedisConnectionError

from channels import frames, names
from channels.brokers.base import Broker, BrokerListener, Delivery, event_frame, event_tail
from channels.hub import Hub, Subscriber, close_message
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


@pytest.fixture
def broker() -> FakeBroker:
    """A fresh fake broker."""
    return FakeBroker()


@pytest.fixture
def snapshots() -> Snapshots:
    """A fresh snapshot source."""
    return Snapshots()


@pytest.fixture
def hub(broker: FakeBroker, snapshots: Snapshots) -> Hub:
    """A hub over the fake broker, replaying at most MAX_REPLAY missed events."""
    return Hub(broker, snapshots, max_replay=MAX_REPLAY)


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


# Fan-out


async def test_a_delivery_reaches_every_subscriber_of_its_channel_as_the_same_bytes(
    hub: Hub, broker: FakeBroker
) -> None:
    """Each local subscriber gets the event once; its wire frame is built once for all; other channels get nothing."""
    (_, first), (_, second) = await joined(hub, "a"), await joined(hub, "b")
    _, elsewhere = await joined(hub, "c", MENU)
    delivered = broker.add(KITCHEN)
    hub.deliver(delivered)
    assert await first.taken(1) == [event(delivered)]
    assert await second.taken(1) == [event(delivered)]
    assert first.wires[-1] is second.wires[-1]
    assert elsewhere.frames.empty()
    assert hub.delivered == 2


async def test_a_delivery_of_a_channel_nobody_here_joined_is_dropped(hub: Hub, broker: FakeBroker) -> None:
    """Nothing is sent, and nothing is counted, for a channel without local subscribers."""
    _, transport = await joined(hub, "a", MENU)
    hub.deliver(broker.add(KITCHEN))
    assert transport.frames.empty()
    assert hub.delivered == 0


async def test_a_subscriber_too_far_behind_is_closed_once_and_never_slows_the_others(
    hub: Hub, broker: FakeBroker
) -> None:
    """A transport that refuses a frame closes its connection with 4008; the others still get every event."""
    (slow_connection, slow), (_, fast) = await joined(hub, "slow"), await joined(hub, "fast")
    slow.keeping_up = False
    first, second = broker.add(KITCHEN), broker.add(KITCHEN)
    hub.deliver(first)
    hub.deliver(second)
    assert await fast.taken(2) == [event(first), event(second)]
    assert slow.closes == [(frames.TOO_SLOW, "send queue overflowed")]
    assert slow_connection.closed


# Joining and leaving


async def test_the_broker_subscription_follows_the_first_join_and_the_last_leave(hub: Hub, broker: FakeBroker) -> None:
    """One broker subscription per channel however many join; it goes with the last to leave, or to detach."""
    first, first_transport = await joined(hub, "a")
    second, _ = await joined(hub, "b")
    assert (broker.subscribed, broker.subscribes) == ({KITCHEN}, 1)
    await hub.leave(first, KITCHEN)
    assert broker.subscribed == {KITCHEN}
    hub.deliver(broker.add(KITCHEN))
    assert first_transport.frames.empty()
    hub.attach(second)
    await hub.detach(second)
    assert broker.subscribed == set()
    await joined(hub, "c")
    assert (broker.subscribed, broker.subscribes) == ({KITCHEN}, 2)


async def test_a_refused_broker_subscription_leaves_the_channel_unjoined(hub: Hub, broker: FakeBroker) -> None:
    """When the broker cannot subscribe, the join fails and the next one asks the broker again."""
    broker.refuse_subscribe = True
    connection, _ = subscriber("a")
    with pytest.raises(RedisConnectionError):
        await join(hub, connection, KITCHEN)
    broker.refuse_subscribe = False
    await joined(hub, "b")
    assert (broker.subscribed, broker.subscribes) == ({KITCHEN}, 2)


async def test_joining_from_a_known_position_replays_the_missed_events(hub: Hub, broker: FakeBroker) -> None:
    """A position in the current epoch resumes: the events after it come from history, with no snapshot."""
    events = [broker.add(KITCHEN) for _ in range(3)]
    connection, transport = subscriber("a")
    status = await join(hub, connection, KITCHEN, (1, broker.epoch))
    assert status.public() == {"seq": 3, "epoch": broker.epoch, "resumed": True}
    assert await transport.taken(2) == [event(events[1]), event(events[2])]


@pytest.mark.parametrize("since", [None, (1, "another epoch"), (5, "epoch-1")], ids=["new", "old epoch", "future"])
async def test_joining_without_a_usable_position_gets_a_snapshot(
    hub: Hub, broker: FakeBroker, snapshots: Snapshots, since: tuple[int, str] | None
) -> None:
    """No position, another epoch's, or one history cannot serve: one snapshot at the channel's current seq."""
    for _ in range(3):
        broker.add(KITCHEN)
    connection, transport = subscriber("a")
    status = await join(hub, connection, KITCHEN, since)
    assert status.public() == {"seq": 3, "epoch": broker.epoch, "resumed": False}
    assert await transport.taken(1) == [("snapshot", 3, broker.epoch)]
    assert snapshots.asked == [KITCHEN]


async def test_subscribers_joining_at_one_position_share_its_snapshot(
    hub: Hub, broker: FakeBroker, snapshots: Snapshots
) -> None:
    """Two devices joining the kitchen at seq 3 get one snapshot read between them; after an event, the next device
    joining at seq 4 gets a snapshot read anew, at that seq."""
    for _ in range(3):
        broker.add(KITCHEN)
    (first, first_transport), (second, second_transport) = subscriber("a"), subscriber("b")
    await join(hub, first, KITCHEN)
    await join(hub, second, KITCHEN)
    assert snapshots.asked == [KITCHEN]
    assert await first_transport.taken(1) == await second_transport.taken(1) == [("snapshot", 3, broker.epoch)]
    broker.add(KITCHEN)
    third, third_transport = subscriber("c")
    await join(hub, third, KITCHEN)
    assert snapshots.asked == [KITCHEN, KITCHEN]
    assert await third_transport.taken(1) == [("snapshot", 4, broker.epoch)]


async def test_more_missed_events_than_max_replay_come_as_one_snapshot(hub: Hub, broker: FakeBroker) -> None:
    """Catching up never floods the send buffer: past `max_replay` the subscriber gets a snapshot instead."""
    for _ in range(3):
        broker.add(KITCHEN)
    hub.max_replay = 2
    connection, transport = subscriber("a")
    prepared = await hub.prepare(connection, KITCHEN, (0, broker.epoch))
    hub.complete(connection, KITCHEN, prepared)
    assert prepared.status.resumed is False
    assert await transport.taken(1) == [("snapshot", 3, broker.epoch)]


async def test_deliveries_during_a_join_are_held_and_sent_after_it_without_duplicates(
    hub: Hub, broker: FakeBroker
) -> None:
    """Live events that arrive between prepare and complete follow the replay, each once, in seq order."""
    events = [broker.add(KITCHEN) for _ in range(2)]
    connection, transport = subscriber("a")
    prepared = await hub.prepare(connection, KITCHEN, (0, broker.epoch))
    hub.deliver(events[1])  # also in the replay
    later = broker.add(KITCHEN)
    hub.deliver(later)
    assert transport.frames.empty()
    hub.complete(connection, KITCHEN, prepared)
    assert await transport.taken(3) == [event(events[0]), event(events[1]), event(later)]


# Gap repair


async def test_a_gap_is_repaired_from_history_in_order(hub: Hub, broker: FakeBroker) -> None:
    """An event after a lost one makes the hub fetch the missing ones first; a late copy of one is dropped at once."""
    _, transport = await joined(hub, "a")
    first, lost, after = broker.add(KITCHEN), broker.add(KITCHEN), broker.add(KITCHEN)
    hub.deliver(first)
    hub.deliver(after)
    assert await transport.taken(3) == [event(first), event(lost), event(after)]
    asked = broker.history_asked
    hub.deliver(lost)
    following = broker.add(KITCHEN)
    hub.deliver(following)
    assert await transport.taken(1) == [event(following)]
    assert broker.history_asked == asked


async def test_a_gap_history_cannot_cover_is_repaired_with_a_snapshot(
    hub: Hub, broker: FakeBroker, snapshots: Snapshots
) -> None:
    """When the missing events have left the history, the subscriber gets a snapshot and goes on live from it."""
    _, transport = await joined(hub, "a")
    for _ in range(2):
        broker.add(KITCHEN)
    after = broker.add(KITCHEN)
    broker.trimmed.add(KITCHEN)
    hub.deliver(after)
    assert await transport.taken(1) == [("snapshot", 3, broker.epoch)]
    following = broker.add(KITCHEN)
    hub.deliver(following)
    assert await transport.taken(1) == [event(following)]
    assert snapshots.asked == [KITCHEN, KITCHEN]


async def test_a_gap_longer_than_max_replay_is_repaired_with_a_snapshot(
    hub: Hub, broker: FakeBroker, snapshots: Snapshots
) -> None:
    """A repair never replays more than a join would (a broker outage on a busy channel must not end in 4008)."""
    _, transport = await joined(hub, "a")
    for _ in range(MAX_REPLAY + 1):
        broker.add(KITCHEN)
    after = broker.add(KITCHEN)
    hub.deliver(after)
    assert await transport.taken(1) == [("snapshot", MAX_REPLAY + 2, broker.epoch)]
    assert snapshots.asked == [KITCHEN, KITCHEN]


async def test_an_event_of_a_new_epoch_is_repaired_with_a_snapshot_of_that_epoch(hub: Hub, broker: FakeBroker) -> None:
    """After the broker lost its history, the first event of the new epoch brings a snapshot of the new epoch."""
    _, transport = await joined(hub, "a")
    hub.deliver(broker.add(KITCHEN))
    await transport.taken(1)
    broker.restart()
    restarted = broker.add(KITCHEN)
    hub.deliver(restarted)
    assert await transport.taken(1) == [("snapshot", 1, "epoch-2")]
    following = broker.add(KITCHEN)
    hub.deliver(following)
    assert await transport.taken(1) == [event(following)]


async def test_deliveries_during_a_repair_wait_for_it(hub: Hub, broker: FakeBroker) -> None:
    """Events arriving while the missing ones are fetched are held, then sent after them, in order."""
    _, transport = await joined(hub, "a")
    lost, after = broker.add(KITCHEN), broker.add(KITCHEN)
    broker.history_gate = asyncio.Event()
    hub.deliver(after)
    meanwhile = broker.add(KITCHEN)
    hub.deliver(meanwhile)
    await asyncio.sleep(0)
    assert transport.frames.empty()
    broker.history_gate.set()
    assert await transport.taken(3) == [event(lost), event(after), event(meanwhile)]


async def test_a_repair_that_fails_closes_the_connection_so_that_it_resumes(hub: Hub, broker: FakeBroker) -> None:
    """A broker that cannot say what was missed leaves only one safe move: close with 1001; the device resumes."""
    connection, transport = await joined(hub, "a")
    broker.add(KITCHEN)
    after = broker.add(KITCHEN)
    broker.failing = True
    hub.deliver(after)
    async with asyncio.timeout(LIMIT_S):
        while not connection.closed:  # noqa: ASYNC110  # the repair runs in a task of the hub's own
            await asyncio.sleep(0)
    assert transport.closes == [(frames.GOING_AWAY, "could not recover missed events; reconnect and resume")]
    assert transport.frames.empty()


async def test_after_a_broker_reconnect_every_channel_catches_up_from_history(hub: Hub, broker: FakeBroker) -> None:
    """Events published while the broker's connection was down reach each subscriber once it is back."""
    (_, kitchen), (_, menu) = await joined(hub, "a"), await joined(hub, "b", MENU)
    missed = [broker.add(KITCHEN), broker.add(KITCHEN)]
    hub.reconnected()
    assert await kitchen.taken(2) == [event(missed[0]), event(missed[1])]
    assert await menu.taken(0) == []


# Connections


async def test_control_closes_the_connections_of_a_principal_or_a_session(hub: Hub) -> None:
    """A close message names a principal or a session; only the connections it names close, with its code."""
    device, device_transport = subscriber("a", "device:7")
    user, user_transport = subscriber("b", "user:1", session="s1")
    other, other_transport = subscriber("c", "user:2", session="s2")
    for connection in (device, user, other):
        hub.attach(connection)
    hub.control({"type": "ping"})
    hub.control(close_message(principal="device:7", code=frames.FORBIDDEN, reason="revoked"))
    hub.control(close_message(session="s1", code=frames.UNAUTHORIZED, reason="logged out"))
    assert device_transport.closes == [(frames.FORBIDDEN, "revoked")]
    assert user_transport.closes == [(frames.UNAUTHORIZED, "logged out")]
    assert other_transport.closes == []


async def test_close_all_closes_every_connection_and_empty_tells_when_all_are_gone(hub: Hub) -> None:
    """Shutdown closes every attached connection; `empty` is set again once the last one detaches."""
    assert hub.empty.is_set()
    connections = [subscriber(name) for name in ("a", "b")]
    for connection, _ in connections:
        hub.attach(connection)
    assert not hub.empty.is_set()
    reasons = iter(("server shutting down; retry_after=1.0", "server shutting down; retry_after=2.0"))
    hub.close_all(frames.GOING_AWAY, lambda: next(reasons))
    assert sorted(transport.closes[0] for _, transport in connections) == [
        (frames.GOING_AWAY, "server shutting down; retry_after=1.0"),
        (frames.GOING_AWAY, "server shutting down; retry_after=2.0"),
    ]
    await hub.detach(connections[0][0])
    assert not hub.empty.is_set()
    await hub.detach(connections[1][0])
    assert hub.empty.is_set()
