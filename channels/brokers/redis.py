"""The Redis broker: many server instances share each channel's order, history and fan-out.

Keys, all under the broker's prefix:

    {prefix}:ch:{channel}     hash: `seq` (the last seq) and `epoch`; losing it starts a new epoch
    {prefix}:hist:{channel}   sorted set of "<publish ms>|<frame>" scored by seq, capped, expiring when idle
    {prefix}:eid:{event_id}   "<seq>:<epoch>:<channel>" of a published event id, for 24 hours
    {prefix}:ev:{channel}     pub/sub: each event's frame
    {prefix}:control          pub/sub: control messages as JSON objects

Publishing is one Lua script, so dedupe, seq, history and PUBLISH happen as one step (a command's
events all in one).
Each instance keeps one pub/sub connection. When it drops, or stops answering pings,
the reader reconnects with backoff, subscribes every channel again and then tells the
listener, which resumes its channels from history: events published meanwhile were
not delivered live.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from redis.asyncio import Redis
from redis.asyncio.client import PubSub
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import ConnectionError, RedisError

from channels.brokers.base import Broker, BrokerListener, Delivery, Outgoing, event_frame, event_tail, new_epoch
from channels.redis_clients import COMMAND_TIMEOUT_S, redis_client

log = logging.getLogger("channels.broker")

# An event id is remembered as long as an outbox row can come back for another publish.
_DEDUPE_TTL_S = 86_400
_RECONNECT_FIRST_DELAY_S = 0.1
_RECONNECT_MAX_DELAY_S = 2.0
_CONNECT_TIMEOUT_S = 2.0
_CONFIRM_TIMEOUT_S = 5.0
# A frame starts `{"type":"event","channel":<channel JSON>,"seq":`; see base.event_frame.
_FRAME_HEAD = '{"type":"event","channel":'
_SEQ_KEY = ',"seq":'
_EPOCH_KEY = ',"epoch":"'

# One event: state hash, history and event id keys; new epoch, channel, channel JSON, tail, pub/sub name; and the
# history size, history TTL s and dedupe TTL s.  Returns seq, epoch, the event's first channel, its frame (false:
# rebuild it from the tail), and 1 when this publish started a new epoch.  Epochs are URL-safe base64: quoting them
# needs no escaping.
_PUBLISH_ONE = """
local function publish(state, hist, eid, new_epoch, channel, channel_json, tail, pubsub, size, ttl, dedupe_ttl)
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
  redis.call('PUBLISH', pubsub, frame)
  return {seq, epoch, channel, frame, started}
end
"""
# KEYS: the event's three keys.  ARGV: its five arguments, then the three sizes.  Returns `publish`'s result.
_PUBLISH = (
    _PUBLISH_ONE
    + "return publish(KEYS[1], KEYS[2], KEYS[3], ARGV[1], ARGV[2], ARGV[3], ARGV[4], ARGV[5],"
    + " ARGV[6], ARGV[7], ARGV[8])"
)
# KEYS: three per event.  ARGV: the three sizes, then five per event.  Publishes them in order, as one step (a
# command's events commit together); returns per event the epoch, the channel and whether it started the epoch.
_PUBLISH_MANY = (
    _PUBLISH_ONE
    + """
local results = {}
for i = 0, #KEYS / 3 - 1 do
  local k, a = i * 3, 3 + i * 5
  local r = publish(KEYS[k + 1], KEYS[k + 2], KEYS[k + 3], ARGV[a + 1], ARGV[a + 2], ARGV[a + 3], ARGV[a + 4],
    ARGV[a + 5], ARGV[1], ARGV[2], ARGV[3])
  results[#results + 1] = {r[2], r[3], r[5]}
end
return results
"""
)

# KEYS: state hash, history.  ARGV: new epoch.  Returns the last seq and the epoch, starting one if there is none.
_POSITION = """
if redis.call('HSETNX', KEYS[1], 'epoch', ARGV[1]) == 1 then
  redis.call('DEL', KEYS[2])
end
local state = redis.call('HMGET', KEYS[1], 'seq', 'epoch')
return {tonumber(state[1]) or 0, state[2]}
"""

# KEYS: state hash, history.  ARGV: after seq, epoch, history TTL ms.  Returns the frames after the seq, in order,
# or false when they cannot all be given: another epoch, a seq from the future, or the next one gone or too old.
_HISTORY = """
local state = redis.call('HMGET', KEYS[1], 'seq', 'epoch')
local last = tonumber(state[1]) or 0
local after = tonumber(ARGV[1])
if state[2] ~= ARGV[2] or after > last then
  return false
end
local kept = redis.call('ZRANGEBYSCORE', KEYS[2], after + 1, '+inf', 'WITHSCORES')
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
if now_ms - tonumber(string.sub(kept[1], 1, bar - 1)) > tonumber(ARGV[3]) then
  return false
end
local frames = {}
for i = 1, #kept, 2 do
  frames[#frames + 1] = string.sub(kept[i], string.find(kept[i], '|', 1, true) + 1)
end
return frames
"""


@dataclass(slots=True)
class _Subscription:
    """A channel this instance receives, and where its frames hold the seq."""

    channel: str
    seq_at: int
    confirmed: asyncio.Future[None] = field(default_factory=lambda: asyncio.get_running_loop().create_future())


class RedisBroker(Broker):
    """Channels in Redis, shared by every instance using the same Redis and prefix."""

    def __init__(
        self,
        url: str,
        *,
        history_size: int,
        history_ttl_s: int,
        prefix: str = "kiosk",
        idle_ping_s: float = 5.0,
    ) -> None:
        super().__init__(history_size=history_size, history_ttl_s=history_ttl_s)
        self._prefix = prefix
        self._control_name = f"{prefix}:control"
        # How long the pub/sub connection may be quiet before a ping; a ping unanswered as long means it is gone.
        self._idle_ping_s = idle_ping_s
        # One quick retry covers a pooled connection that died while idle; an outage still raises at once.
        self._redis = redis_client(
            url,
            wait_s=COMMAND_TIMEOUT_S,
            decode_responses=True,
            socket_connect_timeout=_CONNECT_TIMEOUT_S,
            socket_timeout=COMMAND_TIMEOUT_S,
            health_check_interval=30,
            retry=Retry(NoBackoff(), 1),
        )
        # No retries on the pub/sub connection: a silent reconnect inside redis-py would hide missed events.
        self._pubsub_client = Redis.from_url(
            url,
            decode_responses=True,
            socket_connect_timeout=_CONNECT_TIMEOUT_S,
            socket_timeout=COMMAND_TIMEOUT_S,
            retry=Retry(NoBackoff(), 0),
            client_name=f"{prefix}:broker-pubsub",
        )
        self._publish_script = self._redis.register_script(_PUBLISH)
        self._publish_many_script = self._redis.register_script(_PUBLISH_MANY)
        self._sizes = [self.history_size, self.history_ttl_s, _DEDUPE_TTL_S]
        self._position_script = self._redis.register_script(_POSITION)
        self._history_script = self._redis.register_script(_HISTORY)
        self._subscriptions: dict[str, _Subscription] = {}
        self._pubsub: PubSub | None = None
        self._listener: BrokerListener | None = None
        self._reader: asyncio.Task[None] | None = None

    def _state_key(self, channel: str) -> str:
        return f"{self._prefix}:ch:{channel}"

    def _history_key(self, channel: str) -> str:
        return f"{self._prefix}:hist:{channel}"

    def _event_name(self, channel: str) -> str:
        return f"{self._prefix}:ev:{channel}"

    async def start(self, listener: BrokerListener) -> None:
        """Open the pub/sub connection and start delivering to `listener`; raises when Redis is unreachable."""
        self._listener = listener
        pubsub = await self._connect()
        self._reader = asyncio.create_task(self._read(pubsub), name="redis-broker-reader")

    async def close(self) -> None:
        """Stop the reader and close both connections."""
        if self._reader is not None:
            self._reader.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._reader
            self._reader = None
        if self._pubsub is not None:
            await _close(self._pubsub)
            self._pubsub = None
        self._listener = None
        await self._pubsub_client.aclose()
        await self._redis.aclose()

    async def publish(self, channel: str, event_id: str, event: str, data_json: str, ts: str) -> Delivery:
        """Assign the next seq, keep the event in history and publish it; an event id seen before returns its first.

        Raises a redis ConnectionError while Redis is down: nothing is queued here, the caller retries.
        """
        outgoing = Outgoing(channel, event_id, event, data_json, ts)
        keys, args = self._publish_keys(outgoing), self._publish_args(outgoing, new_epoch())
        result = await self._publish_script(keys=keys, args=[*args, *self._sizes])
        seq, epoch, first_channel, frame, started = result
        self._note_started(epoch, first_channel, started)
        # A duplicate whose frame has left the history is rebuilt: an outbox row always carries the same tail.
        return Delivery(first_channel, seq, epoch, frame or event_frame(first_channel, seq, epoch, args[3]))

    async def publish_many(self, events: Sequence[Outgoing]) -> None:
        """Publish `events` in order with one script call: one round trip, and one step in Redis."""
        if not events:
            return
        keys = [key for outgoing in events for key in self._publish_keys(outgoing)]
        # One candidate epoch for the batch: it is only taken by a channel that has none, and two channels
        # starting with the same name is harmless (an epoch is compared per channel).
        epoch = new_epoch()
        args = [*self._sizes, *(arg for outgoing in events for arg in self._publish_args(outgoing, epoch))]
        for epoch, channel, started in await self._publish_many_script(keys=keys, args=args):
            self._note_started(epoch, channel, started)

    def _publish_keys(self, outgoing: Outgoing) -> list[str]:
        """The publish script's keys for one event: state, history, event id."""
        channel = outgoing.channel
        return [self._state_key(channel), self._history_key(channel), f"{self._prefix}:eid:{outgoing.event_id}"]

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

    async def subscribe(self, channel: str) -> None:
        """Receive this channel's events; returns once Redis confirms, so every later publish is delivered.

        Raises a redis ConnectionError when Redis does not confirm in time; the channel is then not subscribed.
        """
        name = self._event_name(channel)
        subscription = self._subscriptions.get(name)
        if subscription is None:
            subscription = _Subscription(channel, len(_FRAME_HEAD) + len(json.dumps(channel)) + len(_SEQ_KEY))
            self._subscriptions[name] = subscription
            pubsub = self._pubsub
            if pubsub is not None:
                # On a broken connection the reader reconnects and subscribes every registered channel.
                with contextlib.suppress(RedisError, OSError):
                    await pubsub.subscribe(name)
        if self._reader is None:
            return  # not started: start() subscribes it
        try:
            async with asyncio.timeout(_CONFIRM_TIMEOUT_S):
                await asyncio.shield(subscription.confirmed)
        except TimeoutError:
            if self._subscriptions.get(name) is subscription:
                await self.unsubscribe(channel)
            raise ConnectionError(f"Redis did not confirm the subscription to {channel}") from None

    async def unsubscribe(self, channel: str) -> None:
        """Stop receiving this channel's events; any still in flight are dropped."""
        name = self._event_name(channel)
        if self._subscriptions.pop(name, None) is None:
            return
        pubsub = self._pubsub
        if pubsub is not None:
            # A broken connection forgets its subscriptions anyway, and the reconnect skips this channel.
            with contextlib.suppress(RedisError, OSError):
                await pubsub.unsubscribe(name)

    async def send_control(self, message: dict[str, Any]) -> None:
        """Publish a control message to every instance, this one included."""
        await self._redis.publish(self._control_name, json.dumps(message))

    async def ping(self) -> None:
        """Raise unless Redis answers."""
        await self._redis.ping()

    # The pub/sub connection and its reader.

    async def _connect(self) -> PubSub:
        """A new pub/sub connection subscribed to the control channel and every registered channel."""
        pubsub = self._pubsub_client.pubsub()
        try:
            await pubsub.connect()  # type: ignore[no-untyped-call]  # redis-py leaves it unannotated
            # Published before subscribing: a concurrent subscribe() either is in this list or sends its own.
            self._pubsub = pubsub
            await pubsub.subscribe(self._control_name, *self._subscriptions)
            # One SUBSCRIBE covers them all, so its first confirmation means every channel is live.
            async with asyncio.timeout(_CONFIRM_TIMEOUT_S):
                while True:
                    message = await pubsub.get_message(timeout=None)
                    if message is not None and message["type"] == "subscribe":
                        self._dispatch(message)
                        if message["channel"] == self._control_name:
                            return pubsub
        except BaseException:
            self._pubsub = None
            await _close(pubsub)
            raise

    async def _read(self, pubsub: PubSub) -> None:
        """Deliver messages for as long as the broker runs, reconnecting whenever the connection is lost."""
        while True:
            try:
                await self._listen(pubsub)
            except (RedisError, OSError) as exc:
                log.warning("broker pub/sub connection lost; reconnecting", extra={"reason": str(exc)})
            except Exception:
                # Whatever went wrong, this instance must not stop receiving events for good.
                log.exception("broker pub/sub reader failed; reconnecting")
            self._pubsub = None
            with contextlib.suppress(RedisError, OSError):
                await _close(pubsub)
            pubsub = await self._reconnect()
            listener = self._listener
            if listener is not None:
                try:
                    listener.reconnected()
                except Exception:
                    log.exception("broker listener failed on reconnected")

    async def _listen(self, pubsub: PubSub) -> None:
        """Dispatch messages until the connection fails or stops answering pings."""
        pinged = False
        while True:
            message = await pubsub.get_message(timeout=self._idle_ping_s)
            if message is not None:
                pinged = False
                self._dispatch(message)
            elif pinged:
                raise ConnectionError("Redis did not answer a ping on the pub/sub connection")
            else:
                await pubsub.ping()
                pinged = True

    async def _reconnect(self) -> PubSub:
        """Connect again, waiting 0.1 s before the first try and doubling up to 2 s between tries."""
        delay = _RECONNECT_FIRST_DELAY_S
        while True:
            await asyncio.sleep(delay)
            try:
                return await self._connect()
            except (RedisError, OSError) as exc:
                log.warning("broker pub/sub reconnect failed", extra={"reason": str(exc)})
                delay = min(delay * 2, _RECONNECT_MAX_DELAY_S)

    def _dispatch(self, message: dict[str, Any]) -> None:
        """Hand one pub/sub message to the listener; a failing listener never stops the reader."""
        kind = message["type"]
        name = message["channel"]
        if kind == "subscribe":
            subscription = self._subscriptions.get(name)
            if subscription is not None and not subscription.confirmed.done():
                subscription.confirmed.set_result(None)
            return
        listener = self._listener
        if kind != "message" or listener is None:
            return
        try:
            if name == self._control_name:
                _control(listener, message["data"])
                return
            subscription = self._subscriptions.get(name)
            if subscription is not None:
                _deliver(listener, subscription, message["data"])
        except Exception:
            log.exception("broker listener failed on a message of %s", name)


async def _close(pubsub: PubSub) -> None:
    """Close a pub/sub connection."""
    # redis-py annotates `aclose` only from 8.2 on; called through a typed name, it type-checks on either.
    close: Callable[[], Awaitable[None]] = pubsub.aclose
    await close()


def _deliver(listener: BrokerListener, subscription: _Subscription, frame: str) -> None:
    """Read seq and epoch off the frame's fixed head (no JSON parse on the hot path) and deliver it."""
    seq_at = subscription.seq_at
    seq_end = frame.find(",", seq_at)
    epoch_at = seq_end + len(_EPOCH_KEY)
    epoch_end = frame.find('"', epoch_at)
    seq_text = frame[seq_at:seq_end]
    if (
        seq_end < 0
        or epoch_end < 0
        or not frame.startswith(_SEQ_KEY, seq_at - len(_SEQ_KEY))
        or not frame.startswith(_EPOCH_KEY, seq_end)
        or not (seq_text.isascii() and seq_text.isdigit())
    ):
        log.warning("broker dropped a malformed frame", extra={"channel": subscription.channel})
        return
    listener.deliver(Delivery(subscription.channel, int(seq_text), frame[epoch_at:epoch_end], frame))


def _control(listener: BrokerListener, text: str) -> None:
    """Decode a control message and hand it over; anything but a JSON object is dropped."""
    try:
        message = json.loads(text)
    except ValueError:
        message = None
    if not isinstance(message, dict):
        log.warning("broker dropped a control message that is not a JSON object")
        return
    listener.control(message)
