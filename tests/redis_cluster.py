"""A Redis Cluster of the tests' own: three masters on free loopback ports, without persistence or replicas.

    async with running_redis_cluster(folder) as cluster:
        backend = create_backend(cluster.url, ...)

Each master is a `redis-server` started in `folder` with its own nodes file, so a master
stopped by pid and started again on its port comes back as the same node with the same
slots (and, without persistence, none of its keys). `move_slot` migrates one slot and its
keys to another master, as a resharding does. Whatever happens inside the block, every
master is killed when it ends.
"""

from __future__ import annotations

import asyncio
import functools
import shutil
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

from redis.asyncio import Redis

from tests.cluster import START_TIMEOUT_S, Child
from tests.live import free_port

MASTERS = 3
# Tries at a node's ports (see _new_node).
PORT_TRIES = 3


class ClusterNodeProcess(Child):
    """One master of the test cluster, started in the cluster's folder so that its nodes file outlives it."""

    def __init__(self, port: int, folder: Path) -> None:
        super().__init__(f"redis-cluster-{port}", folder / f"redis-{port}.log")
        self.port = port
        # The cluster bus's own port: the default (port + 10000) may be taken, or past 65535.
        self.bus_port = free_port()
        self.folder = folder

    async def start(self) -> None:
        """Start the node (again, after a kill) and wait until it answers PING."""
        await self.spawn(
            "redis-server",
            "--port",
            str(self.port),
            "--bind",
            "127.0.0.1",
            "--dir",
            str(self.folder),
            "--cluster-enabled",
            "yes",
            "--cluster-port",
            str(self.bus_port),
            "--cluster-config-file",
            f"nodes-{self.port}.conf",
            "--save",
            "",
            "--appendonly",
            "no",
        )
        async with asyncio.timeout(START_TIMEOUT_S):
            await _until(self._answers)

    async def _answers(self) -> bool:
        if not self.running:
            raise RuntimeError(f"redis-server exited at start\n{self.log_tail()}")
        return await _says(self.port, "PONG", "ping")

    @property
    def pid(self) -> int:
        """The running process's id."""
        assert self.process is not None
        return self.process.pid


@dataclass(frozen=True)
class RedisCluster:
    """The running masters and the `redis+cluster://` URL naming them."""

    nodes: list[ClusterNodeProcess]

    @property
    def url(self) -> str:
        """The backend URL of the cluster: every master, comma-separated."""
        return "redis+cluster://" + ",".join(f"127.0.0.1:{node.port}" for node in self.nodes)

    async def wait_ok(self) -> None:
        """Return once every master says `cluster_state:ok`."""
        async with asyncio.timeout(START_TIMEOUT_S):
            for node in self.nodes:
                await _until(functools.partial(_says, node.port, "cluster_state:ok", "cluster", "info"))

    async def restart(self, node: ClusterNodeProcess) -> None:
        """Kill `node` by pid (as a crash would) and start it again on its port, then wait for the cluster."""
        await node.kill()
        await node.start()
        await self.wait_ok()

    async def move_slot(self, slot: int, source: ClusterNodeProcess, target: ClusterNodeProcess) -> None:
        """Migrate `slot` and its keys from `source` to `target` with the steps `redis-cli --cluster reshard` takes,
        telling every master the slot's new owner; returns once the cluster is ok."""
        clients = {node.port: Redis(host="127.0.0.1", port=node.port, decode_responses=True) for node in self.nodes}
        try:
            ids = {port: await client.execute_command("CLUSTER", "MYID") for port, client in clients.items()}
            await clients[target.port].execute_command("CLUSTER", "SETSLOT", slot, "IMPORTING", ids[source.port])
            await clients[source.port].execute_command("CLUSTER", "SETSLOT", slot, "MIGRATING", ids[target.port])
            while keys := await clients[source.port].execute_command("CLUSTER", "GETKEYSINSLOT", slot, 100):
                await clients[source.port].execute_command(
                    "MIGRATE", "127.0.0.1", target.port, "", 0, 5000, "KEYS", *keys
                )
            # The target first: once the source gives the slot up, a client asking either is sent to the target.
            others = [port for port in clients if port not in (target.port, source.port)]
            for port in (target.port, source.port, *others):
                await clients[port].execute_command("CLUSTER", "SETSLOT", slot, "NODE", ids[target.port])
        finally:
            for client in clients.values():
                await client.aclose()
        await self.wait_ok()


async def _until(check: Callable[[], Awaitable[bool]]) -> None:
    """Poll `check` every 50 ms until it holds (the caller's timeout bounds it)."""
    while True:
        if await check():
            return
        await asyncio.sleep(0.05)


async def _says(port: int, expected: str, *args: str) -> bool:
    """Whether `redis-cli -p port args...` prints `expected`."""
    return expected in await _cli(port, *args)


async def _cli(port: int, *args: str) -> str:
    """What `redis-cli -p port args...` prints; empty when it fails."""
    process = await asyncio.create_subprocess_exec(
        "redis-cli",
        "-p",
        str(port),
        *args,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.DEVNULL,
    )
    out, _ = await process.communicate()
    return out.decode().strip() if process.returncode == 0 else ""


async def _new_node(folder: Path) -> ClusterNodeProcess:
    """A master started on ports free a moment ago; chosen again when one was taken before redis-server bound it
    (a client socket's ephemeral port may be any of them)."""
    for attempt in range(1, PORT_TRIES + 1):
        node = ClusterNodeProcess(free_port(), folder)
        try:
            await node.start()
        except BaseException as failure:
            await node.kill()
            taken = isinstance(failure, RuntimeError) and "Address already in use" in node.log_tail()
            if attempt == PORT_TRIES or not taken:
                raise
            continue
        return node
    raise AssertionError("unreachable")


@asynccontextmanager
async def running_redis_cluster(folder: Path) -> AsyncIterator[RedisCluster]:
    """Start three masters in `folder`, join them into one cluster covering every slot, and kill them at the end."""
    if shutil.which("redis-server") is None or shutil.which("redis-cli") is None:
        raise RuntimeError("the Redis Cluster tests need redis-server and redis-cli on PATH")
    cluster = RedisCluster([])
    try:
        for _ in range(MASTERS):
            cluster.nodes.append(await _new_node(folder))
        create = await asyncio.create_subprocess_exec(
            "redis-cli",
            "--cluster",
            "create",
            *(f"127.0.0.1:{node.port}" for node in cluster.nodes),
            "--cluster-replicas",
            "0",
            "--cluster-yes",
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
        )
        out, _ = await asyncio.wait_for(create.communicate(), START_TIMEOUT_S)
        if create.returncode != 0:
            raise RuntimeError(f"redis-cli --cluster create failed:\n{out.decode(errors='replace')}")
        await cluster.wait_ok()
        yield cluster
    finally:
        for node in cluster.nodes:
            await node.kill()
