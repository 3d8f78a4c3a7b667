"""Snapshots read once for every subscriber of a channel that needs one at the same position.

When a branch's devices connect together (a first start, or a storm of reconnects whose
history is gone), each of them needs the snapshot of the same channels: a branch's menu
for its kiosks and kitchen displays, its kitchen for both displays. A snapshot is read
after the channel's position (seq and epoch) was, and events after that position reach
the subscriber anyway, so a snapshot read for one position is right for every subscriber
that reads the same position afterwards: no event has been published in between. So the
hub keeps the last snapshot frame of each channel for a moment (`keep_s`), with the
position it was read at, and subscribers arriving at that position share it (and share
its read, when it is still running).
"""

from __future__ import annotations

import asyncio
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

# Kept this long after the read: long enough for the devices of a moment, short enough to hold little memory.
KEEP_S = 2.0


@dataclass(frozen=True, slots=True)
class _Read:
    position: tuple[int, str]
    frame: asyncio.Future[str]
    at: float


class SharedSnapshots:
    """The last snapshot frame read for each channel, shared by the subscribers that read the same position."""

    def __init__(self, keep_s: float = KEEP_S) -> None:
        self._keep_s = keep_s
        # Oldest read first, so that forgetting stops at the first one still kept.
        self._reads: OrderedDict[str, _Read] = OrderedDict()

    async def frame(self, channel: str, position: tuple[int, str], read: Callable[[], Awaitable[str]]) -> str:
        """The snapshot frame of `channel` at `position`: the one read for it moments ago, or `read()` now.

        A read that fails fails every subscriber waiting on it, and is not kept.
        """
        now = time.monotonic()
        kept = self._reads.get(channel)
        if kept is not None and kept.position == position and now - kept.at < self._keep_s:
            return await asyncio.shield(kept.frame)
        self._forget_old(now)
        future: asyncio.Future[str] = asyncio.get_running_loop().create_future()
        self._reads[channel] = _Read(position, future, now)
        self._reads.move_to_end(channel)
        try:
            future.set_result(await read())
        except BaseException as exc:
            if self._reads.get(channel) is not None and self._reads[channel].frame is future:
                del self._reads[channel]
            future.set_exception(exc if isinstance(exc, Exception) else ConnectionError("snapshot read cancelled"))
            future.exception()  # retrieved here, so that a read nobody else waited on is not reported as lost
            raise
        return future.result()

    def __len__(self) -> int:
        return len(self._reads)

    def _forget_old(self, now: float) -> None:
        while self._reads:
            channel, kept = next(iter(self._reads.items()))
            if now - kept.at < self._keep_s:
                return
            del self._reads[channel]
