"""The Redis broker's receiving side: one pub/sub connection per instance and the channels it listens to.

Each instance keeps one pub/sub connection, subscribed to the control channel and to every
channel with a local subscriber. When it drops, or stops answering pings, the reader
reconnects with backoff, subscribes every channel again and then tells the listener, which
resumes its channels from history: events published meanwhile were not delivered live.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from redis.asyncio import Redis
from redis.asyncio.client import PubSub
from redis.exceptions import ConnectionError, RedisError

from channels.brokers.base import BrokerListener, Delivery
from channels.redis_clients import pubsub_client

log = logging.getLogger("channels.broker")

_RECONNECT_FIRST_DELAY_S = 0.1
_RECONNECT_MAX_DELAY_S = 2.0
_CONFIRM_TIMEOUT_S = 5.0
# A frame starts `{"type":"event","channel":<channel JSON>,"seq":`; see base.event_frame.
_FRAME_HEAD = '{"type":"event","channel":'
_SEQ_KEY = ',"seq":'
_EPOCH_KEY = ',"epoch":"'


def event_name(prefix: str, channel: str) -> str:
    """The pub/sub name a channel's event frames are published on."""
    return f"{prefix}:ev:{channel}"


def control_name(prefix: str) -> str:
    """The pub/sub name control messages are published on."""
    return f"{prefix}:control"


@dataclass(slots=True)
class Subscription:
    """A channel this instance receives, and where its frames hold the seq."""

    channel: str
    seq_at: int
    confirmed: asyncio.Future[None] = field(default_factory=lambda: asyncio.get_running_loop().create_future())

    @classmethod
    def of(cls, channel: str) -> Subscription:
        """A new, unconfirmed subscription to `channel`."""
        return cls(channel, len(_FRAME_HEAD) + len(json.dumps(channel)) + len(_SEQ_KEY))


class Subscriptions:
    """The channels this instance receives from Redis, kept subscribed on one pub/sub connection across drops."""

    def __init__(self, redis: Redis, *, prefix: str, idle_ping_s: float) -> None:
        self._prefix = prefix
        self._control_name = control_name(prefix)
        # How long the pub/sub connection may be quiet before a ping; a ping unanswered as long means it is gone.
        self._idle_ping_s = idle_ping_s
        self._client = pubsub_client(redis, name=f"{prefix}:broker-pubsub")
        self._subscriptions: dict[str, Subscription] = {}
        self._pubsub: PubSub | None = None
        self._listener: BrokerListener | None = None
        self._reader: asyncio.Task[None] | None = None

    async def start(self, listener: BrokerListener) -> None:
        """Open the pub/sub connection and start delivering to `listener`; raises when Redis is unreachable."""
        self._listener = listener
        pubsub = await self._connect()
        self._reader = asyncio.create_task(self._read(pubsub), name="redis-broker-reader")

    async def close(self) -> None:
        """Stop the reader and close the pub/sub connection."""
        if self._reader is not None:
            self._reader.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._reader
            self._reader = None
        if self._pubsub is not None:
            await close_pubsub(self._pubsub)
            self._pubsub = None
        self._listener = None
        await self._client.aclose()

    async def subscribe(self, channel: str) -> None:
        """Receive this channel's events; returns once Redis confirms, so every later publish is delivered.

        Raises a redis ConnectionError when Redis does not confirm in time; the channel is then not subscribed.
        """
        name = event_name(self._prefix, channel)
        subscription = self._subscriptions.get(name)
        if subscription is None:
            subscription = Subscription.of(channel)
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
        name = event_name(self._prefix, channel)
        if self._subscriptions.pop(name, None) is None:
            return
        pubsub = self._pubsub
        if pubsub is not None:
            # A broken connection forgets its subscriptions anyway, and the reconnect skips this channel.
            with contextlib.suppress(RedisError, OSError):
                await pubsub.unsubscribe(name)

    # The connection and its reader.

    async def _connect(self) -> PubSub:
        """A new pub/sub connection subscribed to the control channel and every registered channel."""
        pubsub = self._client.pubsub()
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
            await close_pubsub(pubsub)
            raise

    async def _read(self, pubsub: PubSub) -> None:
        """Deliver messages for as long as the broker runs, reconnecting whenever the connection is lost."""
        while True:
            try:
                await listen(pubsub, self._idle_ping_s, self._dispatch)
            except (RedisError, OSError) as exc:
                log.warning("broker pub/sub connection lost; reconnecting", extra={"reason": str(exc)})
            except Exception:
                # Whatever went wrong, this instance must not stop receiving events for good.
                log.exception("broker pub/sub reader failed; reconnecting")
            self._pubsub = None
            with contextlib.suppress(RedisError, OSError):
                await close_pubsub(pubsub)
            pubsub = await self._reconnect()
            listener = self._listener
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
                deliver_control(listener, message["data"])
                return
            subscription = self._subscriptions.get(name)
            if subscription is not None:
                deliver_frame(listener, subscription, message["data"])
        except Exception:
            log.exception("broker listener failed on a message of %s", name)


async def listen(pubsub: PubSub, idle_ping_s: float, dispatch: Callable[[dict[str, Any]], None]) -> None:
    """Hand `dispatch` every message of the connection until it fails or stops answering pings (then raise
    ConnectionError); a ping goes out after `idle_ping_s` of silence."""
    pinged = False
    while True:
        message = await pubsub.get_message(timeout=idle_ping_s)
        if message is not None:
            pinged = False
            dispatch(message)
        elif pinged:
            raise ConnectionError("Redis did not answer a ping on a pub/sub connection")
        else:
            await pubsub.ping()
            pinged = True


async def close_pubsub(pubsub: PubSub) -> None:
    """Close a pub/sub connection."""
    # redis-py annotates `aclose` only from 8.2 on; called through a typed name, it type-checks on either.
    close: Callable[[], Awaitable[None]] = pubsub.aclose
    await close()


def deliver_frame(listener: BrokerListener, subscription: Subscription, frame: str) -> None:
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


def deliver_control(listener: BrokerListener, text: str) -> None:
    """Decode a control message and hand it over; anything but a JSON object is dropped."""
    try:
        message = json.loads(text)
    except ValueError:
        message = None
    if not isinstance(message, dict):
        log.warning("broker dropped a control message that is not a JSON object")
        return
    listener.control(message)
