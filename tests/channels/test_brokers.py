"""The broker contract (channels/brokers/base.py), one test body for every backend, plus what only Redis has:
several instances sharing channels, and a pub/sub connection that drops or goes silent.

Redis tests use a real server (`TEST_REDIS_URL`, database 15) under a prefix of their own; Redis Cluster
tests the session's own three-master cluster (tests/redis_cluster.py). What only a cluster has (channels on
different masters, a master restarting) is in test_redis_cluster.py.
"""

from __future__ import annotations

import asyncio
import json

import pytest
from redis.asyncio import Redis
from redis.exceptions import ConnectionError as RedisConnectionError

from channels.brokers import Outgoing
from channels.brokers.base import event_frame, event_tail
from channels.redis_clients import MAX_CONNECTIONS
from tests.channels.broker_helpers import (
    DEVICE,
    KITCHEN,
    LIMIT_S,
    MENU,
    REDIS_URL,
    TS,
    Brokers,
    delete_keys,
    publish,
)

# The contract, for every backend.


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


# Redis: several instances share each channel.


async def test_a_publish_on_one_instance_is_delivered_on_another(redis_brokers: Brokers) -> None:
    """Fan-out crosses instances with the same seq, epoch and frame; control messages reach every instance."""
    async with asyncio.timeout(LIMIT_S):
        a, recorder_a = await redis_brokers.open()
        b, recorder_b = await redis_brokers.open()
        await b.subscribe(KITCHEN)
        published = await publish(a)
        assert await recorder_b.next_delivery() == published
        assert await b.history(KITCHEN, 0, published.epoch) == [published]
        await a.send_control({"type": "revoke", "token_id": "t1"})
        for recorder in (recorder_a, recorder_b):
            assert await asyncio.wait_for(recorder.controls.get(), LIMIT_S) == {"type": "revoke", "token_id": "t1"}
        assert recorder_a.deliveries.empty()


async def test_concurrent_publishes_from_two_instances_get_distinct_consecutive_seqs(redis_brokers: Brokers) -> None:
    """Two instances publishing to one channel at once get seqs 1..N, none twice, in one epoch."""
    async with asyncio.timeout(LIMIT_S):
        a, _ = await redis_brokers.open()
        b, recorder = await redis_brokers.open()
        await b.subscribe(KITCHEN)
        deliveries = await asyncio.gather(*(publish(broker, n=n) for n in range(40) for broker in (a, b)))
        assert sorted(d.seq for d in deliveries) == list(range(1, 81))
        assert len({d.epoch for d in deliveries}) == 1
        received = [await recorder.next_delivery() for _ in range(80)]
        assert [d.seq for d in received] == list(range(1, 81))
        assert sorted(deliveries, key=lambda d: d.seq) == received


# Redis: losing the history, the connection, or the server's answers.


async def test_lost_history_starts_a_new_epoch(redis_brokers: Brokers) -> None:
    """When Redis loses the channel (a restart), the next event is seq 1 of a new epoch; the old one cannot resume."""
    async with asyncio.timeout(LIMIT_S):
        broker, _ = await redis_brokers.open()
        before = [await publish(broker) for _ in range(3)]
        await delete_keys(redis_brokers.prefix, "*")
        after = await publish(broker)
        assert after.seq == 1
        assert after.epoch != before[0].epoch
        assert await broker.history(KITCHEN, 3, before[0].epoch) is None
        assert await broker.history(KITCHEN, 0, after.epoch) == [after]


async def test_a_lost_counter_never_serves_the_old_history_as_the_new_epoch(redis_brokers: Brokers) -> None:
    """If only the counter goes (evicted, say), the new epoch's history holds its own events alone."""
    async with asyncio.timeout(LIMIT_S):
        broker, _ = await redis_brokers.open()
        before = [await publish(broker) for _ in range(3)]
        await delete_keys(redis_brokers.prefix, f"ch:{KITCHEN}")
        after = await publish(broker)
        assert after.seq == 1
        assert after.epoch != before[0].epoch
        assert await broker.history(KITCHEN, 0, after.epoch) == [after]


async def test_a_killed_pubsub_connection_resubscribes_and_reports_the_reconnect(redis_brokers: Brokers) -> None:
    """When Redis drops the pub/sub connection, the broker reconnects by itself, says so once, and delivers again."""
    async with asyncio.timeout(LIMIT_S):
        broker, recorder = await redis_brokers.open()
        await broker.subscribe(KITCHEN)
        redis = Redis.from_url(REDIS_URL, decode_responses=True)
        try:
            ours = [c["id"] for c in await redis.client_list() if c["name"] == f"{redis_brokers.prefix}:broker-pubsub"]
            assert len(ours) == 1
            await redis.execute_command("CLIENT", "KILL", "ID", ours[0])
        finally:
            await redis.aclose()
        await recorder.wait_reconnected()
        published = await publish(broker)
        assert await recorder.next_delivery() == published
        assert recorder.reconnects == 1


async def test_an_outage_makes_publish_fail_and_the_broker_recovers_after_it(redis_brokers: Brokers) -> None:
    """While Redis is unreachable publish raises; once it is back the broker reconnects, says so, and delivers."""
    async with asyncio.timeout(LIMIT_S), TcpProxy() as proxy:
        broker, recorder = await redis_brokers.open_redis(proxy.url)
        await broker.subscribe(KITCHEN)
        before = await publish(broker)
        assert await recorder.next_delivery() == before

        await proxy.stop()
        with pytest.raises(RedisConnectionError):
            await publish(broker)
        await proxy.start()
        await recorder.wait_reconnected()
        after = await publish(broker)
        assert after.seq == 2
        assert await recorder.next_delivery() == after
        assert recorder.reconnects == 1


async def test_a_silent_connection_is_noticed_and_replaced(redis_brokers: Brokers) -> None:
    """A pub/sub connection that stops answering (a vanished host) is given up after an unanswered ping."""
    async with asyncio.timeout(LIMIT_S), TcpProxy() as proxy:
        broker, recorder = await redis_brokers.open_redis(proxy.url, idle_ping_s=0.2)
        await broker.subscribe(KITCHEN)
        proxy.silence()
        await recorder.wait_reconnected()
        published = await publish(broker)
        assert await recorder.next_delivery() == published


async def test_subscribe_on_a_silent_connection_returns_once_redis_confirms_it(redis_brokers: Brokers) -> None:
    """subscribe() waits for Redis to confirm, here on the new connection, so the next publish is delivered."""
    async with asyncio.timeout(LIMIT_S), TcpProxy() as proxy:
        broker, recorder = await redis_brokers.open_redis(proxy.url, idle_ping_s=0.2)
        proxy.silence()
        await broker.subscribe(KITCHEN)
        published = await publish(broker)
        assert await recorder.next_delivery() == published
        assert recorder.reconnects == 1


async def test_start_raises_when_redis_is_unreachable(redis_brokers: Brokers) -> None:
    """A broker that cannot reach Redis at start says so rather than start deaf."""
    async with asyncio.timeout(LIMIT_S), TcpProxy() as proxy:
        await proxy.stop()
        with pytest.raises(RedisConnectionError):
            await redis_brokers.open_redis(proxy.url)


class TcpProxy:
    """A loopback relay to the test Redis that a test can take down or silence, as a network would."""

    def __init__(self) -> None:
        target = Redis.from_url(REDIS_URL).get_connection_kwargs()
        self._target = (str(target.get("host", "127.0.0.1")), int(target.get("port", 6379)))
        self._db = int(target.get("db", 0))
        self._port = 0
        self._server: asyncio.Server | None = None
        self._relays: set[asyncio.Task[None]] = set()
        # Open connections whose bytes still flow; silence() takes them off.
        self._flowing: list[asyncio.Event] = []

    @property
    def url(self) -> str:
        """The Redis URL that goes through the proxy."""
        return f"redis://127.0.0.1:{self._port}/{self._db}"

    async def __aenter__(self) -> TcpProxy:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.stop()

    async def start(self) -> None:
        """Listen (again, on the same port)."""
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", self._port)
        self._port = self._server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        """Stop listening and cut every connection, as a Redis restart does."""
        if self._server is not None:
            self._server.close()
            await asyncio.wait_for(self._server.wait_closed(), LIMIT_S)
            self._server = None
        for relay in self._relays:
            relay.cancel()
        await asyncio.wait_for(asyncio.gather(*self._relays, return_exceptions=True), LIMIT_S)

    def silence(self) -> None:
        """Stop passing bytes on every open connection, without closing any: new connections still work."""
        for flowing in self._flowing:
            flowing.clear()
        self._flowing = []

    async def _accept(self, client_reader: asyncio.StreamReader, client_writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._relays.add(task)
        flowing = asyncio.Event()
        flowing.set()
        self._flowing.append(flowing)
        try:
            server_reader, server_writer = await asyncio.wait_for(asyncio.open_connection(*self._target), LIMIT_S)
            try:
                await asyncio.gather(
                    _pump(client_reader, server_writer, flowing), _pump(server_reader, client_writer, flowing)
                )
            finally:
                server_writer.close()
        finally:
            client_writer.close()
            self._relays.discard(task)


async def _pump(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, flowing: asyncio.Event) -> None:
    """Copy bytes one way until either side closes; bytes read while silenced are held back for good."""
    try:
        while data := await reader.read(65536):
            await flowing.wait()
            writer.write(data)
            await writer.drain()
    except OSError:
        return
    finally:
        writer.close()


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


async def test_publish_many_survives_redis_forgetting_its_scripts(redis_brokers: Brokers) -> None:
    """After SCRIPT FLUSH (as after a Redis restart) several events still go out, each once, in order."""
    async with asyncio.timeout(LIMIT_S):
        broker, recorder = await redis_brokers.open()
        await broker.subscribe(KITCHEN)
        # Both scripts loaded first, so that the flush really takes them away.
        await publish(broker)
        await broker.publish_many([Outgoing(KITCHEN, f"evt-{n}", "order.queued", "{}", TS) for n in range(2)])
        redis = Redis.from_url(REDIS_URL)
        try:
            await redis.script_flush()
        finally:
            await redis.aclose()
        await broker.publish_many([Outgoing(KITCHEN, f"evt-{n}", "order.queued", "{}", TS) for n in range(2, 5)])
        assert [(await recorder.next_delivery()).seq for _ in range(6)] == [1, 2, 3, 4, 5, 6]
        assert recorder.deliveries.empty()


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


async def test_a_burst_beyond_the_connection_pool_waits_instead_of_failing(redis_brokers: Brokers) -> None:
    """Far more concurrent calls than the pool holds connections (a crowd saying hello) all succeed, in turn."""
    async with asyncio.timeout(LIMIT_S):
        broker, _ = await redis_brokers.open()
        burst = 6 * MAX_CONNECTIONS
        positions = await asyncio.gather(*(broker.position(f"device:{n}") for n in range(burst)))
        assert [seq for seq, _ in positions] == [0] * burst
