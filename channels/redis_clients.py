"""The Redis client a process shares (one server, or a Redis Cluster), and the pub/sub connections made after it.

redis-py's asyncio pool refuses a command outright ("Too many connections") once 100
connections are busy: 165 devices saying `hello` at once were enough to get some of
them refused. A blocking pool of fewer connections queues the excess for a moment
instead; Redis runs one command at a time anyway, so more connections add nothing.
The cluster client has no blocking pool, so it queues commands beyond the bound itself.
"""

from __future__ import annotations

import asyncio
from typing import Any
from urllib.parse import unquote, urlsplit

from redis.asyncio import BlockingConnectionPool, ConnectionPool, Redis
from redis.asyncio.cluster import ClusterNode, RedisCluster
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import ConnectionError

CLUSTER_SCHEMES = ("redis+cluster", "rediss+cluster")

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


class BoundedCluster(RedisCluster):
    """A Redis Cluster client that queues commands beyond MAX_CONNECTIONS in flight rather than refuse them.

    Each node's pool raises MaxConnectionsError once it holds MAX_CONNECTIONS; with no more
    commands than that in flight at once, no node ever gets there.
    """

    def __init__(self, **options: Any) -> None:
        super().__init__(max_connections=MAX_CONNECTIONS, **options)
        self._in_flight = asyncio.Semaphore(MAX_CONNECTIONS)

    async def execute_command(self, *args: Any, **kwargs: Any) -> Any:
        """Run one command once fewer than MAX_CONNECTIONS are in flight."""
        async with self._in_flight:
            return await super().execute_command(*args, **kwargs)


def cluster_client(url: str) -> BoundedCluster:
    """The client of the Redis Cluster `url` names: `redis+cluster://[user:password@]host:port[,host:port...]`.

    The nodes listed are where the client first asks for the cluster's layout; any one that
    answers is enough. `rediss+cluster://` speaks TLS. Replies are decoded to str.
    """
    parts = urlsplit(url)
    if parts.scheme not in CLUSTER_SCHEMES:
        raise ValueError("a Redis Cluster URL starts with redis+cluster:// or rediss+cluster://")
    hosts = parts.netloc.rpartition("@")[2]
    nodes = []
    for address in hosts.split(","):
        host, _, port = address.rpartition(":")
        if not host or not port.isdigit():
            raise ValueError("a Redis Cluster URL lists its nodes as host:port, separated by commas")
        nodes.append(ClusterNode(host, int(port)))
    return BoundedCluster(
        startup_nodes=nodes,
        username=unquote(parts.username) if parts.username else None,
        password=unquote(parts.password) if parts.password else None,
        ssl=parts.scheme == "rediss+cluster",
        decode_responses=True,
        socket_connect_timeout=CONNECT_TIMEOUT_S,
        socket_timeout=COMMAND_TIMEOUT_S,
    )


def node_pubsub_client(node: ClusterNode, *, name: str) -> Redis:
    """A client of one cluster node, with a connection of its own for sharded pub/sub and no retries.

    The reasons are pubsub_client's; the connection takes the cluster client's options (TLS, credentials).
    """
    options = {key: value for key, value in node.connection_kwargs.items() if not key.startswith(_CLUSTER_ONLY)}
    options.update(retry=Retry(NoBackoff(), 0), client_name=name, health_check_interval=0)
    return Redis.from_pool(ConnectionPool(connection_class=node.connection_class, **options))


# Options a cluster node's connections carry for the cluster's own maintenance notices.
_CLUSTER_ONLY = ("oss_cluster_maint", "maint_notifications")
