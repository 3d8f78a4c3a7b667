"""apps/shared/client.js in Chromium: hello and snapshots, an offline banner and a resume after the server sends the
connection away, commands, and stale versions and repeated events dropped."""

from __future__ import annotations

import asyncio
from typing import Any

from playwright.async_api import Page, expect

from channels import names
from channels.client import DeviceClient
from channels.frames import GOING_AWAY
from channels.hub import close_message
from persistence.enums import DeviceKind
from server.demo import DemoResult
from tests.flows.test_demo_walk_through import token
from tests.live import Live

START = """async (token) => {
  const { DeviceConnection, showStatus } = await import("/apps/shared/client.js");
  const banner = document.createElement("div");
  banner.id = "status";
  banner.className = "status-banner";
  document.body.append(banner);
  window.log = [];
  window.connection = new DeviceConnection({
    token,
    onWelcome: (welcome) => log.push({ kind: "welcome", welcome }),
    onSnapshot: (channel, data) => log.push({ kind: "snapshot", channel, data }),
    onEvent: (channel, event, data) => log.push({ kind: "event", channel, event, data }),
    onStatus: (status) => { log.push({ kind: "status", status }); showStatus(banner, status); },
  });
  connection.start();
}"""


async def blank_page(page: Page) -> None:
    """A same-origin page holding no app (the server's JSON root), to import the shared modules into."""
    await page.route("**/favicon.ico", lambda route: route.fulfill(status=204, body=""))
    await page.goto("/")


async def log_of(page: Page, kind: str) -> list[dict[str, Any]]:
    entries: list[dict[str, Any]] = await page.evaluate(f"log.filter((entry) => entry.kind === '{kind}')")
    return entries


async def test_the_client_says_hello_goes_offline_when_sent_away_and_resumes_what_it_missed(
    page: Page, live: Live, demo: DemoResult
) -> None:
    kiosk_token = token(live.services, demo, DeviceKind.KIOSK)
    kiosk_id = next(device.id for device in demo.devices if device.kind == DeviceKind.KIOSK)
    channel = names.device(kiosk_id)
    await blank_page(page)
    await page.evaluate(START, kiosk_token)
    await page.wait_for_function("log.some((entry) => entry.kind === 'welcome')")
    await page.wait_for_function("log.filter((e) => e.kind === 'snapshot').length === 2")
    snapshots = {entry["channel"] for entry in await log_of(page, "snapshot")}
    assert snapshots == {channel, names.branch_menu(demo.branch_id)}
    await expect(page.locator("#status")).to_be_hidden()

    created = await page.evaluate("connection.command('cart.create', {service_mode: 'takeaway'})")
    assert created["status"] == "open"
    failed = await page.evaluate(
        "connection.command('cart.add', {cart_id: 999999, item_id: 1}).catch((e) => [e.name, e.code])"
    )
    assert failed == ["CommandError", "not_found"]

    # Sent away with a hint to come back in 2 s: meanwhile another connection of the kiosk makes a cart.
    await live.services.send_control(
        close_message(principal=f"device:{kiosk_id}", code=GOING_AWAY, reason="server going away; retry_after=2.0")
    )
    await expect(page.locator("#status")).to_have_attribute("data-status", "offline")
    await expect(page.locator("#status")).to_be_visible()
    async with asyncio.timeout(20), DeviceClient(live.ws, kiosk_token) as other:
        missed = await _new_cart(other)
    await page.wait_for_function(
        "(id) => log.some((e) => e.kind === 'event' && e.event === 'cart.updated' && e.data.id === id)", arg=missed
    )
    await expect(page.locator("#status")).to_be_hidden()
    welcomes = await log_of(page, "welcome")
    assert len(welcomes) == 2
    assert welcomes[1]["welcome"]["channels"][channel]["resumed"] is True
    # Resumed, so no second snapshot of the kiosk's channel: the missed event came as an event.
    assert [entry["channel"] for entry in await log_of(page, "snapshot")].count(channel) == 1
    statuses = [entry["status"] for entry in await log_of(page, "status")]
    assert statuses == ["connecting", "online", "offline", "connecting", "online"]


async def _new_cart(client: DeviceClient) -> int:
    cart = await client.command("cart.create", {"service_mode": "eat_in"})
    return int(cart["id"])


async def test_stale_versions_and_events_seen_before_are_dropped(page: Page, live: Live) -> None:
    """Fed frames directly: an older version of an order is dropped, a repeated seq too; a snapshot's older row
    gives way to the newer payload held."""
    await blank_page(page)
    seen = await page.evaluate(
        """async () => {
          const { DeviceConnection } = await import("/apps/shared/client.js");
          const events = [];
          let snapshot = null;
          const connection = new DeviceConnection({
            token: "t",
            url: "ws://127.0.0.1:9/none",
            onEvent: (channel, event, data) => events.push([event, data.version]),
            onSnapshot: (channel, data) => { snapshot = data; },
          });
          const socket = {};
          connection.socket = socket;
          const frame = (seq, event, version) => JSON.stringify({
            type: "event", channel: "branch:1:orders", seq, epoch: "e", event, data: { id: 7, version },
          });
          connection._receive(socket, frame(1, "order.paid", 3));
          connection._receive(socket, frame(2, "order.placed", 2));   // older: dropped
          connection._receive(socket, frame(2, "order.placed", 2));   // the same seq again: dropped
          connection._receive(socket, frame(3, "order.ready", 5));
          connection._receive(socket, frame(1, "order.paid", 3));     // seen before: dropped
          connection._receive(socket, JSON.stringify({
            type: "snapshot", channel: "branch:1:orders", seq: 3, epoch: "e",
            data: { orders: [{ id: 7, version: 4, status: "preparing" }, { id: 8, version: 1 }] },
          }));
          return { events, snapshot, channel: connection.channels.get("branch:1:orders") };
        }"""
    )
    assert seen["events"] == [["order.paid", 3], ["order.ready", 5]]
    assert seen["snapshot"]["orders"] == [{"id": 7, "version": 5}, {"id": 8, "version": 1}]
    assert seen["channel"] == {"seq": 3, "epoch": "e"}
