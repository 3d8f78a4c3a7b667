"""A device that stays connected the way a real one should: the Python client's reconnecting side.

The simulator and the fault, soak and scale benchmarks run their devices on it, and an
integrator can read it as the example of what docs/protocol.md asks of a client.

    device = ReconnectingDevice([url_a, url_b], token, renew=new_token)
    await device.start()                      # the first connection: its failure is the caller's
    cart = await device.command("cart.create")
    frame = await device.next_frame()         # events and snapshots of every connection, in order
    await device.close()

When the server closes the connection (docs/protocol.md "Close codes"):

- 4003: the device stops: `closed` is set and `close_code` says 4003;
- 4001: it asks `renew` for a new token, then reconnects;
- anything else (4008, 4029, 1001, 1006, 1011, 1012, ...): it reconnects.

It reconnects after a full-jitter exponential backoff (a random wait up to a ceiling that
doubles with each failure), or after the `retry_after` a 1001 or 1013 close names when that
is longer, to its own URL first and to the next one each time a connection fails, and
resumes: the `hello` carries every channel's last
seq and epoch, so the server sends what was missed or a snapshot, which arrives in the
stream like any frame (a snapshot replaces whatever the listener held for its channel).

A command keeps its id until it has a reply: when its connection closes before the reply,
the reply does not come in time, or the server refuses it with `unavailable`, `internal`
or `rate_limited`, the device sends it again with the same id (on the next connection if
need be). The server's command log answers a retry with the stored reply, so nothing
happens twice (docs/protocol.md "Idempotency").
"""

from __future__ import annotations

import asyncio
import random
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

import websockets

from channels import frames
from channels.client import CommandFailed, DeviceClient, HandshakeRefused
from channels.versions import Versions

# Refusals that change nothing on the server and are not stored: a retry with the same id is processed afresh.
RETRYABLE = frozenset({"unavailable", "internal", "rate_limited"})
BACKOFF_BASE_S = 0.2
BACKOFF_CAP_S = 5.0
# A connection that held this long was a good one: the next failure starts the backoff again from the base.
STABLE_S = 10.0
CONNECT_TIMEOUT_S = 10.0
# One wait for a reply on one connection; the command's own timeout bounds the resends.
REPLY_WAIT_S = 10.0

ClientFactory = Callable[..., DeviceClient]


def backoff_s(attempt: int, rng: random.Random, base_s: float = BACKOFF_BASE_S) -> float:
    """The wait before reconnect `attempt` (0, 1, ...): full jitter, at random up to a ceiling that doubles from
    `base_s` up to a cap, so that devices dropped together do not come back together."""
    return rng.uniform(0, min(BACKOFF_CAP_S, base_s * 2.0**attempt))


def reconnect_wait_s(attempt: int, reason: str, rng: random.Random) -> float:
    """The wait before reconnect `attempt` after a close or refusal with `reason`: the backoff, or the server's
    `retry_after` when it asked for longer."""
    hint = frames.retry_after(reason)
    backoff = backoff_s(attempt, rng)
    return backoff if hint is None else max(hint, backoff)


class Stopped(ConnectionError):
    """The device has stopped (closed with 4003, or by its owner): it sends nothing more."""


class ReconnectingDevice:
    """One device over successive connections: commands that survive a reconnect, one stream of frames, and one
    view of the newest orders, payments and carts (`versions`).

    `closes` counts the closes it recovered from, by code (`"4008"`, `"1006"`, ...), and
    `resent` the commands it sent again; pass one Counter to several devices to add them up.
    """

    def __init__(
        self,
        urls: Sequence[str],
        token: str,
        *,
        renew: Callable[[], Awaitable[str]] | None = None,
        make_client: ClientFactory = DeviceClient,
        counts: Counter[str] | None = None,
        rng: random.Random | None = None,
    ) -> None:
        if not urls:
            raise ValueError("a device needs at least one URL")
        self.urls = list(urls)
        self.token = token
        self.counts: Counter[str] = Counter() if counts is None else counts
        self.closed = asyncio.Event()
        self.close_code: int | None = None
        self.stream: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        self.versions = Versions()
        self._renew = renew
        self._make_client = make_client
        self._rng = rng or random.Random()
        self._url_index = 0
        self._client: DeviceClient | None = None
        self._swapped = asyncio.Event()
        self._supervisor: asyncio.Task[None] | None = None
        self._stopping = False

    @property
    def client(self) -> DeviceClient:
        """The current connection (open, or closed while the device reconnects)."""
        if self._client is None:
            raise RuntimeError("the device has not started")
        return self._client

    @property
    def welcome(self) -> dict[str, Any]:
        """The `welcome` data of the current connection."""
        return self.client.welcome

    def resume_state(self) -> dict[str, dict[str, Any]]:
        """Each channel's last seq and epoch, as the next `hello` will send them."""
        return self.client.resume_state()

    async def start(self) -> dict[str, Any]:
        """Open the first connection (errors are raised, not retried) and watch it from then on."""
        client = self._make_client(self.urls[0], self.token, stream=self.stream, versions=self.versions)
        welcome = await client.connect(timeout=CONNECT_TIMEOUT_S)
        self._client = client
        self._supervisor = asyncio.get_running_loop().create_task(self._supervise())
        return welcome

    # Staying connected

    async def _supervise(self) -> None:
        attempt = 0
        while True:
            client = self.client
            opened = time.monotonic()
            await client.closed.wait()
            if self._stopping:
                return
            code, reason = client.close_code, client.close_reason
            self.counts[f"closed {code}"] += 1
            if code == 4003:
                self._stop(code)
                return
            if time.monotonic() - opened >= STABLE_S:
                attempt = 0
            renew = code == 4001
            while not self._stopping:
                if renew:
                    await self._new_token()
                await asyncio.sleep(reconnect_wait_s(attempt, reason, self._rng))
                attempt += 1
                renew, reason = False, ""
                try:
                    new = await self._reconnect(client)
                except HandshakeRefused as refused:
                    if refused.code == 4003:
                        self._stop(4003)
                        return
                    renew, reason = refused.code == 4001, refused.reason
                    self.counts[f"refused {refused.code}"] += 1
                    continue
                except (OSError, TimeoutError, websockets.InvalidHandshake, websockets.ConnectionClosed):
                    self._url_index = (self._url_index + 1) % len(self.urls)  # that instance may be gone: try the next
                    continue
                self.counts["reconnected"] += 1
                self._swap(new)
                break

    async def _reconnect(self, old: DeviceClient) -> DeviceClient:
        url = self.urls[self._url_index]
        new = self._make_client(url, self.token, resume=old.resume_state(), stream=self.stream, versions=self.versions)
        try:
            await new.connect(timeout=CONNECT_TIMEOUT_S)
        except BaseException:
            await new.close()
            raise
        if self._stopping:
            await new.close()
            raise Stopped("the device was closed while it reconnected")
        return new

    async def _new_token(self) -> None:
        if self._renew is None:
            return  # nothing to ask: the reconnect will show whether the old token still passes
        try:
            self.token = await self._renew()
            self.counts["renewed token"] += 1
        except Exception:
            self.counts["renewal failed"] += 1

    def _swap(self, client: DeviceClient) -> None:
        self._client = client
        swapped, self._swapped = self._swapped, asyncio.Event()
        swapped.set()

    def _stop(self, code: int | None) -> None:
        self._stopping = True
        self.close_code = code
        self.closed.set()
        self._swapped.set()

    # Commands and frames

    async def request(
        self,
        kind: str,
        data: dict[str, Any] | None = None,
        *,
        command_id: str | None = None,
        timeout: float = 30,  # noqa: ASYNC109
    ) -> dict[str, Any]:
        """Send a command until it has a reply that is not a retryable refusal, all within `timeout`; the reply."""
        command_id = command_id or DeviceClient.new_id()
        deadline = time.monotonic() + timeout
        sent = False
        while True:
            if self._stopping:
                raise Stopped(f"the device stopped (close {self.close_code})")
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError(f"{kind} {command_id}: no reply within {timeout:g} s")
            client, swapped = self.client, self._swapped
            if client.closed.is_set():
                await self._wait_for(swapped, left)  # the supervisor is reconnecting
                continue
            if sent:
                self.counts["resent"] += 1
            sent = True
            try:
                reply = await client.request(kind, data, command_id=command_id, timeout=min(left, REPLY_WAIT_S))
            except ConnectionError:
                # Lost with its connection: the same id again on the next one. Waited for, not retried at once: a
                # send on a closed socket can fail before the reader has seen the close, again and again.
                await self._wait_for(swapped, left)
                continue
            except TimeoutError:
                continue  # slow: the same id again
            error = reply.get("error") or {}
            if reply.get("ok") or error.get("code") not in RETRYABLE:
                return reply
            self.counts[f"retried {error.get('code')}"] += 1
            await asyncio.sleep(min(max(deadline - time.monotonic(), 0), self._rng.uniform(0.1, 0.5)))

    async def command(
        self,
        kind: str,
        data: dict[str, Any] | None = None,
        *,
        command_id: str | None = None,
        timeout: float = 30,  # noqa: ASYNC109
    ) -> dict[str, Any]:
        """`request`, returning the reply's data; `CommandFailed` when it failed."""
        reply = await self.request(kind, data, command_id=command_id, timeout=timeout)
        if not reply.get("ok"):
            raise CommandFailed(reply)
        data_out: dict[str, Any] = reply.get("data") or {}
        return data_out

    async def _wait_for(self, event: asyncio.Event, limit_s: float) -> None:
        try:
            await asyncio.wait_for(event.wait(), limit_s)
        except TimeoutError:
            pass  # the caller checks its deadline

    async def next_frame(self, timeout: float = 10) -> dict[str, Any]:  # noqa: ASYNC109 (DeviceClient's signature)
        """The next event, snapshot or unmatched frame of any of its connections, in arrival order."""
        return await asyncio.wait_for(self.stream.get(), timeout)

    async def close(self) -> None:
        """Stop reconnecting and close the connection."""
        if not self._stopping:
            self._stop(None)
        if self._supervisor is not None:
            self._supervisor.cancel()
            await asyncio.gather(self._supervisor, return_exceptions=True)
        if self._client is not None:
            await self._client.close()
