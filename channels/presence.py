"""Presence: which devices are connected, on any instance, and their `device.online`/`device.offline` events.

A device is online while it has at least one live connection, on whichever instance.
Announcements follow one rule: `device.online` when a device gets its first known
connection, `device.offline` when its last known connection is removed (its socket
closed, its instance shut down, or its instance died and the connection expired). A
second, overlapping connection of the same device announces nothing.

With Redis every connection is stored with an expiry. The instance holding it pushes
the expiry `ttl_s` ahead every `refresh_s`; when an instance dies its connections
expire, and the sweep that every instance runs every `refresh_s` (one at a time, under a
short lock) removes them and announces the devices left with none. A killed instance's
devices are therefore announced offline within about `ttl_s + refresh_s`.

Every step that decides an announcement is one Lua script, and a device's connections
exist in Redis exactly while its last announcement is `device.online`: so each change is
announced once, online and offline alternate, whatever the interleaving of instances.
`is_online` and `online_devices` count only live connections, so for up to one refresh
period after a crash they may already say offline while the announcement is still due.
"""

from __future__ import annotations

import asyncio
import logging
from abc import ABC, abstractmethod
from collections.abc import Awaitable, Callable, Iterable, Sequence
from datetime import UTC, datetime
from typing import Any

from redis.asyncio import Redis
from redis.asyncio.cluster import RedisCluster
from redis.commands.core import AsyncScript

from channels import names

log = logging.getLogger("channels.presence")

Announce = Callable[[str, str, dict[str, Any]], Awaitable[None]]
"""Publishes `(channel, event, data)`; the server wires it to the broker."""

# (online, device id, branch id): one announcement to make.
Change = tuple[bool, int, int]


def _rfc3339(moment: datetime) -> str:
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


class Presence(ABC):
    """Where devices are connected; see the module docstring for the guarantees."""

    def __init__(self, announce: Announce) -> None:
        self._announce = announce

    @abstractmethod
    async def connected(self, device_id: int, branch_id: int, connection_id: str) -> None:
        """Record an authenticated connection; announce `device.online` if it is the device's first."""

    @abstractmethod
    async def disconnected(self, device_id: int, branch_id: int, connection_id: str) -> None:
        """Forget a closed connection; announce `device.offline` if it was the device's last. Unknown ones: nothing."""

    @abstractmethod
    async def is_online(self, device_id: int) -> bool:
        """Whether the device has a live connection on any instance (at most one Redis round trip)."""

    @abstractmethod
    async def online_devices(self, branch_id: int) -> set[int]:
        """The devices of a branch with a live connection, for the `branch:{b}:devices` snapshot."""

    @abstractmethod
    async def start(self) -> None:
        """Begin keeping this instance's connections alive and sweeping dead instances' ones."""

    @abstractmethod
    async def close(self) -> None:
        """Stop, and remove this instance's connections as if each had closed (a clean shutdown)."""

    @abstractmethod
    async def refresh(self) -> None:
        """Register this instance's connections again where they are kept (after the store may have lost them)."""

    async def _publish(self, changes: Iterable[Change], at: datetime) -> None:
        """Announce each change on its branch's devices channel.

        A failure is logged, not raised: the presence state has already changed, and the
        channel's snapshot still shows it to anyone who (re)subscribes.
        """
        for online, device_id, branch_id in changes:
            event = "device.online" if online else "device.offline"
            data = {"device_id": device_id, "branch_id": branch_id, "online": online, "at": _rfc3339(at)}
            try:
                await self._announce(names.branch_devices(branch_id), event, data)
            except Exception:
                log.exception("could not announce %s for device %s", event, device_id)


class MemoryPresence(Presence):
    """Presence in this process's memory, for the single-instance setup: nothing outlives the process."""

    def __init__(self, announce: Announce) -> None:
        super().__init__(announce)
        # device id -> {connection id: branch id}; a device is present only while it has a connection.
        self._connections: dict[int, dict[str, int]] = {}

    async def connected(self, device_id: int, branch_id: int, connection_id: str) -> None:
        """Record the connection; the device's first one announces it online."""
        connections = self._connections.setdefault(device_id, {})
        first = not connections
        connections[connection_id] = branch_id
        if first:
            await self._publish([(True, device_id, branch_id)], datetime.now(UTC))

    async def disconnected(self, device_id: int, branch_id: int, connection_id: str) -> None:
        """Forget the connection; the device's last one announces it offline."""
        connections = self._connections.get(device_id)
        if connections is None or connection_id not in connections:
            return
        known_branch = connections.pop(connection_id)
        if not connections:
            del self._connections[device_id]
            await self._publish([(False, device_id, known_branch)], datetime.now(UTC))

    async def is_online(self, device_id: int) -> bool:
        """Whether the device has a connection."""
        return device_id in self._connections

    async def online_devices(self, branch_id: int) -> set[int]:
        """The devices with a connection to the branch."""
        return {device for device, connections in self._connections.items() if branch_id in connections.values()}

    async def refresh(self) -> None:
        """Nothing to do: this process's memory is the store, and it cannot lose them."""

    async def start(self) -> None:
        """Nothing to keep alive: connections live exactly as long as this process."""

    async def close(self) -> None:
        """Disconnect every connection, announcing each device offline."""
        for device_id, connections in list(self._connections.items()):
            for connection_id, branch_id in list(connections.items()):
                await self.disconnected(device_id, branch_id, connection_id)


# Shared by every script: ARGV[1] is the key prefix, `now` is Redis's clock (one clock for every instance). KEYS[1]
# is the `conns` key, named only so that a Redis Cluster runs the script where the keys are: on a cluster the prefix
# is a hash tag, which puts every key below in that one slot.
# Keys: `conns` (every connection "d:b:cid"), one per device ("b:cid") and one per branch ("d:cid");
# each a ZSET scored by the connection's expiry in ms. A connection is live while its expiry is after `now`.
_PRELUDE = """
local prefix = ARGV[1]
local conns_key = prefix .. ':presence:conns'
local clock = redis.call('TIME')
local now = tonumber(clock[1]) * 1000 + math.floor(tonumber(clock[2]) / 1000)

local function device_key(device) return prefix .. ':presence:device:' .. device end
local function branch_key(branch) return prefix .. ':presence:branch:' .. branch end

local function forget(device, branch, connection)
  redis.call('ZREM', conns_key, device .. ':' .. branch .. ':' .. connection)
  redis.call('ZREM', branch_key(branch), device .. ':' .. connection)
  redis.call('ZREM', device_key(device), branch .. ':' .. connection)
end

-- Forget a device's expired connections; the branch of the last one, or nil when none had expired.
local function forget_expired(device)
  local dropped = nil
  for _, member in ipairs(redis.call('ZRANGEBYSCORE', device_key(device), '-inf', now)) do
    local branch, connection = string.match(member, '^(%d+):(.*)$')
    forget(device, branch, connection)
    dropped = branch
  end
  return dropped
end

local function has_connections(device) return redis.call('EXISTS', device_key(device)) == 1 end
"""

# ARGV: prefix, ttl_ms, then (device, branch, connection) triples. Returns {now, {{online, device, branch}...}}.
_REGISTER = (
    _PRELUDE
    + """
local expiry = now + tonumber(ARGV[2])
local changes = {}
for i = 3, #ARGV, 3 do
  local device, branch, connection = ARGV[i], ARGV[i + 1], ARGV[i + 2]
  local expired_branch = forget_expired(device)
  if not has_connections(device) then
    -- Its connections expired unannounced (their instance died): close that story first.
    if expired_branch then table.insert(changes, {0, tonumber(device), tonumber(expired_branch)}) end
    table.insert(changes, {1, tonumber(device), tonumber(branch)})
  end
  redis.call('ZADD', conns_key, expiry, device .. ':' .. branch .. ':' .. connection)
  redis.call('ZADD', branch_key(branch), expiry, device .. ':' .. connection)
  redis.call('ZADD', device_key(device), expiry, branch .. ':' .. connection)
end
return {now, changes}
"""
)

# ARGV: prefix, then (device, branch, connection) triples. Returns {now, changes}.
_UNREGISTER = (
    _PRELUDE
    + """
local changes = {}
for i = 2, #ARGV, 3 do
  local device, branch, connection = ARGV[i], ARGV[i + 1], ARGV[i + 2]
  if has_connections(device) then
    forget(device, branch, connection)
    forget_expired(device)
    if not has_connections(device) then table.insert(changes, {0, tonumber(device), tonumber(branch)}) end
  end
end
return {now, changes}
"""
)

# ARGV: prefix, batch size. Returns {now, changes, how many expired connections were removed}.
_SWEEP = (
    _PRELUDE
    + """
local expired = redis.call('ZRANGEBYSCORE', conns_key, '-inf', now, 'LIMIT', 0, tonumber(ARGV[2]))
local changes = {}
for _, member in ipairs(expired) do
  local device, branch, connection = string.match(member, '^(%d+):(%d+):(.*)$')
  forget(device, branch, connection)
  if not has_connections(device) then table.insert(changes, {0, tonumber(device), tonumber(branch)}) end
end
return {now, changes, #expired}
"""
)

# ARGV: prefix, device. Returns its number of live connections.
_LIVE_CONNECTIONS = _PRELUDE + "return redis.call('ZCOUNT', device_key(ARGV[2]), '(' .. now, '+inf')"

# ARGV: prefix, branch. Returns the branch's live connections as "d:cid".
_BRANCH_CONNECTIONS = _PRELUDE + "return redis.call('ZRANGEBYSCORE', branch_key(ARGV[2]), '(' .. now, '+inf')"

# Connections per script call, so that a big instance's refresh never blocks Redis for long.
_BATCH = 500


class RedisPresence(Presence):
    """Presence shared by every instance through Redis, with expiry for instances that die."""

    def __init__(
        self,
        redis: Redis | RedisCluster,
        announce: Announce,
        *,
        refresh_s: float = 5,
        ttl_s: float = 15,
        prefix: str = "kiosk",
    ) -> None:
        """Presence over `redis` (a client that decodes responses); it never closes that client."""
        if not 0 < refresh_s < ttl_s:
            raise ValueError(f"presence needs 0 < refresh_s < ttl_s, got refresh_s={refresh_s} ttl_s={ttl_s}")
        super().__init__(announce)
        self.refresh_s = refresh_s
        self.ttl_s = ttl_s
        self._prefix = prefix
        self._conns_key = f"{prefix}:presence:conns"
        self._redis = redis
        self._register = self._redis.register_script(_REGISTER)
        self._unregister = self._redis.register_script(_UNREGISTER)
        self._sweep = self._redis.register_script(_SWEEP)
        self._live_connections = self._redis.register_script(_LIVE_CONNECTIONS)
        self._branch_connections = self._redis.register_script(_BRANCH_CONNECTIONS)
        self._sweep_lock = f"{prefix}:presence:sweep-lock"
        # Shorter than the refresh period, so that the next tick of any instance, this one included, may sweep.
        self._sweep_lock_ms = max(1, int(refresh_s * 900))
        # This instance's connections: connection id -> (device id, branch id).
        self._local: dict[str, tuple[int, int]] = {}
        # Held while a refresh is in flight, so that it cannot register again a connection just closed.
        self._refreshing = asyncio.Lock()
        self._task: asyncio.Task[None] | None = None

    async def connected(self, device_id: int, branch_id: int, connection_id: str) -> None:
        """Register the connection everywhere; the device's first one announces it online.

        When Redis fails, the error is raised but the connection stays known to this instance,
        so the next refresh registers it: call `disconnected` when it closes all the same.
        """
        self._local[connection_id] = (device_id, branch_id)
        await self._run(self._register, [int(self.ttl_s * 1000)], [(device_id, branch_id, connection_id)])

    async def disconnected(self, device_id: int, branch_id: int, connection_id: str) -> None:
        """Remove the connection; the device's last one anywhere announces it offline."""
        async with self._refreshing:
            self._local.pop(connection_id, None)
        await self._run(self._unregister, [], [(device_id, branch_id, connection_id)])

    async def is_online(self, device_id: int) -> bool:
        """Whether any instance holds a live connection of the device: one round trip."""
        live = await self._live_connections(keys=[self._conns_key], args=[self._prefix, device_id])
        return int(live) > 0

    async def online_devices(self, branch_id: int) -> set[int]:
        """The devices of a branch with a live connection on any instance."""
        members = await self._branch_connections(keys=[self._conns_key], args=[self._prefix, branch_id])
        return {int(member.split(":", 1)[0]) for member in members}

    async def refresh(self) -> None:
        """Push this instance's connections' expiry `ttl_s` ahead; one already swept is registered again."""
        async with self._refreshing:
            connections = [(device, branch, connection) for connection, (device, branch) in self._local.items()]
            for start in range(0, len(connections), _BATCH):
                batch = connections[start : start + _BATCH]
                await self._run(self._register, [int(self.ttl_s * 1000)], batch)

    async def sweep(self) -> bool:
        """Remove every instance's expired connections, announcing devices left with none.

        Returns False without sweeping when another sweep took the turn within the last refresh period.
        """
        if not await self._redis.set(self._sweep_lock, "1", nx=True, px=self._sweep_lock_ms):
            return False
        while True:
            now_ms, changes, removed = await self._sweep(keys=[self._conns_key], args=[self._prefix, _BATCH])
            await self._publish(self._changes(changes), self._moment(now_ms))
            if removed < _BATCH:
                return True

    async def start(self) -> None:
        """Refresh and sweep every `refresh_s` in a background task."""
        if self._task is None:
            self._task = asyncio.create_task(self._keep_alive(), name="presence")

    async def close(self) -> None:
        """Stop the task and remove this instance's connections (announcing the devices that go offline)."""
        if self._task is not None:
            self._task.cancel()
            await asyncio.wait([self._task])
            self._task = None
        async with self._refreshing:
            connections = [(device, branch, connection) for connection, (device, branch) in self._local.items()]
            self._local.clear()
        for start in range(0, len(connections), _BATCH):
            await self._run(self._unregister, [], connections[start : start + _BATCH])

    async def _keep_alive(self) -> None:
        while not _cancel_requested():
            await asyncio.sleep(self.refresh_s)
            try:
                await self.refresh()
                await self.sweep()
            except Exception:
                if _cancel_requested():
                    return
                # Redis may be back by the next tick; a dead loop would let every local connection expire.
                log.exception("presence refresh or sweep failed; retrying in %ss", self.refresh_s)

    async def _run(
        self, script: AsyncScript, extra_args: list[int], connections: Sequence[tuple[int, int, str]]
    ) -> None:
        """Run a register/unregister script over `connections` and announce what it decided."""
        args: list[str | int] = [self._prefix, *extra_args]
        for device_id, branch_id, connection_id in connections:
            args += [device_id, branch_id, connection_id]
        now_ms, changes = await script(keys=[self._conns_key], args=args)
        await self._publish(self._changes(changes), self._moment(now_ms))

    @staticmethod
    def _changes(rows: list[list[int]]) -> list[Change]:
        return [(bool(online), int(device), int(branch)) for online, device, branch in rows]

    @staticmethod
    def _moment(now_ms: int) -> datetime:
        return datetime.fromtimestamp(int(now_ms) / 1000, UTC)


def _cancel_requested() -> bool:
    """Whether the current task was asked to stop.

    redis-py can swallow a cancellation (or turn it into its own error) while it drops a
    connection, so a loop that must stop on cancel checks for the request, not only for
    CancelledError.
    """
    task = asyncio.current_task()
    return task is not None and task.cancelling() > 0
