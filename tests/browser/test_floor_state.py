"""The kitchen display's and the order board's bookkeeping, run in Chromium as the apps' own modules: tickets and
board numbers kept by order id at the newest version, stale payloads ignored, completed and cancelled tickets gone for
good, a station's cut of a combo, and the order of the tickets."""

from __future__ import annotations

from typing import Any

from playwright.async_api import Page

from tests.live import Live

# The checks run in the page; each returns what it saw, compared below.
KITCHEN = """async () => {
  const { TicketStore, cutToStation, ageClass, formatAge } = await import("/apps/kitchen/tickets.js");
  const order = (id, version, status, paid, extra = {}) =>
    ({ id, version, number: id, status, paid_at: paid, created_at: paid, lines: [], ...extra });
  const store = new TicketStore();
  store.replace([order(1, 2, "paid", "2026-12-07T07:00:00Z"), order(9, 1, "completed", "2026-12-07T07:00:00Z")]);
  const seen = {};
  seen.snapshotIds = [...store.tickets.keys()];
  seen.stale = store.apply(order(1, 1, "preparing", "2026-12-07T07:00:00Z"), "order.preparing");
  seen.statusAfterStale = store.tickets.get(1).status;
  seen.newer = store.apply(order(1, 3, "preparing", "2026-12-07T07:00:00Z"), "order.preparing");
  seen.queued = store.apply(order(2, 1, "paid", "2026-12-07T06:59:00Z"), "order.queued");
  seen.sameAgain = store.apply(order(2, 1, "paid", "2026-12-07T06:59:00Z"), "order.queued");
  seen.completed = store.apply(order(1, 5, "completed", "2026-12-07T07:00:00Z"), "order.completed");
  seen.lateReady = store.apply(order(1, 4, "ready", "2026-12-07T07:00:00Z"), "order.ready");
  seen.refunded = store.apply(order(2, 2, "refunded", "2026-12-07T06:59:00Z"), "order.cancelled");
  seen.left = [...store.tickets.keys()];

  const combo = order(3, 1, "paid", "2026-12-07T07:01:00Z", { lines: [
    { id: 1, name: "Combo", station: "grill", components: [
      { name: "Muffin", station: "grill" }, { name: "Cola", station: "drinks" }] },
    { id: 2, name: "Burger", station: "grill", components: [] },
  ] });
  seen.drinksCut = cutToStation(combo, "drinks").lines.map((l) => [l.name, l.components.map((c) => c.name)]);
  seen.fryerCut = cutToStation(combo, "fryer");
  store.apply(combo, "order.queued");
  store.apply(order(4, 1, "ready", "2026-12-07T06:00:00Z"), "order.ready");
  store.apply(order(5, 1, "paid", "2026-12-07T06:30:00Z"), "order.queued");
  seen.visible = store.visible().map((t) => t.id);
  seen.drinksVisible = store.visible("drinks").map((t) => t.id);
  seen.codes = store.stationCodes();
  seen.ages = [ageClass(10, 300, 600), ageClass(300, 300, 600), ageClass(700, 300, 600)];
  seen.formatted = [formatAge(65), formatAge(3725)];
  return seen;
}"""

BOARD = """async () => {
  const { BoardEntries } = await import("/apps/board/entries.js");
  const board = new BoardEntries();
  const seen = {};
  seen.snapshotReady = board.replace({ preparing: [{ order_id: 1, version: 2, number: 11 }],
                                       ready: [{ order_id: 2, version: 4, number: 12 }] });
  seen.ready = board.apply({ order_id: 1, version: 4, number: 11, column: "ready" });
  seen.stale = board.apply({ order_id: 1, version: 3, number: 11, column: "preparing" });
  seen.off = board.apply({ order_id: 2, version: 5, number: 12, column: null });
  seen.lateBack = board.apply({ order_id: 2, version: 4, number: 12, column: "ready" });
  seen.preparing = board.column("preparing").map((e) => e.number);
  seen.readyColumn = board.column("ready").map((e) => e.number);
  seen.again = board.replace({ preparing: [], ready: [{ order_id: 1, version: 4, number: 11 },
                                                     { order_id: 3, version: 3, number: 13 }] });
  return seen;
}"""


async def run(page: Page, live: Live, script: str) -> dict[str, Any]:
    # Any page of the server's origin can import the apps' modules; `/` is plain JSON and starts no app (the
    # server has no favicon, which the browser would ask for).
    await page.route("**/favicon.ico", lambda route: route.fulfill(status=204))
    await page.goto("/")
    seen: dict[str, Any] = await page.evaluate(script)
    return seen


async def test_the_kitchen_keeps_the_newest_ticket_and_drops_finished_ones(page: Page, live: Live) -> None:
    seen = await run(page, live, KITCHEN)
    assert seen["snapshotIds"] == [1]  # a completed order in a snapshot is not shown
    assert (seen["stale"], seen["statusAfterStale"]) == (None, "paid")
    assert (seen["newer"], seen["queued"], seen["sameAgain"]) == ("changed", "new", "changed")
    # Completed: gone, and an older event arriving late does not bring it back; a refund takes a ticket off too.
    assert (seen["completed"], seen["lateReady"], seen["refunded"]) == ("removed", None, "removed")
    assert seen["left"] == []
    assert seen["drinksCut"] == [["Combo", ["Cola"]]]
    assert seen["fryerCut"] is None
    # Oldest first, a ready order after the open ones; the drinks filter keeps only tickets with drinks.
    assert seen["visible"] == [5, 3, 4]
    assert seen["drinksVisible"] == [3]
    assert seen["codes"] == ["drinks", "grill"]
    assert seen["ages"] == ["fresh", "warn", "late"]
    assert seen["formatted"] == ["1:05", "1:02:05"]


async def test_the_board_keeps_the_newest_entry_and_says_when_a_number_turns_ready(page: Page, live: Live) -> None:
    seen = await run(page, live, BOARD)
    assert seen["snapshotReady"] == [2]
    assert (seen["ready"], seen["stale"], seen["off"], seen["lateBack"]) == ("ready", None, "changed", None)
    assert (seen["preparing"], seen["readyColumn"]) == ([], [11])
    # A snapshot after a gap: the numbers that turned ready meanwhile (not the ones already ready).
    assert seen["again"] == [3]
