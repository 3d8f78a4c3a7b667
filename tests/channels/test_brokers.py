"""The broker contract (channels/brokers/base.py), one test body for every backend: sequence numbers and
epochs, the event frame, duplicates, deliveries, history, control messages, ping and batches.

Redis tests use a real server (`TEST_REDIS_URL`, database 15) under a prefix of their own; Redis Cluster
tests the session's own three-master cluster (tests/redis_cluster.py). What only Redis has is in
test_redis_brokers.py; what only a cluster has (channels on different masters, a master restarting) is in
test_redis_cluster.py.
"""

from __future__ import annotations

import asyncio
import json

from channels.brokers import Outgoing
from channels.brokers.base import event_frame, event_tail
from tests.channels.broker_helpers import DEVICE, KITCHEN, LIMIT_S, MENU, TS, Brokers, publish


async def test_seq_starts_at_one_and_has_no_gaps(brokers: Brokers) -> None:
    """Each channel counts from 1, one more per event, all in one epoch; position reports the last one."""
    async with asyncio.timeout(LIMIT_S):
        broker, _ = await brokers.open()
        kitchen = [await publish(broker, KITCHEN, n=n) for n in range(5)]
        menu = await publish(broker, MENU)
        assert [d.seq for d in kitchen] == [1, 2, 3, 4, 5]
        assert len({d.epoch for d in kitchen}) == 1
        assert menu.seq == 1
        assert await broker.position(KITCHEN) == (5, kitchen[0].epoch)


async def test_position_of_a_new_channel_is_zero_and_the_first_publish_keeps_its_epoch(brokers: Brokers) -> None:
    """The epoch handed out before any event is the one the first event carries."""
    async with asyncio.timeout(LIMIT_S):
        broker, _ = await brokers.open()
        seq, epoch = await broker.position(KITCHEN)
        assert seq == 0
        assert epoch
        first = await publish(broker)
        assert (first.seq, first.epoch) == (1, epoch)
        assert await broker.position(KITCHEN) == (1, epoch)


async def test_frame_is_the_protocol_event_frame(brokers: Brokers) -> None:
    """The frame is PROTOCOL.md's event frame, fields in order, byte for byte what base.event_frame builds."""
    async with asyncio.timeout(LIMIT_S):
        broker, _ = await brokers.open()
        data_json = json.dumps({"order_id": 12, "name": 'Café "Ünïcode" \\ ✓'}, ensure_ascii=False)
        delivery = await broker.publish(DEVICE, "evt-frame", "cart.updated", data_json, TS)
        decoded = json.loads(delivery.frame)
        assert list(decoded) == ["type", "channel", "seq", "epoch", "event", "data", "ts"]
        assert decoded == {
            "type": "event",
            "channel": DEVICE,
            "seq": 1,
            "epoch": delivery.epoch,
            "event": "cart.updated",
            "data": {"order_id": 12, "name": 'Café "Ünïcode" \\ ✓'},
            "ts": TS,
        }
        assert delivery.frame == event_frame(DEVICE, 1, delivery.epoch, event_tail("cart.updated", data_json, TS))
        assert (delivery.channel, delivery.seq) == (DEVICE, 1)


async def test_same_event_id_returns_the_first_delivery_and_does_not_advance(brokers: Brokers) -> None:
    """A re-published event id gets its first delivery back, is not delivered again, and takes no seq."""
    async with asyncio.timeout(LIMIT_S):
        broker, recorder = await brokers.open()
        await broker.subscribe(KITCHEN)
        first = await broker.publish(KITCHEN, "evt-1", "order.queued", '{"n":1}', TS)
        again = await broker.publish(KITCHEN, "evt-1", "order.queued", '{"n":1}', TS)
        following = await broker.publish(KITCHEN, "evt-2", "order.queued", '{"n":2}', TS)
        assert again == first
        assert following.seq == 2
        assert await recorder.next_delivery() == first
        assert await recorder.next_delivery() == following
        assert recorder.deliveries.empty()


async def test_duplicate_of_an_event_gone_from_history_is_still_its_first_delivery(brokers: Brokers) -> None:
    """Dedupe outlives the history: an old event id still returns the identical first delivery."""
    async with asyncio.timeout(LIMIT_S):
        broker, _ = await brokers.open(history_size=1)
        first = await broker.publish(KITCHEN, "evt-old", "order.queued", '{"n":1}', TS)
        await broker.publish(KITCHEN, "evt-new", "order.queued", '{"n":2}', TS)
        assert await broker.history(KITCHEN, 0, first.epoch) is None
        assert await broker.publish(KITCHEN, "evt-old", "order.queued", '{"n":1}', TS) == first
        assert await broker.position(KITCHEN) == (2, first.epoch)


async def test_deliveries_follow_subscriptions_in_seq_order(brokers: Brokers) -> None:
    """Only subscribed channels are delivered, in seq order, and nothing arrives after unsubscribe."""
    async with asyncio.timeout(LIMIT_S):
        broker, recorder = await brokers.open()
        await broker.subscribe(KITCHEN)
        await broker.subscribe(DEVICE)
        published = [await publish(broker, KITCHEN, n=n) for n in range(3)]
        await publish(broker, MENU)
        marker = await publish(broker, DEVICE)
        received = [await recorder.next_delivery() for _ in range(4)]
        assert received == [*published, marker]

        await broker.unsubscribe(KITCHEN)
        await publish(broker, KITCHEN)
        # Events reach an instance in publish order, so once the marker is in, the kitchen event would be too.
        marker = await publish(broker, DEVICE)
        assert await recorder.next_delivery() == marker
        assert recorder.deliveries.empty()


async def test_history_returns_the_events_after_a_seq_in_order(brokers: Brokers) -> None:
    """History after N is N+1 onwards as delivered, empty when up to date, None for a seq never reached."""
    async with asyncio.timeout(LIMIT_S):
        broker, _ = await brokers.open()
        published = [await publish(broker, n=n) for n in range(5)]
        epoch = published[0].epoch
        assert await broker.history(KITCHEN, 0, epoch) == published
        assert await broker.history(KITCHEN, 2, epoch) == published[2:]
        assert await broker.history(KITCHEN, 5, epoch) == []
        assert await broker.history(KITCHEN, 6, epoch) is None


async def test_a_resume_reads_the_position_and_the_events_after_the_seq_at_once(brokers: Brokers) -> None:
    """`resume` gives the position with the history after the seq of its epoch: none without a seq, for another
    epoch or a trimmed seq; a channel never published gets its epoch, and nothing to resume from."""
    async with asyncio.timeout(LIMIT_S):
        broker, _ = await brokers.open(history_size=3)
        published = [await publish(broker, n=n) for n in range(5)]
        epoch = published[0].epoch
        assert await broker.resume(KITCHEN, (3, epoch)) == (5, epoch, published[3:])
        assert await broker.resume(KITCHEN, (5, epoch)) == (5, epoch, [])
        assert await broker.resume(KITCHEN, None) == (5, epoch, None)
        assert await broker.resume(KITCHEN, (3, "other-epoch")) == (5, epoch, None)
        assert await broker.resume(KITCHEN, (1, epoch)) == (5, epoch, None)  # 2 is trimmed
        assert await broker.resume(KITCHEN, (6, epoch)) == (5, epoch, None)
        seq, menu_epoch, events = await broker.resume(MENU, (2, "gone-epoch"))
        assert (seq, events) == (0, None) and menu_epoch != "gone-epoch"
        assert await broker.position(MENU) == (0, menu_epoch)


async def test_history_of_another_epoch_is_none(brokers: Brokers) -> None:
    """A client holding another epoch (or a channel never published) cannot resume from history."""
    async with asyncio.timeout(LIMIT_S):
        broker, _ = await brokers.open()
        await publish(broker)
        assert await broker.history(KITCHEN, 1, "other-epoch") is None
        assert await broker.history(KITCHEN, 0, "other-epoch") is None
        assert await broker.history(MENU, 0, "other-epoch") is None


async def test_history_is_none_once_the_next_event_was_trimmed(brokers: Brokers) -> None:
    """Only the last `history_size` events are kept; resuming from before them is impossible."""
    async with asyncio.timeout(LIMIT_S):
        broker, _ = await brokers.open(history_size=3)
        published = [await publish(broker, n=n) for n in range(5)]
        epoch = published[0].epoch
        assert await broker.history(KITCHEN, 1, epoch) is None
        assert await broker.history(KITCHEN, 2, epoch) == published[2:]


async def test_history_drops_events_older_than_the_ttl(brokers: Brokers) -> None:
    """An event older than `history_ttl_s` has left the history, even while younger ones are kept."""
    async with asyncio.timeout(LIMIT_S):
        broker, _ = await brokers.open(history_ttl_s=1)
        old = await publish(broker, n=1)
        await asyncio.sleep(0.6)
        young = await publish(broker, n=2)
        await asyncio.sleep(0.6)
        assert await broker.history(KITCHEN, 0, old.epoch) is None
        assert await broker.history(KITCHEN, 1, old.epoch) == [young]
        assert await broker.history(KITCHEN, 2, old.epoch) == []


async def test_control_messages_reach_the_listener(brokers: Brokers) -> None:
    """A control message comes back to the instance's listener as the same object."""
    async with asyncio.timeout(LIMIT_S):
        broker, recorder = await brokers.open()
        message = {"type": "device.disconnect", "device_id": 7, "reason": "revoked"}
        await broker.send_control(message)
        assert await asyncio.wait_for(recorder.controls.get(), LIMIT_S) == message


async def test_ping_answers(brokers: Brokers) -> None:
    """A running broker answers a ping."""
    async with asyncio.timeout(LIMIT_S):
        broker, _ = await brokers.open()
        await broker.ping()


async def test_publish_many_is_publish_one_by_one(brokers: Brokers) -> None:
    """Several events at once get the seqs, history and deliveries that publishing them in order gives."""
    async with asyncio.timeout(LIMIT_S):
        broker, recorder = await brokers.open()
        await broker.subscribe(KITCHEN)
        await broker.subscribe(MENU)
        events = [
            Outgoing(KITCHEN, "evt-a", "order.queued", '{"n":1}', TS),
            Outgoing(MENU, "evt-b", "stock.changed", '{"n":2}', TS),
            Outgoing(KITCHEN, "evt-c", "order.ready", '{"n":3}', TS),
        ]
        await broker.publish_many(events)
        delivered = [await recorder.next_delivery() for _ in events]
        order = [KITCHEN, MENU, KITCHEN]
        if brokers.kind == "cluster":
            # Channels on different masters reach an instance over different connections: each keeps its own order.
            delivered.sort(key=lambda d: d.channel != KITCHEN)
            order = [KITCHEN, KITCHEN, MENU]
        assert [d.channel for d in delivered] == order
        assert [d.seq for d in delivered if d.channel == KITCHEN] == [1, 2]
        by_channel = {(d.channel, json.loads(d.frame)["event"]) for d in delivered}
        assert by_channel == {(KITCHEN, "order.queued"), (MENU, "stock.changed"), (KITCHEN, "order.ready")}
        assert [json.loads(d.frame)["event"] for d in delivered if d.channel == KITCHEN] == [
            "order.queued",
            "order.ready",
        ]
        # Each is idempotent per event id, as a single publish is.
        assert await broker.publish(*events[2]) == next(d for d in delivered if (d.channel, d.seq) == (KITCHEN, 2))
        _, epoch = await broker.position(KITCHEN)
        assert [d.seq for d in await broker.history(KITCHEN, 0, epoch) or []] == [1, 2]


async def test_an_event_id_twice_in_one_batch_goes_out_once(brokers: Brokers) -> None:
    """A relay pass and a publish after commit can carry the same row: its second copy gets no seq of its own."""
    async with asyncio.timeout(LIMIT_S):
        broker, recorder = await brokers.open()
        await broker.subscribe(KITCHEN)
        first, second = (Outgoing(KITCHEN, f"evt-{n}", "order.queued", f'{{"n":{n}}}', TS) for n in (1, 2))
        await broker.publish_many([first, second, first])
        delivered = [await recorder.next_delivery() for _ in range(2)]
        assert [(d.seq, json.loads(d.frame)["data"]["n"]) for d in delivered] == [(1, 1), (2, 2)]
        assert await broker.position(KITCHEN) == (2, delivered[0].epoch)
        await asyncio.sleep(0.05)
        assert recorder.deliveries.empty()
