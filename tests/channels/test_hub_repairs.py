"""The hub's gap repair: missed events replayed from history in order, or a snapshot when history
cannot cover them, the gap is too long or the epoch changed; and what the hub does while and after it repairs.
"""

from __future__ import annotations

import asyncio

from channels import frames
from channels.hub import Hub
from tests.channels.hub_fakes import KITCHEN, LIMIT_S, MAX_REPLAY, MENU, FakeBroker, Snapshots, event, joined


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
