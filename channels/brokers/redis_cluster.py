"""The Redis Cluster broker: redis.py's scripts and guarantees, with each channel's keys in one slot.

Keys, all under the broker's prefix, with the channel as their hash tag:

    {prefix}:ch:{{channel}}              hash: `seq` and `epoch`, as redis.py's
    {prefix}:hist:{{channel}}            the channel's history, as redis.py's
    {prefix}:eid:{{channel}}:{event_id}  a published event id, in its channel's slot
    {prefix}:ev:{{channel}}              shard channel (SPUBLISH): each event's frame
    {prefix}:{{control}}                 shard channel: control messages, in one fixed slot

So `prefix:ch:{branch:1:kitchen}`, `prefix:hist:{branch:1:kitchen}` and the channel's
event ids share a slot, and the publish script runs on the one master owning it, where
its SPUBLISH reaches the instances subscribed there. A batch is split by slot: one script
call per slot, each in the batch's order, so every channel keeps its order. An event id
is deduplicated within its channel, which is where an outbox row always publishes it.
Channel names never hold braces (channels/names.py), so the tag is the whole name.
"""

from __future__ import annotations

import asyncio
import json
from collections import defaultdict
from collections.abc import Sequence
from typing import Any

from redis.asyncio.cluster import RedisCluster
from redis.crc import key_slot

from channels.brokers.base import Outgoing
from channels.brokers.redis import Receiver, RedisBroker
from channels.brokers.redis_shards import ShardSubscriptions, shard_control_name, shard_event_name


class RedisClusterBroker(RedisBroker):
    """Channels in a Redis Cluster, shared by every instance using the same cluster and prefix."""

    publish_command = "SPUBLISH"

    def __init__(
        self,
        redis: RedisCluster,
        *,
        history_size: int,
        history_ttl_s: int,
        prefix: str = "kiosk",
        idle_ping_s: float = 5.0,
    ) -> None:
        """A broker over the cluster client `redis` (decoding responses); it never closes that client."""
        self._cluster = redis
        super().__init__(
            redis, history_size=history_size, history_ttl_s=history_ttl_s, prefix=prefix, idle_ping_s=idle_ping_s
        )

    def _receiver(self, idle_ping_s: float) -> Receiver:
        """This instance's receiving side: one sharded pub/sub connection per master."""
        return ShardSubscriptions(self._cluster, prefix=self._prefix, idle_ping_s=idle_ping_s)

    def _state_key(self, channel: str) -> str:
        return f"{self._prefix}:ch:{{{channel}}}"

    def _history_key(self, channel: str) -> str:
        return f"{self._prefix}:hist:{{{channel}}}"

    def _event_id_key(self, outgoing: Outgoing) -> str:
        return f"{self._prefix}:eid:{{{outgoing.channel}}}:{outgoing.event_id}"

    def _pins_key(self, channel: str) -> str:
        return f"{self._prefix}:pin:{{{channel}}}"

    def _event_name(self, channel: str) -> str:
        return shard_event_name(self._prefix, channel)

    async def publish_many(self, events: Sequence[Outgoing]) -> None:
        """Publish `events` with one script call per slot, each keeping the batch's order.

        The calls run at once; if one fails the error is raised (the others' events are out,
        and publishing them again is deduplicated).
        """
        by_slot: defaultdict[int, list[Outgoing]] = defaultdict(list)
        for outgoing in events:
            by_slot[key_slot(self._state_key(outgoing.channel).encode())].append(outgoing)
        await asyncio.gather(*(self._publish_batch(batch) for batch in by_slot.values()))

    async def send_control(self, message: dict[str, Any]) -> None:
        """Publish a control message to every instance, this one included (they all listen to its shard)."""
        await self._cluster.spublish(shard_control_name(self._prefix), json.dumps(message))
