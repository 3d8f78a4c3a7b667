"""The Redis Cluster broker's receiving side: sharded pub/sub, one connection per master node.

A channel's frames are SPUBLISHed on a shard channel named with the channel as its hash
tag, so it lives on the master that owns the channel's keys. An instance keeps one
pub/sub connection per master and SSUBSCRIBEs there only to the channels with a local
subscriber, plus the control channel on the master that owns it. Each connection is kept
as redis_pubsub.py keeps its one: when it drops, stops answering pings, or the master
unsubscribes it (its slots moved), it reconnects with backoff, routes its channels again
by the cluster's current layout, subscribes them again and then tells the listener, which
resumes its channels from history.

redis-py's own ClusterPubSub reconnects a node's connection silently, which would hide
the events missed meanwhile; so the connections are kept here.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import defaultdict
from typing import Any

from redis.asyncio import Redis
from redis.asyncio.client import PubSub
from redis.asyncio.cluster import ClusterNode, RedisCluster
from redis.crc import key_slot
from redis.exceptions import ConnectionError, RedisError

from channels.brokers.base import BrokerListener
from channels.brokers.redis_pubsub import Subscription, close_pubsub, deliver_control, deliver_frame, listen
from channels.redis_clients import node_pubsub_client

log = logging.getLogger("channels.broker")

_RECONNECT_FIRST_DELAY_S = 0.1
_RECONNECT_MAX_DELAY_S = 2.0
_CONFIRM_TIMEOUT_S = 5.0


def shard_event_name(prefix: str, channel: str) -> str:
    """The shard channel a channel's event frames are published on: in the slot of the channel's keys."""
    return f"{prefix}:ev:{{{channel}}}"


def shard_control_name(prefix: str) -> str:
    """The shard channel control messages are published on: one fixed slot, which every instance listens to."""
    return f"{prefix}:{{control}}"


class ShardSubscriptions:
    """The channels this instance receives from a Redis Cluster, each on the master that owns its slot."""

    def __init__(self, cluster: RedisCluster, *, prefix: str, idle_ping_s: float) -> None:
        self._cluster = cluster
        self._prefix = prefix
        self._control_name = shard_control_name(prefix)
        self.idle_ping_s = idle_ping_s
        # Master node name -> its connection; a shard channel -> the master it is subscribed on.
        self._shards: dict[str, _Shard] = {}
        self._routes: dict[str, _Shard] = {}
        self._listener: BrokerListener | None = None

    async def start(self, listener: BrokerListener) -> None:
        """Connect to every master and start delivering to `listener`; raises when the cluster is unreachable."""
        self._listener = listener
        await self._cluster.initialize()
        try:
            await self._route(self._control_name, None)
            await asyncio.gather(*(self._shard(node) for node in self._cluster.get_primaries()))
        except BaseException:
            await self.close()
            raise

    async def close(self) -> None:
        """Stop every reader and close every connection."""
        shards, self._shards, self._routes = list(self._shards.values()), {}, {}
        for shard in shards:
            await shard.close()
        self._listener = None

    async def subscribe(self, channel: str) -> None:
        """Receive this channel's events; returns once its master confirms, so every later publish is delivered.

        Raises a redis ConnectionError when the master does not confirm in time; the channel is then not subscribed.
        """
        name = shard_event_name(self._prefix, channel)
        shard = self._routes.get(name)
        if shard is None:
            shard = await self._route(name, Subscription.of(channel))
        await shard.confirm(name)

    async def unsubscribe(self, channel: str) -> None:
        """Stop receiving this channel's events; any still in flight are dropped."""
        name = shard_event_name(self._prefix, channel)
        shard = self._routes.pop(name, None)
        if shard is not None:
            await shard.remove(name)

    async def _route(self, name: str, subscription: Subscription | None) -> _Shard:
        """Subscribe `name` on the master owning its slot (`subscription` None: the control channel)."""
        shard = await self._shard(self._owner(name))
        self._routes[name] = shard
        await shard.add(name, subscription)
        return shard

    async def _shard(self, node: ClusterNode) -> _Shard:
        """The connection to `node`, opened (and its reader started) the first time it is needed."""
        shard = self._shards.get(node.name)
        if shard is None:
            shard = self._shards[node.name] = _Shard(self, node)
            try:
                await shard.start()
            except BaseException:
                del self._shards[node.name]
                raise
        return shard

    async def rehome(self, shard: _Shard) -> None:
        """Before `shard` reconnects: learn the cluster's layout again and move its channels whose slot moved."""
        with contextlib.suppress(RedisError, OSError):
            await self._cluster.nodes_manager.initialize()
        for name, subscription in shard.held():
            try:
                owner = self._owner(name)
            except ConnectionError:
                continue  # no master serves its slot right now: try where it was
            if owner.name == shard.node.name:
                continue
            await shard.remove(name)
            target = self._shards.get(owner.name)
            if target is None:
                # A master new to this instance: its reader connects (and reports it) in the background.
                target = self._shards[owner.name] = _Shard(self, owner)
                target.start_reconnecting()
            self._routes[name] = target
            await target.add(name, subscription)

    def _owner(self, name: str) -> ClusterNode:
        """The master that owns the slot of `name`, as this client last learnt the layout."""
        node = self._cluster.get_node_from_key(name)
        if node is None:
            raise ConnectionError(f"no Redis Cluster master serves the slot of {name}")
        return node

    def listener(self) -> BrokerListener | None:
        """Where deliveries go; None once closed."""
        return self._listener

    def is_control(self, name: str) -> bool:
        """Whether `name` is the control channel."""
        return name == self._control_name


class _Shard:
    """One master's pub/sub connection and the shard channels subscribed on it, kept across drops."""

    def __init__(self, owner: ShardSubscriptions, node: ClusterNode) -> None:
        self._owner = owner
        self.node = node
        self._client: Redis = node_pubsub_client(node, name=f"{owner._prefix}:broker-pubsub")
        # Shard channel -> its subscription; None for the control channel (nothing to deliver per channel).
        self._names: dict[str, Subscription | None] = {}
        self._confirmed: dict[str, asyncio.Future[None]] = {}
        self._pubsub: PubSub | None = None
        self._reader: asyncio.Task[None] | None = None

    async def start(self) -> None:
        """Connect, subscribe what is held, and start reading; raises when the master is unreachable."""
        pubsub = await self._connect()
        self._reader = asyncio.create_task(self._read(pubsub), name=f"redis-shard-reader-{self.node.name}")

    def start_reconnecting(self) -> None:
        """Start reading without waiting for the first connection, which is reported as a reconnect."""
        self._reader = asyncio.create_task(self._read(None), name=f"redis-shard-reader-{self.node.name}")

    async def close(self) -> None:
        """Stop the reader and close the connection."""
        if self._reader is not None:
            self._reader.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._reader
            self._reader = None
        if self._pubsub is not None:
            with contextlib.suppress(RedisError, OSError):
                await close_pubsub(self._pubsub)
            self._pubsub = None
        await self._client.aclose()

    def held(self) -> list[tuple[str, Subscription | None]]:
        """The shard channels subscribed here."""
        return list(self._names.items())

    async def add(self, name: str, subscription: Subscription | None) -> None:
        """Subscribe `name` here; a broken connection subscribes it when it reconnects."""
        self._names[name] = subscription
        self._confirmed[name] = asyncio.get_running_loop().create_future()
        pubsub = self._pubsub
        if pubsub is not None:
            with contextlib.suppress(RedisError, OSError):
                await pubsub.ssubscribe(name)

    async def confirm(self, name: str) -> None:
        """Return once the master confirms `name`; after _CONFIRM_TIMEOUT_S give it up and raise ConnectionError."""
        confirmed = self._confirmed.get(name)
        if confirmed is None:
            raise ConnectionError(f"the subscription to {name} was moved before Redis confirmed it")
        try:
            async with asyncio.timeout(_CONFIRM_TIMEOUT_S):
                await asyncio.shield(confirmed)
        except TimeoutError:
            if self._confirmed.get(name) is confirmed:
                self._owner._routes.pop(name, None)
                await self.remove(name)
            raise ConnectionError(f"Redis did not confirm the subscription to {name}") from None

    async def remove(self, name: str) -> None:
        """Unsubscribe `name` here; a broken connection forgets it anyway."""
        if self._names.pop(name, 0) == 0:
            return
        self._confirmed.pop(name, None)
        pubsub = self._pubsub
        if pubsub is not None:
            with contextlib.suppress(RedisError, OSError):
                await pubsub.sunsubscribe(name)

    async def _connect(self) -> PubSub:
        """A new connection subscribed to every shard channel held here, one SSUBSCRIBE per slot."""
        pubsub = self._client.pubsub()
        try:
            await pubsub.connect()  # type: ignore[no-untyped-call]  # redis-py leaves it unannotated
            # Published before subscribing: a concurrent add() either is in this list or sends its own.
            self._pubsub = pubsub
            by_slot: defaultdict[int, list[str]] = defaultdict(list)
            for name in self._names:
                by_slot[key_slot(name.encode())].append(name)
            for names in by_slot.values():
                await pubsub.ssubscribe(*names)
            # Redis runs a connection's commands in order: the last confirmation means every channel is live.
            waiting = {name for names in by_slot.values() for name in names}
            async with asyncio.timeout(_CONFIRM_TIMEOUT_S):
                while waiting:
                    message = await pubsub.get_message(timeout=None)
                    if message is not None:
                        waiting.discard(message["channel"])
                        self._dispatch(message)
            return pubsub
        except BaseException:
            self._pubsub = None
            with contextlib.suppress(RedisError, OSError):
                await close_pubsub(pubsub)
            raise

    async def _read(self, pubsub: PubSub | None) -> None:
        """Deliver messages for as long as the broker runs, reconnecting whenever the connection is lost."""
        while True:
            try:
                if pubsub is not None:
                    await listen(pubsub, self._owner.idle_ping_s, self._dispatch)
            except (RedisError, OSError) as exc:
                log.warning(
                    "broker shard connection lost; reconnecting", extra={"node": self.node.name, "reason": str(exc)}
                )
            except Exception:
                # Whatever went wrong, this instance must not stop receiving this master's events for good.
                log.exception("broker shard reader failed; reconnecting")
            self._pubsub = None
            if pubsub is not None:
                with contextlib.suppress(RedisError, OSError):
                    await close_pubsub(pubsub)
            pubsub = await self._reconnect()
            listener = self._owner.listener()
            if listener is not None:
                try:
                    listener.reconnected()
                except Exception:
                    log.exception("broker listener failed on reconnected")

    async def _reconnect(self) -> PubSub:
        """Connect again, waiting 0.1 s before the first try and doubling up to 2 s between tries."""
        delay = _RECONNECT_FIRST_DELAY_S
        while True:
            await asyncio.sleep(delay)
            await self._owner.rehome(self)
            try:
                return await self._connect()
            except (RedisError, OSError) as exc:
                log.warning("broker shard reconnect failed", extra={"node": self.node.name, "reason": str(exc)})
                delay = min(delay * 2, _RECONNECT_MAX_DELAY_S)

    def _dispatch(self, message: dict[str, Any]) -> None:
        """Hand one message to the listener; a failing listener never stops the reader."""
        kind = message["type"]
        name = str(message["channel"])
        if kind == "ssubscribe":
            confirmed = self._confirmed.get(name)
            if confirmed is not None and not confirmed.done():
                confirmed.set_result(None)
            return
        if kind == "sunsubscribe" and name in self._names:
            # Not asked for: the master gave the slot away, so the channel must be subscribed where it went.
            raise ConnectionError(f"Redis unsubscribed {name}: its slot moved")
        listener = self._owner.listener()
        if kind != "smessage" or listener is None:
            return
        data = message["data"]
        try:
            if self._owner.is_control(name):
                deliver_control(listener, data)
                return
            subscription = self._names.get(name)
            if subscription is not None:
                deliver_frame(listener, subscription, data)
        except Exception:
            log.exception("broker listener failed on a message of %s", name)
