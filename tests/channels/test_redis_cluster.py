"""What only the Redis Cluster broker has: channels on different masters, a master that restarts, a slot that moves.

The broker contract itself runs on the cluster in test_brokers.py; these use the session's
cluster (tests/redis_cluster.py) under a prefix of their own, but for the one that moves a
slot, which starts a cluster of its own so that no other test sees the layout change.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from redis.crc import key_slot
from redis.exceptions import RedisError

from channels.brokers.redis_cluster import RedisClusterBroker
from channels.redis_clients import cluster_client
from tests.channels.broker_helpers import LIMIT_S, Recorder, publish
from tests.redis_cluster import ClusterNodeProcess, RedisCluster, running_redis_cluster

# More than the masters, so that some channels surely land on different ones.
CANDIDATES = [f"branch:{n}:kitchen" for n in range(1, 40)]


class Instances:
    """Started cluster brokers ("server instances") on one prefix, each on a client of its own; closed at teardown."""

    def __init__(self, cluster: RedisCluster) -> None:
        self.cluster = cluster
        self.prefix = f"test:{uuid.uuid4()}"
        self._opened: list[RedisClusterBroker] = []

    async def open(self) -> tuple[RedisClusterBroker, Recorder]:
        """A started broker and its listener."""
        client = cluster_client(self.cluster.url)
        broker = RedisClusterBroker(client, history_size=100, history_ttl_s=60, prefix=self.prefix)
        self._opened.append(broker)
        recorder = Recorder()
        await asyncio.wait_for(broker.start(recorder), LIMIT_S)
        return broker, recorder

    async def master_of(self, broker: RedisClusterBroker, channel: str) -> ClusterNodeProcess:
        """The test cluster's process of the master owning `channel`'s keys."""
        node = broker._cluster.get_node_from_key(broker._state_key(channel))
        assert node is not None
        return next(process for process in self.cluster.nodes if process.port == node.port)

    async def close_all(self) -> None:
        """Close every broker and its client."""
        for broker in self._opened:
            await asyncio.wait_for(broker.close(), LIMIT_S)
            await asyncio.wait_for(broker._cluster.aclose(), LIMIT_S)


@pytest.fixture
async def instances(redis_cluster: RedisCluster) -> AsyncIterator[Instances]:
    """Cluster brokers sharing a fresh prefix."""
    opened = Instances(redis_cluster)
    yield opened
    await opened.close_all()


@pytest.fixture
async def own_instances(tmp_path: Path) -> AsyncIterator[Instances]:
    """Cluster brokers on a cluster of the test's own, for a test that changes the cluster's layout."""
    async with running_redis_cluster(tmp_path) as cluster:
        opened = Instances(cluster)
        yield opened
        await opened.close_all()


async def test_two_instances_deliver_each_others_events_in_order_across_masters(instances: Instances) -> None:
    """Each instance receives the other's events of channels on two different masters, each channel in seq order."""
    async with asyncio.timeout(LIMIT_S):
        a, recorder_a = await instances.open()
        b, recorder_b = await instances.open()
        masters: dict[int, str] = {}
        for channel in CANDIDATES:
            masters.setdefault((await instances.master_of(a, channel)).port, channel)
        assert len(masters) >= 2
        first, second = list(masters.values())[:2]
        for broker in (a, b):
            await broker.subscribe(first)
            await broker.subscribe(second)

        from_a = [await publish(a, channel, n=n) for n in range(5) for channel in (first, second)]
        from_b = [await publish(b, channel, n=n) for n in range(5) for channel in (first, second)]
        published = from_a + from_b
        for recorder in (recorder_a, recorder_b):
            received = [await recorder.next_delivery() for _ in published]
            for channel in (first, second):
                mine = [d for d in received if d.channel == channel]
                assert [d.seq for d in mine] == list(range(1, 11))
                assert mine == [d for d in published if d.channel == channel]
        await a.send_control({"type": "revoke", "token_id": "t1"})
        for recorder in (recorder_a, recorder_b):
            assert await asyncio.wait_for(recorder.controls.get(), LIMIT_S) == {"type": "revoke", "token_id": "t1"}


async def test_a_restarted_master_loses_no_event_published_once_it_is_back(instances: Instances) -> None:
    """While a channel's master is down its publishes raise; once it is back (without its keys) the subscriber
    reports the reconnect and receives every event published after, in order, in the channel's new epoch."""
    async with asyncio.timeout(4 * LIMIT_S):
        a, _ = await instances.open()
        b, recorder = await instances.open()
        channel = CANDIDATES[0]
        await b.subscribe(channel)
        before = [await publish(a, channel, n=n) for n in range(3)]
        assert [(await recorder.next_delivery()).seq for _ in before] == [1, 2, 3]

        master = await instances.master_of(a, channel)
        await master.kill()
        with pytest.raises(RedisError):
            await publish(a, channel)
        await master.start()
        await instances.cluster.wait_ok()
        await recorder.wait_reconnected()

        after = [await publish(a, channel, n=n) for n in range(5)]
        assert [d.seq for d in after] == [1, 2, 3, 4, 5]
        assert after[0].epoch != before[0].epoch
        assert [await recorder.next_delivery() for _ in after] == after
        assert recorder.deliveries.empty()


async def test_a_subscribed_channel_follows_its_slot_to_another_master(own_instances: Instances) -> None:
    """Without this, a device on a channel whose slot moves would get none of its later events, and nothing tells it.

    Once the channel's slot and keys move to another master, the subscriber (not restarted)
    reports a reconnect; the history moved with the slot and the channel's seq and epoch go
    on, so the events published meanwhile can be resumed, and every event published after
    that is delivered live, in order.
    """
    async with asyncio.timeout(2 * LIMIT_S):
        a, _ = await own_instances.open()
        b, recorder = await own_instances.open()
        channel = CANDIDATES[0]
        await b.subscribe(channel)
        before = [await publish(a, channel, n=n) for n in range(3)]
        assert [await recorder.next_delivery() for _ in before] == before

        source = await own_instances.master_of(a, channel)
        target = next(node for node in own_instances.cluster.nodes if node is not source)
        await own_instances.cluster.move_slot(key_slot(a._state_key(channel).encode()), source, target)
        meanwhile = [await publish(a, channel, n=n) for n in range(3, 5)]
        await recorder.wait_reconnected()
        after = [await publish(a, channel, n=n) for n in range(5, 10)]
        assert (await own_instances.master_of(a, channel)).port == target.port

        published = before + meanwhile + after
        assert [d.seq for d in published] == list(range(1, 11))
        assert {d.epoch for d in published} == {before[0].epoch}
        assert await b.history(channel, 0, before[0].epoch) == published
        # Those published before the channel was subscribed again may or may not have come live; the rest must have.
        received = [await recorder.next_delivery()]
        while received[-1] != after[-1]:
            received.append(await recorder.next_delivery())
        assert received == published[published.index(received[0]) :]
        assert received[0].seq <= after[0].seq
        assert recorder.deliveries.empty()
