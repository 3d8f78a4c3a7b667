"""The Redis broker's publishing side: many server instances share each channel's order, history and fan-out.

Keys, all under the broker's prefix:

    {prefix}:ch:{channel}     hash: `seq` (the last seq) and `epoch`; losing it starts a new epoch
    {prefix}:hist:{channel}   sorted set of "<publish ms>|<frame>" scored by seq, capped, expiring when idle
    {prefix}:eid:{event_id}   "<seq>:<epoch>:<channel>" of a published event id, for 24 hours
    {prefix}:pin:{channel}    hash: `at` ("<seq>:<epoch>") and the values pinned at that position
    {prefix}:ev:{channel}     pub/sub: each event's frame
    {prefix}:control          pub/sub: control messages as JSON objects

Publishing is one Lua script, so dedupe, seq, history and PUBLISH happen as one step (a command's
events all in one). Receiving, over the instance's one pub/sub connection, is redis_pubsub.py's.
The Redis Cluster broker (redis_cluster.py) runs the same scripts over keys of its own naming.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from typing import Any, Protocol

from redis.asyncio import Redis
from redis.asyncio.cluster import RedisCluster

from channels.brokers.base import (
    MAX_PINS,
    Broker,
    BrokerListener,
    Delivery,
    Outgoing,
    event_frame,
    event_tail,
    new_epoch,
)
from channels.brokers.redis_pubsub import Subscriptions, control_name, event_name

log = logging.getLogger("channels.broker")

# An event id is remembered as long as an outbox row can come back for another publish.
_DEDUPE_TTL_S = 86_400

# One event: state hash, history and event id keys; new epoch, channel, channel JSON, tail, pub/sub name; and the
# history size, history TTL s, dedupe TTL s and the command that publishes (PUBLISH, or SPUBLISH on a cluster).
# Returns seq, epoch, the event's first channel, its frame (false: rebuild it from the tail), and 1 when this
# publish started a new epoch.  Epochs are URL-safe base64: quoting them needs no escaping.
_PUBLISH_ONE = """
local function publish(state, hist, eid, new_epoch, channel, channel_json, tail, pubsub, size, ttl, dedupe_ttl,
    publish_command)
  local seen = redis.call('GET', eid)
  if seen then
    local seq, epoch, first = string.match(seen, '^(%d+):([^:]*):(.*)$')
    local frame = false
    if first == channel and epoch == redis.call('HGET', state, 'epoch') then
      local kept = redis.call('ZRANGEBYSCORE', hist, seq, seq)
      if kept[1] then
        frame = string.sub(kept[1], string.find(kept[1], '|', 1, true) + 1)
      end
    end
    return {tonumber(seq), epoch, first, frame, 0}
  end
  local started = redis.call('HSETNX', state, 'epoch', new_epoch)
  if started == 1 then
    -- History left over from the lost epoch must not be served as this one's.
    redis.call('DEL', hist)
  end
  local epoch = redis.call('HGET', state, 'epoch')
  local seq = redis.call('HINCRBY', state, 'seq', 1)
  local frame = '{"type":"event","channel":' .. channel_json .. ',"seq":' .. seq
    .. ',"epoch":"' .. epoch .. '",' .. tail
  local now = redis.call('TIME')
  local now_ms = tonumber(now[1]) * 1000 + math.floor(tonumber(now[2]) / 1000)
  redis.call('ZADD', hist, seq, now_ms .. '|' .. frame)
  redis.call('ZREMRANGEBYRANK', hist, 0, -1 - tonumber(size))
  redis.call('EXPIRE', hist, ttl)
  redis.call('SET', eid, seq .. ':' .. epoch .. ':' .. channel, 'EX', dedupe_ttl)
  redis.call(publish_command, pubsub, frame)
  return {seq, epoch, channel, frame, started}
end
"""
# KEYS: the event's three keys.  ARGV: its five arguments, then the four settings.  Returns `publish`'s result.
_PUBLISH = (
    _PUBLISH_ONE
    + "return publish(KEYS[1], KEYS[2], KEYS[3], ARGV[1], ARGV[2], ARGV[3], ARGV[4], ARGV[5],"
    + " ARGV[6], ARGV[7], ARGV[8], ARGV[9])"
)
# KEYS: three per event.  ARGV: the four settings, then five per event.  Publishes them in order, as one step (a
# command's events commit together); returns per event the epoch, the channel and whether it started the epoch.
_PUBLISH_MANY = (
    _PUBLISH_ONE
    + """
local results = {}
for i = 0, #KEYS / 3 - 1 do
  local k, a = i * 3, 4 + i * 5
  local r = publish(KEYS[k + 1], KEYS[k + 2], KEYS[k + 3], ARGV[a + 1], ARGV[a + 2], ARGV[a + 3], ARGV[a + 4],
    ARGV[a + 5], ARGV[1], ARGV[2], ARGV[3], ARGV[4])
  results[#results + 1] = {r[2], r[3], r[5]}
end
return results
"""
)

# The last seq and the epoch of a channel (state hash, history), starting the epoch `new_epoch` if it has none.
_POSITION_OF = """
local function position(state, hist, new_epoch)
  if redis.call('HSETNX', state, 'epoch', new_epoch) == 1 then
    redis.call('DEL', hist)
  end
  local kept = redis.call('HMGET', state, 'seq', 'epoch')
  return {tonumber(kept[1]) or 0, kept[2]}
end
"""
# The frames after seq `after` of epoch `epoch`, in order, or false when they cannot all be given: another epoch, a
# seq from the future, or the next one gone or older than `ttl_ms`.
_HISTORY_OF = """
local function history(state, hist, after, epoch, ttl_ms)
  local kept_state = redis.call('HMGET', state, 'seq', 'epoch')
  local last = tonumber(kept_state[1]) or 0
  if kept_state[2] ~= epoch or after > last then
    return false
  end
  local kept = redis.call('ZRANGEBYSCORE', hist, after + 1, '+inf', 'WITHSCORES')
  if #kept == 0 then
    if after == last then
      return {}
    end
    return false
  end
  if tonumber(kept[2]) ~= after + 1 then
    return false
  end
  local now = redis.call('TIME')
  local now_ms = tonumber(now[1]) * 1000 + math.floor(tonumber(now[2]) / 1000)
  local bar = string.find(kept[1], '|', 1, true)
  if now_ms - tonumber(string.sub(kept[1], 1, bar - 1)) > ttl_ms then
    return false
  end
  local frames = {}
  for i = 1, #kept, 2 do
    frames[#frames + 1] = string.sub(kept[i], string.find(kept[i], '|', 1, true) + 1)
  end
  return frames
end
"""
# KEYS: state hash, history.  ARGV: new epoch.
_POSITION = _POSITION_OF + "return position(KEYS[1], KEYS[2], ARGV[1])"
# KEYS: state hash, history.  ARGV: after seq, epoch, history TTL ms.
_HISTORY = _HISTORY_OF + "return history(KEYS[1], KEYS[2], tonumber(ARGV[1]), ARGV[2], tonumber(ARGV[3]))"
# KEYS: state hash, history.  ARGV: new epoch, after seq, epoch, history TTL ms.  Returns the position and the frames
# after the seq when that epoch is the channel's and they can all be given (else false): a resume in one call.
_RESUME = (
    _POSITION_OF
    + _HISTORY_OF
    + """
local at = position(KEYS[1], KEYS[2], ARGV[1])
if at[2] ~= ARGV[3] then
  return {at[1], at[2], false}
end
return {at[1], at[2], history(KEYS[1], KEYS[2], tonumber(ARGV[2]), ARGV[3], tonumber(ARGV[4]))}
"""
)


# KEYS: state hash, history, pins.  ARGV: new epoch, key.  Returns the position and the value pinned under the key
# when the pins are of that position (else false).
_PINNED = (
    _POSITION_OF
    + """
local at = position(KEYS[1], KEYS[2], ARGV[1])
local kept = redis.call('HMGET', KEYS[3], 'at', ARGV[2])
if kept[1] ~= at[1] .. ':' .. at[2] then
  return {at[1], at[2], false}
end
return {at[1], at[2], kept[2]}
"""
)
# KEYS: pins.  ARGV: position ("<seq>:<epoch>"), key, value, TTL s.  Pins of another position are dropped first,
# and so are all once a channel holds many: keys that are never read again go.
_PIN = (
    """
if redis.call('HGET', KEYS[1], 'at') ~= ARGV[1] or redis.call('HLEN', KEYS[1]) > """
    + str(MAX_PINS)
    + """ then
  redis.call('DEL', KEYS[1])
  redis.call('HSET', KEYS[1], 'at', ARGV[1])
end
redis.call('HSET', KEYS[1], ARGV[2], ARGV[3])
redis.call('EXPIRE', KEYS[1], tonumber(ARGV[4]))
"""
)


class Receiver(Protocol):
    """The receiving side of a Redis broker: the channels this instance listens to, kept across lost connections."""

    async def start(self, listener: BrokerListener) -> None:
        """Connect and start delivering to `listener`; raises when Redis is unreachable."""

    async def close(self) -> None:
        """Stop delivering and close the connections."""

    async def subscribe(self, channel: str) -> None:
        """Receive this channel's events once Redis confirms; raises a redis ConnectionError when it does not."""

    async def unsubscribe(self, channel: str) -> None:
        """Stop receiving this channel's events."""


class RedisBroker(Broker):
    """Channels in Redis, shared by every instance using the same Redis and prefix."""

    # How the publish script fans an event out.
    publish_command = "PUBLISH"

    def __init__(
        self,
        redis: Redis | RedisCluster,
        *,
        history_size: int,
        history_ttl_s: int,
        prefix: str = "kiosk",
        idle_ping_s: float = 5.0,
    ) -> None:
        """A broker over `redis` (a client that decodes responses); it never closes that client."""
        super().__init__(history_size=history_size, history_ttl_s=history_ttl_s)
        self._prefix = prefix
        self._redis = redis
        self._subscriptions = self._receiver(idle_ping_s)
        self._publish_script = redis.register_script(_PUBLISH)
        self._publish_many_script = redis.register_script(_PUBLISH_MANY)
        self._settings: list[int | str] = [self.history_size, self.history_ttl_s, _DEDUPE_TTL_S, self.publish_command]
        self._position_script = redis.register_script(_POSITION)
        self._history_script = redis.register_script(_HISTORY)
        self._resume_script = redis.register_script(_RESUME)
        self._pinned_script = redis.register_script(_PINNED)
        self._pin_script = redis.register_script(_PIN)

    def _receiver(self, idle_ping_s: float) -> Receiver:
        """This instance's receiving side: one pub/sub connection."""
        assert isinstance(self._redis, Redis)
        return Subscriptions(self._redis, prefix=self._prefix, idle_ping_s=idle_ping_s)

    def _state_key(self, channel: str) -> str:
        return f"{self._prefix}:ch:{channel}"

    def _history_key(self, channel: str) -> str:
        return f"{self._prefix}:hist:{channel}"

    def _event_id_key(self, outgoing: Outgoing) -> str:
        return f"{self._prefix}:eid:{outgoing.event_id}"

    def _pins_key(self, channel: str) -> str:
        return f"{self._prefix}:pin:{channel}"

    def _event_name(self, channel: str) -> str:
        return event_name(self._prefix, channel)

    async def start(self, listener: BrokerListener) -> None:
        """Open the pub/sub connection and start delivering to `listener`; raises when Redis is unreachable."""
        await self._subscriptions.start(listener)

    async def close(self) -> None:
        """Stop receiving and close the pub/sub connection (the shared client stays open)."""
        await self._subscriptions.close()

    async def publish(self, channel: str, event_id: str, event: str, data_json: str, ts: str) -> Delivery:
        """Assign the next seq, keep the event in history and publish it; an event id seen before returns its first.

        Raises a redis ConnectionError while Redis is down: nothing is queued here, the caller retries.
        """
        outgoing = Outgoing(channel, event_id, event, data_json, ts)
        keys, args = self._publish_keys(outgoing), self._publish_args(outgoing, new_epoch())
        result = await self._publish_script(keys=keys, args=[*args, *self._settings])
        seq, epoch, first_channel, frame, started = result
        self._note_started(epoch, first_channel, started)
        # A duplicate whose frame has left the history is rebuilt: an outbox row always carries the same tail.
        return Delivery(first_channel, seq, epoch, frame or event_frame(first_channel, seq, epoch, args[3]))

    async def publish_many(self, events: Sequence[Outgoing]) -> None:
        """Publish `events` in order with one script call: one round trip, and one step in Redis."""
        if events:
            await self._publish_batch(events)

    async def _publish_batch(self, events: Sequence[Outgoing]) -> None:
        """Publish `events` in order with one script call (all their keys in one slot, on a cluster)."""
        keys = [key for outgoing in events for key in self._publish_keys(outgoing)]
        # One candidate epoch for the batch: it is only taken by a channel that has none, and two channels
        # starting with the same name is harmless (an epoch is compared per channel).
        epoch = new_epoch()
        args = [*self._settings, *(arg for outgoing in events for arg in self._publish_args(outgoing, epoch))]
        for epoch, channel, started in await self._publish_many_script(keys=keys, args=args):
            self._note_started(epoch, channel, started)

    def _publish_keys(self, outgoing: Outgoing) -> list[str]:
        """The publish script's keys for one event: state, history, event id."""
        channel = outgoing.channel
        return [self._state_key(channel), self._history_key(channel), self._event_id_key(outgoing)]

    def _publish_args(self, outgoing: Outgoing, epoch: str) -> list[Any]:
        """The publish script's arguments for one event, `epoch` the one to start if its channel has none (its
        tail is argument 3)."""
        channel = outgoing.channel
        tail = event_tail(outgoing.event, outgoing.data_json, outgoing.ts)
        return [epoch, channel, json.dumps(channel), tail, self._event_name(channel)]

    @staticmethod
    def _note_started(epoch: str, channel: str, started: int) -> None:
        if started:
            log.info("channel history started", extra={"channel": channel, "epoch": epoch})

    async def position(self, channel: str) -> tuple[int, str]:
        """The last seq and epoch of `channel`; a channel never published gets its epoch now."""
        seq, epoch = await self._position_script(
            keys=[self._state_key(channel), self._history_key(channel)], args=[new_epoch()]
        )
        return int(seq), str(epoch)

    async def history(self, channel: str, after_seq: int, epoch: str) -> list[Delivery] | None:
        """Kept events after `after_seq`, or None when resuming from there is impossible."""
        frames = await self._history_script(
            keys=[self._state_key(channel), self._history_key(channel)],
            args=[after_seq, epoch, self.history_ttl_s * 1000],
        )
        if frames is None:
            return None
        return [Delivery(channel, after_seq + 1 + index, epoch, frame) for index, frame in enumerate(frames)]

    async def resume(self, channel: str, since: tuple[int, str] | None) -> tuple[int, str, list[Delivery] | None]:
        """The position of `channel` and the kept events after `since`, read by one script call."""
        if since is None:
            seq, epoch = await self.position(channel)
            return seq, epoch, None
        after, resumed_epoch = since
        seq, epoch, frames = await self._resume_script(
            keys=[self._state_key(channel), self._history_key(channel)],
            args=[new_epoch(), after, resumed_epoch, self.history_ttl_s * 1000],
        )
        if frames is None:
            return int(seq), str(epoch), None
        return int(seq), str(epoch), [Delivery(channel, after + 1 + n, epoch, frame) for n, frame in enumerate(frames)]

    async def pinned(self, channel: str, key: str) -> tuple[str | None, tuple[int, str]]:
        """The value pinned under `key` at the channel's current position, and that position, read by one script."""
        seq, epoch, value = await self._pinned_script(
            keys=[self._state_key(channel), self._history_key(channel), self._pins_key(channel)],
            args=[new_epoch(), key],
        )
        return (None if value is None else str(value)), (int(seq), str(epoch))

    async def pin(self, channel: str, at: tuple[int, str], key: str, value: str, ttl_s: int) -> None:
        """Pin `value` to position `at` of `channel` for at most `ttl_s` seconds."""
        await self._pin_script(keys=[self._pins_key(channel)], args=[f"{at[0]}:{at[1]}", key, value, ttl_s])

    async def subscribe(self, channel: str) -> None:
        """Receive this channel's events; returns once Redis confirms, so every later publish is delivered.

        Raises a redis ConnectionError when Redis does not confirm in time; the channel is then not subscribed.
        """
        await self._subscriptions.subscribe(channel)

    async def unsubscribe(self, channel: str) -> None:
        """Stop receiving this channel's events; any still in flight are dropped."""
        await self._subscriptions.unsubscribe(channel)

    async def send_control(self, message: dict[str, Any]) -> None:
        """Publish a control message to every instance, this one included."""
        await self._redis.publish(control_name(self._prefix), json.dumps(message))

    async def ping(self) -> None:
        """Raise unless Redis answers."""
        await self._redis.ping()
