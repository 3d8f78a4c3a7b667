"""A background loop: one round now, the next after a pause, until closed."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable


class Periodic:
    """Runs `round_` every `interval_s` in a task of its own, for the background workers.

    A round that fails is logged and the next one tries again: a database or an API that
    is down for a while must not end the loop. A round that returns `batch` or more (a
    full batch, so more may be due) is followed at once.
    """

    def __init__(
        self,
        name: str,
        round_: Callable[[], Awaitable[object]],
        interval_s: float,
        log: logging.Logger,
        *,
        batch: int | None = None,
    ) -> None:
        self._name = name
        self._round = round_
        self._interval_s = interval_s
        self._log = log
        self._batch = batch
        self._task: asyncio.Task[None] | None = None

    async def _run(self) -> None:
        while True:
            try:
                done = await self._round()
            except Exception as exc:
                self._log.warning("%s round failed, trying again later: %s", self._name, exc)
                done = None
            if self._batch is None or not isinstance(done, int) or done < self._batch:
                await asyncio.sleep(self._interval_s)

    def start(self) -> None:
        """Start the loop (again after `close`); a second call while it runs does nothing."""
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._run(), name=self._name)

    async def close(self) -> None:
        """Stop the loop; a round in progress is cancelled (its transaction rolls back)."""
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None
