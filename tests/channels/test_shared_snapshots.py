"""Snapshots shared by the subscribers that join a channel at the same position (channels/shared_snapshots.py)."""

from __future__ import annotations

import asyncio

import pytest

from channels.shared_snapshots import SharedSnapshots

POSITION = (3, "epoch-1")


class Reads:
    """A snapshot source that counts its reads and can be held back or made to fail."""

    def __init__(self) -> None:
        self.count = 0
        self.gate: asyncio.Event | None = None
        self.failing = False

    async def __call__(self) -> str:
        self.count += 1
        if self.gate is not None:
            await self.gate.wait()
        if self.failing:
            raise ConnectionError("database down")
        return f"frame {self.count}"


async def test_subscribers_at_the_same_position_share_one_read_and_another_position_reads_again() -> None:
    """Two joins at one position read once and get the same frame; a new position (an event came) reads anew."""
    shared, reads = SharedSnapshots(), Reads()
    assert await shared.frame("branch:1:menu", POSITION, reads) == "frame 1"
    assert await shared.frame("branch:1:menu", POSITION, reads) == "frame 1"
    assert await shared.frame("branch:1:menu", (4, "epoch-1"), reads) == "frame 2"
    assert await shared.frame("branch:1:menu", (4, "epoch-2"), reads) == "frame 3"
    assert await shared.frame("branch:2:menu", (4, "epoch-2"), reads) == "frame 4"
    assert reads.count == 4


async def test_joins_while_the_read_runs_wait_for_it() -> None:
    """Three joins at once: one read, whose frame all three get."""
    shared, reads = SharedSnapshots(), Reads()
    reads.gate = asyncio.Event()
    joins = [asyncio.create_task(shared.frame("branch:1:kitchen", POSITION, reads)) for _ in range(3)]
    await asyncio.sleep(0.01)
    reads.gate.set()
    assert await asyncio.gather(*joins) == ["frame 1"] * 3
    assert reads.count == 1


async def test_a_failed_read_fails_its_waiters_and_is_not_kept() -> None:
    """The read fails: every join waiting on it fails too, and the next join reads again."""
    shared, reads = SharedSnapshots(), Reads()
    reads.gate, reads.failing = asyncio.Event(), True
    joins = [asyncio.create_task(shared.frame("branch:1:kitchen", POSITION, reads)) for _ in range(2)]
    await asyncio.sleep(0.01)
    reads.gate.set()
    results = await asyncio.gather(*joins, return_exceptions=True)
    assert all(isinstance(result, ConnectionError) for result in results)
    reads.failing, reads.gate = False, None
    assert await shared.frame("branch:1:kitchen", POSITION, reads) == "frame 2"


async def test_a_snapshot_is_kept_only_for_a_moment() -> None:
    """Past `keep_s` the same position reads again, and older snapshots are forgotten as new ones are read."""
    shared, reads = SharedSnapshots(keep_s=0.05), Reads()
    await shared.frame("branch:1:menu", POSITION, reads)
    await shared.frame("branch:2:menu", POSITION, reads)
    assert len(shared) == 2
    await asyncio.sleep(0.06)
    assert await shared.frame("branch:1:menu", POSITION, reads) == "frame 3"
    assert len(shared) == 1


@pytest.mark.parametrize("cancelled", ["reader", "waiter"])
async def test_a_cancelled_join_leaves_the_others_their_frame_or_a_clear_failure(cancelled: str) -> None:
    """A waiter cancelled does not cancel the read; the reader cancelled fails its waiters, and is not kept."""
    shared, reads = SharedSnapshots(), Reads()
    reads.gate = asyncio.Event()
    reader = asyncio.create_task(shared.frame("branch:1:menu", POSITION, reads))
    await asyncio.sleep(0.01)
    waiter = asyncio.create_task(shared.frame("branch:1:menu", POSITION, reads))
    await asyncio.sleep(0.01)
    (reader if cancelled == "reader" else waiter).cancel()
    reads.gate.set()
    if cancelled == "waiter":
        assert await reader == "frame 1"
        with pytest.raises(asyncio.CancelledError):
            await waiter
        return
    with pytest.raises(asyncio.CancelledError):
        await reader
    with pytest.raises(ConnectionError):
        await waiter
    reads.gate = None
    assert await shared.frame("branch:1:menu", POSITION, reads) == "frame 2"
