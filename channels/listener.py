"""What the broker calls on one server instance: the hub, and presence after a reconnect."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from channels.brokers.base import Delivery
from channels.hub import Hub
from channels.presence import Presence

log = logging.getLogger("channels.listener")


class InstanceListener:
    """Deliveries and control messages go to the hub; a reconnect also registers this instance's devices again.

    The broker reconnects when Redis was unreachable, or restarted and lost every key: until presence
    registers its connections again, the devices held here look offline everywhere (a kiosk's terminal
    would be `terminal_offline`). So that happens at once rather than at the next refresh.
    """

    def __init__(self, hub: Hub, presence: Presence) -> None:
        self.hub = hub
        self.presence = presence
        self._tasks: set[asyncio.Task[None]] = set()
        self._closed = False

    def deliver(self, delivery: Delivery) -> None:
        """An event of a channel this instance subscribed to."""
        self.hub.deliver(delivery)

    def control(self, message: dict[str, Any]) -> None:
        """A control message sent to every instance."""
        self.hub.control(message)

    def reconnected(self) -> None:
        """Catch every channel up, and register this instance's device connections again."""
        if self._closed:
            return
        self.hub.reconnected()
        task = asyncio.get_running_loop().create_task(self._refresh(), name="presence-after-reconnect")
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def close(self) -> None:
        """Cancel a registration still running (its Redis may hang); a reconnect reported later is ignored."""
        self._closed = True
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    async def _refresh(self) -> None:
        try:
            await self.presence.refresh()
        except Exception as exc:
            # The periodic refresh tries again within its period.
            log.warning("presence refresh after the broker reconnected failed: %s", exc)
