"""The hub on its own: fan-out, joining and leaving channels, and closing connections, with a fake broker
and transports (tests/channels/hub_fakes.py).
"""

from __future__ import annotations

import pytest
from redis.exceptions import ConnectionError as RedisConnectionError

from channels import frames
from channels.hub import Hub, close_message
from tests.channels.hub_fakes import KITCHEN, MENU, FakeBroker, Snapshots, event, joined, subscriber
from tests.channels.hub_helpers import join

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
