"""The instance's broker listener (channels/listener.py): a reconnect registers presence again, in a task of its own
that shutting down cancels, also when the services stop."""

from __future__ import annotations

import asyncio

import pytest

from channels.hub import Hub
from channels.listener import InstanceListener
from channels.presence import MemoryPresence
from server.services import Services
from tests.channels.hub_fakes import LIMIT_S


async def _hang() -> None:
    """A presence refresh over a Redis that stopped answering."""
    await asyncio.Event().wait()


class HangingPresence(MemoryPresence):
    """Presence whose refresh never ends; it counts the refreshes begun."""

    def __init__(self) -> None:
        async def announce(channel: str, event: str, data: dict[str, object]) -> None:
            return None

        super().__init__(announce)
        self.begun = 0

    async def refresh(self) -> None:
        self.begun += 1
        await _hang()


async def test_closing_cancels_the_refresh_in_flight_and_ignores_a_later_reconnect(hub: Hub) -> None:
    presence = HangingPresence()
    listener = InstanceListener(hub, presence)
    listener.reconnected()
    await asyncio.sleep(0)
    assert presence.begun == 1
    (refresh,) = listener._tasks
    async with asyncio.timeout(LIMIT_S):
        await listener.close()
    assert refresh.cancelled()
    listener.reconnected()  # the broker, closing, reports a last reconnect
    await asyncio.sleep(0)
    assert presence.begun == 1


async def test_stopping_the_services_cancels_a_refresh_still_running(
    services: Services, monkeypatch: pytest.MonkeyPatch
) -> None:
    await services.start()
    monkeypatch.setattr(services.presence, "refresh", _hang)
    assert services._listener is not None
    services._listener.reconnected()
    (refresh,) = services._listener._tasks
    async with asyncio.timeout(LIMIT_S):
        await services.stop()
    assert refresh.cancelled()
