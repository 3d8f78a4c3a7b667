"""The realtime metrics in `/metrics`: connections by kind, commands by outcome and latency, events and overflows."""

from __future__ import annotations

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from channels import names
from channels.client import CommandFailed, DeviceClient
from persistence.enums import DeviceKind
from server.services import Services
from tests.live import add_device, live_server
from tests.realtime.socket_helpers import TIMEOUT_S, bearer, eventually
from tests.rows import add_item
from tests.world import World


def _samples(text: str) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


async def test_metrics_show_the_realtime_traffic(services: Services, world: World) -> None:
    """`/metrics` counts connections by kind, commands by outcome with their latency, events and overflows."""
    item_id = await add_item(services.db, world.branch_a, stock=5)
    _, kiosk_token = await add_device(services, world.branch_a, DeviceKind.KIOSK)
    menu = names.branch_menu(world.branch_a)
    async with (
        live_server(services) as live,
        httpx.AsyncClient(base_url=live.http, timeout=TIMEOUT_S) as http,
        DeviceClient(live.ws, kiosk_token) as kiosk,
    ):
        async with DeviceClient(live.ws, bearer(world.staff_a.headers)) as staff:
            await staff.command("item.set_available", {"item_id": item_id, "available": False}, timeout=TIMEOUT_S)
            await kiosk.next_event(menu, "stock.changed", timeout=TIMEOUT_S)
            with pytest.raises(CommandFailed):
                await kiosk.command("item.set_available", {"item_id": item_id, "available": True}, timeout=TIMEOUT_S)
            during = _samples((await http.get("/metrics")).text)
        await staff.wait_closed(TIMEOUT_S)
        # The server notices the staff socket left once its reader sees the close; give it a moment.
        await eventually(lambda: services.metrics.registry.get_sample_value("ws_connections", {"kind": "user"}) == 0)
        after = _samples((await http.get("/metrics")).text)

    def value(samples: dict[tuple[str, frozenset[tuple[str, str]]], float], name: str, **labels: str) -> float:
        return samples[(name, frozenset(labels.items()))]

    assert value(during, "ws_connections", kind="kiosk") == 1
    assert value(during, "ws_connections", kind="user") == 1
    assert value(after, "ws_connections", kind="user") == 0
    assert value(during, "ws_commands_total", command="item.set_available", outcome="ok") == 1
    assert value(during, "ws_commands_total", command="item.set_available", outcome="forbidden") == 1
    assert value(during, "ws_command_duration_seconds_count", command="item.set_available") == 2
    assert value(during, "ws_command_duration_seconds_sum", command="item.set_available") > 0
    assert value(during, "ws_events_delivered_total") == 1
    assert value(during, "events_published_total") == 1
    assert value(during, "ws_send_queue_overflows_total") == 0
    assert value(during, "outbox_lag_seconds") == 0
