"""The background loop every worker runs: it survives failed rounds and catches up after full batches."""

from __future__ import annotations

import asyncio
import logging

import pytest

from server.workers.periodic import Periodic

LIMIT_S = 5


async def test_a_failed_round_is_logged_and_the_loop_goes_on(caplog: pytest.LogCaptureFixture) -> None:
    """A round that raises does not end the loop: the next round runs after the interval."""
    rounds: list[int] = []
    third = asyncio.Event()

    async def round_() -> None:
        rounds.append(len(rounds))
        if len(rounds) == 1:
            raise RuntimeError("database down")
        if len(rounds) == 3:
            third.set()

    loop = Periodic("test-loop", round_, 0.01, logging.getLogger("test.periodic"))
    loop.start()
    loop.start()  # a second start while it runs does nothing
    await asyncio.wait_for(third.wait(), LIMIT_S)
    await loop.close()
    assert "test-loop round failed, trying again later: database down" in caplog.text
    count = len(rounds)
    await asyncio.sleep(0.05)
    assert len(rounds) == count  # closed: no more rounds


async def test_a_full_batch_is_followed_at_once() -> None:
    """Rounds that return the batch size run back to back; a short one waits for the interval."""
    results = [10, 10, 3]
    done = asyncio.Event()

    async def round_() -> int:
        if not results:
            done.set()
            return 0
        return results.pop(0)

    loop = Periodic("test-batch", round_, 3600, logging.getLogger("test.periodic"), batch=10)
    loop.start()
    await asyncio.sleep(0.1)
    # Two full batches ran at once, the third (3) started an hour's wait: the fourth round never came.
    assert (results, done.is_set()) == ([], False)
    await loop.close()
