"""The device simulator: kiosks with paired terminals, kitchen displays and order boards against a running server.

    make run                                  # one terminal
    .venv/bin/python -m bench.sim             # another: 10 kiosks for 30 s
    .venv/bin/python -m bench.sim --kiosks 50 --orders 1000 --approve-after 0 --kitchen-step 0

Each kiosk builds a cart of one to three items, places the order, starts the payment and
waits for its result; a declined card is tried again (three tries, then the order is
cancelled). Each terminal charges what it is asked after `--approve-after` seconds and
declines a `--decline` share. Kitchen displays share the tickets (each takes the orders
whose id falls to it), start, ready and complete them `--kitchen-step` seconds apart;
order boards watch `board.updated`. With several `--url`s, devices are spread over them
and each kiosk's terminal sits on another instance than the kiosk.

It ends with a table: orders placed, paid and completed, errors by code, and latencies
(p50/p95/p99): the `order.place` reply, payment approved (the terminal sends its result) to
`order.queued` on the kitchen display, and `order.ready` (the kitchen sends it) to
`board.updated` on the board. The devices live in a branch of their own ("Simulator"),
made in the server's database (bench/provision.py).
"""

from __future__ import annotations

import argparse
import asyncio
import random
import re
import sys
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from functools import partial
from typing import Any, Protocol

from bench.figures import ms, percentile, table
from bench.processes import run_fast
from bench.provision import Fleet, NoMenu, SimDevice, provision_for
from channels.client import CommandFailed, DeviceClient, HandshakeRefused
from server.cli import CommandError, load_settings

FINAL = {"approved", "declined", "failed", "cancelled", "expired", "needs_refund"}
PAYMENT_TRIES = 3
CONNECT_BATCH = 200
DRAIN_S = 15.0
REPLY_TIMEOUT_S = 30.0
# The start of an event frame as the server writes it (channels/brokers/base.py `event_frame`, and the broker's
# Lua script), with the data's `id` when it comes first (orders). Anchored, and with strings that hold no quote or
# backslash, a match reads those keys exactly; a frame written any other way does not match and is decoded in
# full, which costs time, never a frame.
EVENT_HEAD = re.compile(
    r'\{"type":"event","channel":"[^"\\]*","seq":[0-9]+,"epoch":"[^"\\]*","event":"([^"\\]*)",'
    r'"data":(?:\{"id":([0-9]+)[,}])?'
)

# Whether a device acts on an event: its name, and the data's `id` when the frame's head shows it (else None).
Wants = Callable[[str, int | None], bool]


@dataclass(frozen=True)
class Plan:
    """What to simulate: how many devices, for how long or how many orders, and how they behave."""

    urls: list[str]
    kiosks: int = 10
    kitchens: int = 2
    boards: int = 1
    duration_s: float | None = 30.0
    orders: int | None = None
    approve_after_s: float = 0.5
    decline_share: float = 0.1
    kitchen_step_s: float = 0.5
    think_s: float = 0.0
    seed: int | None = None
    progress: bool = True


@dataclass
class Tally:
    """What happened, counted as it happens."""

    placed: int = 0
    paid: int = 0
    declined: int = 0
    completed: int = 0
    errors: Counter[str] = field(default_factory=Counter)
    place_s: list[float] = field(default_factory=list)
    kitchen_s: list[float] = field(default_factory=list)
    board_s: list[float] = field(default_factory=list)
    started: float = field(default_factory=time.monotonic)
    ended: float | None = None

    @property
    def elapsed_s(self) -> float:
        """Seconds from the first order to the end of the run (or now)."""
        return (self.ended or time.monotonic()) - self.started

    def report(self) -> str:
        """The closing table (Markdown)."""
        rate = self.completed / self.elapsed_s if self.elapsed_s > 0 else 0.0
        counts = table(
            ["orders", "count"],
            [
                ["placed", self.placed],
                ["paid", self.paid],
                ["completed", self.completed],
                ["declined payments", self.declined],
                ["completed per second", f"{rate:.1f}"],
            ],
        )
        errors = table(["error", "count"], sorted(self.errors.items()) or [["none", 0]])
        latencies = table(
            ["latency (ms)", "n", "p50", "p95", "p99"],
            [
                [label, len(values), *(ms(percentile(values, share)) for share in (0.5, 0.95, 0.99))]
                for label, values in (
                    ("order.place reply", self.place_s),
                    ("payment approved → order.queued (kitchen)", self.kitchen_s),
                    ("order.ready → board.updated (board)", self.board_s),
                )
            ],
        )
        return f"{counts}\n\n{errors}\n\n{latencies}"


class Outcomes:
    """Results that one task waits for and another reports, in whichever order they come."""

    def __init__(self) -> None:
        self._known: dict[int, str] = {}
        self._waiting: dict[int, asyncio.Future[str]] = {}

    def report(self, key: int, value: str) -> None:
        """`key` came out as `value`."""
        waiter = self._waiting.pop(key, None)
        if waiter is not None and not waiter.done():
            waiter.set_result(value)
        else:
            self._known[key] = value

    async def wait(self, key: int) -> str:
        """The value reported for `key`, waiting for it (the caller bounds the wait)."""
        if key in self._known:
            return self._known.pop(key)
        waiter: asyncio.Future[str] = asyncio.get_running_loop().create_future()
        self._waiting[key] = waiter
        try:
            return await waiter
        finally:
            self._waiting.pop(key, None)


def ws_url(url: str, prefix: str) -> str:
    """The device socket's URL for a server's base URL (`http://host:port` or already `ws://.../ws`)."""
    if url.startswith(("ws://", "wss://")):
        return url
    return url.replace("http", "ws", 1).rstrip("/") + f"{prefix}/ws"


def _wants_payment(event: str, _id: int | None) -> bool:
    return event.startswith("payment.")


def _wants_payment_request(event: str, _id: int | None) -> bool:
    return event == "payment.requested"


def _wants_board(event: str, _id: int | None) -> bool:
    return event == "board.updated"


class SimClient(DeviceClient):
    """A `DeviceClient` that decodes only the events its device acts on, and every other frame.

    Every kitchen display gets every step of every ticket of the branch, though each acts on
    `order.queued` of its own tickets only: decoding and queueing them all was most of the load
    generator's CPU. Events it skips leave `positions` as they were (the simulator never resumes).
    """

    def __init__(self, url: str, token: str, wants: Wants | None = None) -> None:
        super().__init__(url, token)
        self.wants = wants

    def skips(self, text: str | bytes) -> bool:
        """True for an event frame whose head shows an event the device does not act on."""
        if self.wants is None or not isinstance(text, str):
            return False
        head = EVENT_HEAD.match(text)
        if head is None:
            return False  # a reply, a snapshot, or an event written otherwise: decode it
        order_id = head.group(2)
        return not self.wants(head.group(1), None if order_id is None else int(order_id))


class Meter(Protocol):
    """Something measured over the orders of a run: from the first order to the end of the kitchens' drain."""

    def start(self) -> None:
        """The orders begin (every device is connected)."""

    def stop(self) -> None:
        """The orders are over (before the devices disconnect)."""


class Simulation:
    """One run of a `Plan` against the servers, over the provisioned `Fleet`.

    `meters` are started as the first order starts and stopped as the tally ends, so that what
    they measure covers the same span as `Tally.elapsed_s` (connecting and closing are outside it).
    """

    def __init__(self, plan: Plan, fleet: Fleet, ws_urls: list[str], meters: Sequence[Meter] = ()) -> None:
        self.plan = plan
        self.fleet = fleet
        self.urls = ws_urls
        self.meters = meters
        self.tally = Tally()
        self.rng = random.Random(plan.seed)
        self.stopping = asyncio.Event()
        # Set before the listeners are cancelled: on Python 3.11 asyncio.wait_for can swallow a cancellation
        # that lands as a frame arrives, and a listener that only watched its cancellation would go on forever.
        self.finished = False
        self.menu: list[dict[str, Any]] = []
        self.approved_at: dict[int, float] = {}
        self.ready_at: dict[int, float] = {}
        self.payments: dict[int, Outcomes] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self._clients: list[DeviceClient] = []

    def _spawn(self, work: Awaitable[None]) -> None:
        task = asyncio.ensure_future(work)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _connect(self, device: SimDevice, url: str, wants: Wants) -> DeviceClient:
        client = SimClient(url, device.token, wants)
        await client.connect()
        self._clients.append(client)
        return client

    async def _connect_all(self) -> tuple[list[DeviceClient], dict[int, DeviceClient], list[Any], list[Any]]:
        count = len(self.urls)
        # Each device with the events its handler below acts on (the handlers check again: this only saves work).
        jobs: list[tuple[SimDevice, str, Wants]] = []
        for index, kiosk in enumerate(self.fleet.kiosks):
            jobs.append((kiosk, self.urls[index % count], _wants_payment))
            assert kiosk.paired_terminal_id is not None
            terminal = self.fleet.terminals[kiosk.paired_terminal_id]
            jobs.append((terminal, self.urls[(index + 1) % count], _wants_payment_request))
        jobs += [
            (device, self.urls[i % count], partial(self._kitchen_wants, i))
            for i, device in enumerate(self.fleet.kitchens)
        ]
        jobs += [(device, self.urls[i % count], _wants_board) for i, device in enumerate(self.fleet.boards)]
        clients: list[DeviceClient] = []
        for start in range(0, len(jobs), CONNECT_BATCH):
            batch = jobs[start : start + CONNECT_BATCH]
            clients += await asyncio.gather(*(self._connect(device, url, wants) for device, url, wants in batch))
        by_device = {device.id: client for (device, _, _), client in zip(jobs, clients, strict=True)}
        kiosks = [by_device[k.id] for k in self.fleet.kiosks]
        terminals = {t_id: by_device[t_id] for t_id in self.fleet.terminals}
        kitchens = [by_device[k.id] for k in self.fleet.kitchens]
        boards = [by_device[b.id] for b in self.fleet.boards]
        return kiosks, terminals, kitchens, boards

    def _error(self, exc: BaseException) -> None:
        if isinstance(exc, CommandFailed):
            self.tally.errors[exc.code or "unknown"] += 1
        elif isinstance(exc, TimeoutError):
            self.tally.errors["timeout"] += 1
        else:
            self.tally.errors[type(exc).__name__] += 1

    def _more_orders(self) -> bool:
        if self.stopping.is_set():
            return False
        if self.plan.orders is not None and self.tally.placed >= self.plan.orders:
            self.stopping.set()
            return False
        return True

    def _lines(self) -> list[dict[str, Any]]:
        lines = []
        for item in self.rng.sample(self.menu, k=min(len(self.menu), self.rng.randint(1, 3))):
            options: list[int] = []
            for group in item["option_groups"]:
                picked = [c["id"] for c in group["choices"] if c["is_default"]][: group["max_select"]]
                others = [c["id"] for c in group["choices"] if c["id"] not in picked]
                picked += others[: max(0, group["min_select"] - len(picked))]
                options += picked
            lines.append({"item_id": item["id"], "qty": self.rng.randint(1, 2), "options": options})
        return lines

    async def _kiosk(self, client: DeviceClient, kiosk_id: int) -> None:
        outcomes = self.payments.setdefault(kiosk_id, Outcomes())
        while self._more_orders():
            self.tally.placed += 1  # counted before the reply, so --orders is never overshot
            try:
                cart = await client.command("cart.create", timeout=REPLY_TIMEOUT_S)
                for line in self._lines():
                    await client.command("cart.add", {"cart_id": cart["id"], **line}, timeout=REPLY_TIMEOUT_S)
                sent = time.monotonic()
                order = await client.command("order.place", {"cart_id": cart["id"]}, timeout=REPLY_TIMEOUT_S)
                self.tally.place_s.append(time.monotonic() - sent)
            except Exception as exc:
                self.tally.placed -= 1
                self._error(exc)
                await asyncio.sleep(0.2)
                continue
            try:
                await self._pay(client, outcomes, order["id"])
            except Exception as exc:
                self._error(exc)
            if self.plan.think_s:
                await asyncio.sleep(self.plan.think_s)

    async def _pay(self, client: DeviceClient, outcomes: Outcomes, order_id: int) -> None:
        for _ in range(PAYMENT_TRIES):
            payment = await client.command("payment.start", {"order_id": order_id}, timeout=REPLY_TIMEOUT_S)
            async with asyncio.timeout(self.plan.approve_after_s + REPLY_TIMEOUT_S):
                status = await outcomes.wait(payment["id"])
            if status in ("approved", "needs_refund"):
                self.tally.paid += 1
                return
            self.tally.declined += 1
        await client.command("order.cancel", {"order_id": order_id}, timeout=REPLY_TIMEOUT_S)

    async def _listen(self, client: DeviceClient, on_event: Callable[[dict[str, Any]], None]) -> None:
        while not self.finished and not client.closed.is_set():
            try:
                frame = await client.next_frame(timeout=1.0)
            except TimeoutError:
                continue
            if frame.get("type") == "event":
                on_event(frame)
        if not self.finished:
            # The server closed it (4008 when the device read too slowly, say). The simulator does not reconnect,
            # so this device's waits time out from now on; the close says why.
            self.tally.errors[f"closed {client.close_code}"] += 1

    def _kiosk_event(self, kiosk_id: int, frame: dict[str, Any]) -> None:
        if frame["event"].startswith("payment.") and frame["data"]["status"] in FINAL:
            self.payments.setdefault(kiosk_id, Outcomes()).report(frame["data"]["id"], frame["data"]["status"])

    def _terminal_event(self, client: DeviceClient, frame: dict[str, Any]) -> None:
        if frame["event"] == "payment.requested":
            self._spawn(self._charge(client, frame["data"]))

    async def _charge(self, client: DeviceClient, payment: dict[str, Any]) -> None:
        try:
            await client.command("payment.progress", {"payment_id": payment["id"], "status": "processing"})
            if self.plan.approve_after_s:
                await asyncio.sleep(self.plan.approve_after_s)
            approve = self.rng.random() >= self.plan.decline_share
            if approve:
                self.approved_at[payment["order_id"]] = time.monotonic()
            status = "approved" if approve else "declined"
            await client.command("payment.result", {"payment_id": payment["id"], "status": status})
        except Exception as exc:
            self._error(exc)

    def _takes(self, index: int, order_id: int) -> bool:
        return order_id % len(self.fleet.kitchens) == index  # each display takes the orders whose id falls to it

    def _kitchen_wants(self, index: int, event: str, order_id: int | None) -> bool:
        return event == "order.queued" and (order_id is None or self._takes(index, order_id))

    def _kitchen_event(self, client: DeviceClient, index: int, frame: dict[str, Any]) -> None:
        if frame["event"] != "order.queued":
            return
        order_id = frame["data"]["id"]
        if not self._takes(index, order_id):
            return  # another display's ticket
        approved = self.approved_at.pop(order_id, None)
        if approved is not None:
            self.tally.kitchen_s.append(time.monotonic() - approved)
        self._spawn(self._cook(client, order_id))

    async def _cook(self, client: DeviceClient, order_id: int) -> None:
        try:
            for step in ("order.start", "order.ready", "order.complete"):
                if self.plan.kitchen_step_s:
                    await asyncio.sleep(self.plan.kitchen_step_s)
                if step == "order.ready":
                    self.ready_at[order_id] = time.monotonic()
                await client.command(step, {"order_id": order_id}, timeout=REPLY_TIMEOUT_S)
            self.tally.completed += 1
        except Exception as exc:
            self._error(exc)

    def _board_event(self, frame: dict[str, Any]) -> None:
        if frame["event"] == "board.updated" and frame["data"]["column"] == "ready":
            ready = self.ready_at.pop(frame["data"]["order_id"], None)
            if ready is not None:
                self.tally.board_s.append(time.monotonic() - ready)

    async def _progress(self) -> None:
        plan, tally = self.plan, self.tally
        tty = sys.stderr.isatty()
        last_line = 0.0
        while True:
            if plan.orders is not None:
                done, goal, unit = tally.placed, plan.orders, "orders"
            else:
                done, goal, unit = round(tally.elapsed_s), round(plan.duration_s or 0), "s"
            filled = int(30 * min(1.0, done / goal)) if goal else 30
            errors = sum(tally.errors.values())
            line = (
                f"[{'#' * filled}{'.' * (30 - filled)}] {done}/{goal} {unit}  placed {tally.placed}  "
                f"paid {tally.paid}  completed {tally.completed}  errors {errors}"
            )
            now = time.monotonic()
            if tty:
                print(f"\r{line}", end="", file=sys.stderr, flush=True)
            elif now - last_line >= 5:
                print(line, file=sys.stderr, flush=True)
                last_line = now
            await asyncio.sleep(0.25)

    async def run(self) -> Tally:
        """Connect every device, drive orders until the plan is met, let the kitchens finish, close."""
        kiosks, terminals, kitchens, boards = await self._connect_all()
        menu = await kiosks[0].command("menu.get")
        self.menu = [item for category in menu["categories"] for item in category["items"] if item["orderable"]]
        if not self.menu:
            raise CommandError("the simulator's branch sells nothing orderable")
        for kiosk, device in zip(kiosks, self.fleet.kiosks, strict=True):
            self._spawn(self._listen(kiosk, partial(self._kiosk_event, device.id)))
        for terminal in terminals.values():
            self._spawn(self._listen(terminal, partial(self._terminal_event, terminal)))
        for index, kitchen in enumerate(kitchens):
            self._spawn(self._listen(kitchen, partial(self._kitchen_event, kitchen, index)))
        for board in boards:
            self._spawn(self._listen(board, self._board_event))
        progress = asyncio.ensure_future(self._progress()) if self.plan.progress else None

        self.tally = Tally(errors=self.tally.errors)
        for meter in self.meters:
            meter.start()
        shoppers = [asyncio.ensure_future(self._kiosk(c, d.id)) for c, d in zip(kiosks, self.fleet.kiosks, strict=True)]
        try:
            await asyncio.wait_for(self.stopping.wait(), self.plan.duration_s)
        except TimeoutError:
            self.stopping.set()
        await asyncio.wait(shoppers, timeout=DRAIN_S + self.plan.approve_after_s * PAYMENT_TRIES)
        drain_until = time.monotonic() + DRAIN_S + 3 * self.plan.kitchen_step_s
        while self.tally.completed < self.tally.paid and time.monotonic() < drain_until:  # noqa: ASYNC110
            await asyncio.sleep(0.05)  # the kitchens' last tickets: counted by their own tasks
        self.tally.ended = time.monotonic()
        for meter in self.meters:
            meter.stop()
        if progress is not None:
            progress.cancel()
            if sys.stderr.isatty():
                print(file=sys.stderr)
        self.finished = True
        for task in [*shoppers, *self._tasks]:
            task.cancel()
        await asyncio.gather(*shoppers, *self._tasks, return_exceptions=True)
        await asyncio.gather(*(client.close() for client in self._clients), return_exceptions=True)
        return self.tally


async def simulate(plan: Plan) -> Tally:
    """Provision the devices in the server's database and run `plan` against its servers."""
    settings = load_settings()
    fleet = await provision_for(settings, kiosks=plan.kiosks, kitchens=plan.kitchens, boards=plan.boards)
    urls = [ws_url(url, settings.API_V1_STR) for url in plan.urls]
    return await Simulation(plan, fleet, urls).run()


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m bench.sim",
        description="Drive simulated kiosks, terminals, kitchen displays and order boards against a running server.",
    )
    parser.add_argument("--url", action="append", help="server base URL, repeat for several (http://127.0.0.1:8000)")
    parser.add_argument("--kiosks", type=int, default=10, help="kiosks, each with a paired terminal (10)")
    parser.add_argument("--kitchens", type=int, default=2, help="kitchen displays (2)")
    parser.add_argument("--boards", type=int, default=1, help="order boards (1)")
    parser.add_argument("--duration", type=float, default=30.0, help="seconds to run (30)")
    parser.add_argument("--orders", type=int, help="stop after this many orders instead of after --duration")
    parser.add_argument("--approve-after", type=float, default=0.5, help="seconds a terminal takes to charge (0.5)")
    parser.add_argument("--decline", type=float, default=0.1, help="share of charges declined, 0 to 1 (0.1)")
    parser.add_argument("--kitchen-step", type=float, default=0.5, help="seconds between start, ready, complete (0.5)")
    parser.add_argument("--think", type=float, default=0.0, help="seconds a kiosk waits between orders (0)")
    parser.add_argument("--seed", type=int, help="random seed, for a repeatable mix")
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run the simulator from the command line; prints the closing table."""
    args = _parser().parse_args(argv)
    if args.kiosks < 1 or args.kitchens < 1 or args.boards < 0 or not 0 <= args.decline <= 1:
        print("need at least one kiosk and one kitchen display, and --decline between 0 and 1", file=sys.stderr)
        return 2
    plan = Plan(
        urls=args.url or ["http://127.0.0.1:8000"],
        kiosks=args.kiosks,
        kitchens=args.kitchens,
        boards=args.boards,
        duration_s=None if args.orders else args.duration,
        orders=args.orders,
        approve_after_s=args.approve_after,
        decline_share=args.decline,
        kitchen_step_s=args.kitchen_step,
        think_s=args.think,
        seed=args.seed,
    )
    try:
        tally = run_fast(simulate(plan))
    except (CommandError, NoMenu) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except (OSError, HandshakeRefused) as exc:
        where = ", ".join(plan.urls)
        print(f"error: cannot reach the server at {where} ({exc}); is it running (make run)?", file=sys.stderr)
        return 1
    print(tally.report())
    return 0


if __name__ == "__main__":
    sys.exit(main())
