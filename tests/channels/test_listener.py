"""The instance's broker listener (channels/listener.py): a reconnect registers presence again, in a task of its own
that shutting down cancels."""

from __future__ import annotations

import asyncio

from channels.hub import Hub
from channels.listener import InstanceListener
from channels.presence import MemoryPresence
from tests.channels.hub_fakes import LIMIT_S


class HangingPresence(MemoryPresence):
    """Presence whose refresh never ends, as over a Redis that stopped answering; it counts the refreshes begun."""

    def __init__(self) -> None:
        async def announce(channel: str, event: str, data: dict[str, object]) -> None:
            return None

        super().__init__(announce)
        self.begun = 0

    async def refresh(self) -> None:
        self.begun += 1
        await asyncio.Event().wait()


async def test_closing_cancels_the_refresh_in_flight_and_ignores_a_later_reconnect(hub: Hub) -> None:
    presence = HangingPresence()
    listener = InstanceListener(hub, presence)
    listener.reconnected()
    await asyncio.sleep(0)
    assert presence.begun == 1
    async with asyncio.timeout(LIMIT_S):
        await listener.close()
    assert not [task for task in asyncio.all_tasks() if task.get_name() == "presence-after-reconnect"]
    listener.reconnected()  # the broker, closing, reports a last reconnect
    await asyncio.sleep(0)
    assert presence.begun == 1
