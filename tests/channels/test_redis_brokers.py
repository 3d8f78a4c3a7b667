"""What only the Redis brokers have: several instances sharing channels, lost history or counters, a
pub/sub connection that drops or goes silent (through a TCP proxy), forgotten scripts and a full connection pool.

The tests use a real server (`TEST_REDIS_URL`, database 15) under a prefix of their own.
"""

from __future__ import annotations

import asyncio

import pytest
from redis.asyncio import Redis
from redis.exceptions import ConnectionError as RedisConnectionError

from channels.brokers import Outgoing
from channels.redis_clients import MAX_CONNECTIONS
from tests.channels.broker_helpers import KITCHEN, LIMIT_S, TS, Brokers, evict_keys, publish
from tests.conftest import REDIS_URL

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
        await evict_keys(redis_brokers.prefix, "*")
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
        await evict_keys(redis_brokers.prefix, f"ch:{KITCHEN}")
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


async def test_a_burst_beyond_the_connection_pool_waits_instead_of_failing(redis_brokers: Brokers) -> None:
    """Far more concurrent calls than the pool holds connections (a crowd saying hello) all succeed, in turn."""
    async with asyncio.timeout(LIMIT_S):
        broker, _ = await redis_brokers.open()
        burst = 6 * MAX_CONNECTIONS
        positions = await asyncio.gather(*(broker.position(f"device:{n}") for n in range(burst)))
        assert [seq for seq, _ in positions] == [0] * burst
