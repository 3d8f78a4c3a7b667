"""The Redis client a process shares, and the pub/sub connection made after it.

redis-py's asyncio pool refuses a command outright ("Too many connections") once 100
connections are busy: 165 devices saying `hello` at once were enough to get some of
them refused. A blocking pool of fewer connections queues the excess for a moment
instead; Redis runs one command at a time anyway, so more connections add nothing.
"""

from __future__ import annotations

from redis.asyncio import BlockingConnectionPool, ConnectionPool, Redis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import ConnectionError

MAX_CONNECTIONS = 50
# Longer than any command takes; a Redis that answers nothing for this long counts as down.
COMMAND_TIMEOUT_S = 5.0
CONNECT_TIMEOUT_S = 2.0


def shared_client(url: str) -> Redis:
    """The client of `url` that a process's broker, presence and rate limiter share.

    Replies are decoded to str (frames are text). At most MAX_CONNECTIONS connections; a
    command waits up to COMMAND_TIMEOUT_S for one.
    """
    pool = BlockingConnectionPool.from_url(
        url,
        max_connections=MAX_CONNECTIONS,
        timeout=COMMAND_TIMEOUT_S,
        decode_responses=True,
        socket_connect_timeout=CONNECT_TIMEOUT_S,
        socket_timeout=COMMAND_TIMEOUT_S,
        health_check_interval=30,
        # One quick retry covers a pooled connection that died while idle, when the command never reached Redis;
        # a timeout is not retried, as the command may have run (a presence change would go unannounced).
        retry=Retry(NoBackoff(), 1, supported_errors=(ConnectionError,)),
    )
    return Redis.from_pool(pool)


def pubsub_client(redis: Redis, *, name: str) -> Redis:
    """A client of the same server as `redis`, with a connection of its own for pub/sub and no retries.

    A subscribed connection cannot run other commands, so it never comes from the shared pool;
    and a silent reconnect inside redis-py would hide the events missed meanwhile.
    """
    shared = redis.connection_pool
    options = {**shared.connection_kwargs, "retry": Retry(NoBackoff(), 0), "client_name": name}
    # The broker pings an idle subscription itself; redis-py's own check would only add traffic.
    options["health_check_interval"] = 0
    return Redis.from_pool(ConnectionPool(connection_class=shared.connection_class, **options))
