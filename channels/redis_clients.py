"""Redis clients whose connection pools make a burst wait rather than fail.

redis-py's asyncio pool refuses a command outright ("Too many connections") once 100
connections are busy: 165 devices saying `hello` at once were enough to get some of
them refused. A blocking pool of fewer connections queues the excess for a moment
instead; Redis runs one command at a time anyway, so more connections add nothing.
"""

from __future__ import annotations

from typing import Any

from redis.asyncio import BlockingConnectionPool, Redis

MAX_CONNECTIONS = 50
# Longer than any command takes; a Redis that answers nothing for this long counts as down.
COMMAND_TIMEOUT_S = 5.0


def redis_client(url: str, *, wait_s: float, **options: Any) -> Redis:
    """A client of `url` with at most MAX_CONNECTIONS connections; a command waits up to `wait_s` for one.

    `options` are redis-py's connection options (timeouts, `decode_responses`, `retry`, ...).
    """
    pool = BlockingConnectionPool.from_url(url, max_connections=MAX_CONNECTIONS, timeout=wait_s, **options)
    return Redis.from_pool(pool)
