"""The device simulator: kiosks with paired terminals, kitchen displays and order boards against a running server.

    make run                                  # one terminal
    .venv/bin/python -m bench.sim             # another: 10 kiosks for 30 s
    .venv/bin/python -m bench.sim --kiosks 50 --orders 1000 --approve-after 0 --kitchen-step 0

Each kiosk builds a cart of one to three items (bench/sim_carts.py), places the order,
starts the payment and waits for its result; a declined card is tried again, three tries
in all, then the order is cancelled (bench/sim_kiosks.py). Each terminal charges what it is asked
after `--approve-after` seconds and declines a `--decline` share (bench/sim_terminals.py).
Kitchen displays share the tickets (each takes the orders whose id falls to it), start,
ready and complete them `--kitchen-step` seconds apart (bench/sim_kitchens.py); order
boards watch `board.updated`. With `--stations grill,drinks` the branch has those
kitchen stations, each with a display that bumps its lines of every ticket
(bench/sim_stations.py); the kitchen displays then only hand over the orders the last
bump made ready. With several `--url`s, devices are spread over them
and each kiosk's terminal sits on another instance than the kiosk. This file holds the
run itself (connecting the devices, listening, timing and counting) and the command line.

It ends with a table: orders placed, paid and completed, errors by code, and latencies
(p50/p95/p99): the `order.place` reply, payment approved (the terminal sends its result) to
`order.queued` on the kitchen display, and `order.ready` (the kitchen sends it) to
`board.updated` on the board (bench/tally.py). The devices live in a branch of their own ("Simulator"),
made in the server's database (bench/provision.py).

Every device behaves like a real one (channels/reconnecting.py): closed by the server, it reconnects
with a jittered backoff and resumes, a kiosk, terminal or display takes up from a snapshot
what it missed, an unanswered command is sent again with the same id, and an event that
shows an older version of an order, payment or board entry than one already heard is
ignored (docs/protocol.md "Versions"). The closing table also counts the closes the devices
recovered from, their reconnections and resends.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import sys
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from functools import partial
from typing import Any, Protocol

from bench.processes import run_fast
from bench.provision import Fleet, NoMenu, SimDevice, provision_for, reissue
from bench.sim_carts import Carts
from bench.sim_client import SimClient, Wants, wants_board, wants_payment, wants_payment_request
from bench.sim_kiosks import PAYMENT_TRIES, Kiosks
from bench.sim_kitchens import KitchenDisplays
from bench.sim_stations import StationDisplays, wants_tickets
from bench.sim_terminals import Terminals
from bench.tally import Tally, show_progress
from channels.client import CommandFailed, HandshakeRefused
from channels.reconnecting import ReconnectingDevice
from persistence.enums import DeviceKind
from server.cli import CommandError, load_settings

CONNECT_BATCH = 200
DRAIN_S = 15.0
REPLY_TIMEOUT_S = 30.0


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
    # Kitchen station codes, each with a display that bumps its lines (none: the kitchen displays do it all).
    stations: tuple[str, ...] = ()


def ws_url(url: str, prefix: str) -> str:
    """The device socket's URL for a server's base URL (`http://host:port` or already `ws://.../ws`)."""
    if url.startswith(("ws://", "wss://")):
        return url
    return url.replace("http", "ws", 1).rstrip("/") + f"{prefix}/ws"


class Meter(Protocol):
    """Something measured over the orders of a run: from the first order to the end of the kitchens' drain."""

    async def start(self) -> None:
        """The orders are about to begin (every device is connected); they wait for this."""

    async def stop(self) -> None:
        """The orders are over (the devices are still connected)."""


class Simulation:
    """One run of a `Plan` against the servers, over the provisioned `Fleet`.

    `meters` are started in turn just before the first order starts and stopped in the reverse
    turn as the tally ends, so that what they measure covers the same span as `Tally.elapsed_s`
    (connecting and closing are outside it).
    Every device is a `ReconnectingDevice`: closed by the server, it reconnects and resumes, and
    a device closed with 4001 gets a new token from `renew` (none: it tries the old one again).
    """

    def __init__(
        self,
        plan: Plan,
        fleet: Fleet,
        ws_urls: list[str],
        meters: Sequence[Meter] = (),
        renew: Callable[[SimDevice], Awaitable[str]] | None = None,
    ) -> None:
        self.plan = plan
        self.fleet = fleet
        self.urls = ws_urls
        self.meters = meters
        self.renew = renew
        self.tally = Tally()
        self.rng = random.Random(plan.seed)
        self.stopping = asyncio.Event()
        # Set before the listeners are cancelled: on Python 3.11 asyncio.wait_for can swallow a cancellation
        # that lands as a frame arrives, and a listener that only watched its cancellation would go on forever.
        self.finished = False
        self.carts = Carts(self.rng, fleet.locales)
        self.approved_at: dict[int, float] = {}
        self.ready_at: dict[int, float] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self._clients: list[ReconnectingDevice] = []
        self.station_clients: dict[str, ReconnectingDevice] = {}
        # A run starts a new tally as its orders begin: the kiosks read the current one.
        self.kiosks = Kiosks(
            self._error,
            self.carts,
            lambda: self.tally,
            self._more_orders,
            plan.approve_after_s,
            plan.think_s,
            REPLY_TIMEOUT_S,
        )
        self.terminals = Terminals(
            self._spawn,
            self._error,
            self.rng,
            self.approved_at,
            plan.approve_after_s,
            plan.decline_share,
            REPLY_TIMEOUT_S,
        )
        self.kitchens = KitchenDisplays(
            self._spawn,
            self._error,
            len(fleet.kitchens),
            bool(fleet.stations),
            self.ready_at,
            self._queued,
            self._cooked,
            plan.kitchen_step_s,
            REPLY_TIMEOUT_S,
        )
        self.stations = StationDisplays(self._spawn, self._error, self.ready_at, plan.kitchen_step_s, REPLY_TIMEOUT_S)

    def _spawn(self, work: Awaitable[None]) -> None:
        task = asyncio.ensure_future(work)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _connect(self, device: SimDevice, index: int, wants: Wants) -> ReconnectingDevice:
        renew = None if self.renew is None else partial(self.renew, device)
        count = len(self.urls)
        # A kiosk greets its customers in a language of the branch's, picked at random.
        locales = self.fleet.locales if device.kind == DeviceKind.KIOSK else ()
        locale = self.rng.choice(locales) if locales else None
        client = ReconnectingDevice(
            [self.urls[(index + step) % count] for step in range(count)],  # its own instance first
            device.token,
            renew=renew,
            make_client=partial(SimClient, wants=wants, locale=locale),
            counts=self.tally.connections,
            rng=random.Random(self.rng.random()),
        )
        await client.start()
        self._clients.append(client)
        return client

    async def _connect_all(
        self,
    ) -> tuple[list[ReconnectingDevice], dict[int, ReconnectingDevice], list[ReconnectingDevice], list[Any]]:
        # Each device with the events its handler below acts on (the handlers check again: this only saves work).
        jobs: list[tuple[SimDevice, int, Wants]] = []
        for index, kiosk in enumerate(self.fleet.kiosks):
            jobs.append((kiosk, index, wants_payment))
            assert kiosk.paired_terminal_id is not None
            terminal = self.fleet.terminals[kiosk.paired_terminal_id]
            jobs.append((terminal, index + 1, wants_payment_request))
        jobs += [(device, i, partial(self.kitchens.wants, i)) for i, device in enumerate(self.fleet.kitchens)]
        jobs += [(device, i, wants_board) for i, device in enumerate(self.fleet.boards)]
        jobs += [(device, i, wants_tickets) for i, device in enumerate(self.fleet.stations.values())]
        clients: list[ReconnectingDevice] = []
        for start in range(0, len(jobs), CONNECT_BATCH):
            batch = jobs[start : start + CONNECT_BATCH]
            clients += await asyncio.gather(*(self._connect(device, at, wants) for device, at, wants in batch))
        by_device = {device.id: client for (device, _, _), client in zip(jobs, clients, strict=True)}
        kiosks = [by_device[k.id] for k in self.fleet.kiosks]
        terminals = {t_id: by_device[t_id] for t_id in self.fleet.terminals}
        kitchens = [by_device[k.id] for k in self.fleet.kitchens]
        boards = [by_device[b.id] for b in self.fleet.boards]
        self.station_clients = {code: by_device[d.id] for code, d in self.fleet.stations.items()}
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

    async def _listen(
        self,
        client: ReconnectingDevice,
        on_event: Callable[[dict[str, Any]], None],
        on_snapshot: Callable[[dict[str, Any]], None] | None = None,
    ) -> None:
        while not self.finished and not client.closed.is_set():
            try:
                frame = await client.next_frame(timeout=1.0)
            except TimeoutError:
                continue
            kind = frame.get("type")
            if kind == "event" and client.versions.is_newest(frame["event"], frame["data"]):
                on_event(frame)  # an older state than one already heard (out of order across instances) is ignored
            elif kind == "snapshot" and on_snapshot is not None:
                on_snapshot(frame)
        if not self.finished:
            # The device stopped for good (4003: disabled); its waits fail from now on, and the close says why.
            self.tally.errors[f"closed {client.close_code}"] += 1

    # What the run times and counts

    def _queued(self, order_id: int) -> None:
        approved = self.approved_at.pop(order_id, None)
        if approved is not None:
            self.tally.kitchen_s.append(time.monotonic() - approved)

    def _cooked(self, order_id: int) -> None:
        if order_id in self.kiosks.placed_ids:
            self.tally.complete()  # orders of an earlier run, taken from a snapshot, are not this run's

    def _board_event(self, frame: dict[str, Any]) -> None:
        if frame["event"] == "board.updated" and frame["data"]["column"] == "ready":
            ready = self.ready_at.pop(frame["data"]["order_id"], None)
            if ready is not None:
                self.tally.board_s.append(time.monotonic() - ready)

    async def run(self) -> Tally:
        """Connect every device, drive orders until the plan is met, let the kitchens finish, close."""
        kiosks, terminals, kitchens, boards = await self._connect_all()
        menu = await kiosks[0].command("menu.get")
        self.carts.take_menu(menu)
        if not self.carts.menu:
            raise CommandError("the simulator's branch sells nothing orderable")
        for kiosk, device in zip(kiosks, self.fleet.kiosks, strict=True):
            self._spawn(
                self._listen(kiosk, partial(self.kiosks.event, device.id), partial(self.kiosks.snapshot, device.id))
            )
        for terminal in terminals.values():
            self._spawn(
                self._listen(
                    terminal, partial(self.terminals.event, terminal), partial(self.terminals.snapshot, terminal)
                )
            )
        for index, kitchen in enumerate(kitchens):
            self._spawn(
                self._listen(
                    kitchen,
                    partial(self.kitchens.event, kitchen, index),
                    partial(self.kitchens.snapshot, kitchen, index),
                )
            )
        for board in boards:
            self._spawn(self._listen(board, self._board_event))
        for code, display in self.station_clients.items():
            self._spawn(
                self._listen(
                    display,
                    partial(self.stations.event, display, code),
                    partial(self.stations.snapshot, display, code),
                )
            )

        for meter in self.meters:
            await meter.start()
        self.tally = Tally(errors=self.tally.errors, connections=self.tally.connections)
        progress = (
            asyncio.ensure_future(show_progress(self.tally, self.plan.orders, self.plan.duration_s))
            if self.plan.progress
            else None
        )
        shoppers = [
            asyncio.ensure_future(self.kiosks.shop(c, d.id)) for c, d in zip(kiosks, self.fleet.kiosks, strict=True)
        ]
        try:
            await asyncio.wait_for(self.stopping.wait(), self.plan.duration_s)
        except TimeoutError:
            self.stopping.set()
        await asyncio.wait(shoppers, timeout=DRAIN_S + self.plan.approve_after_s * PAYMENT_TRIES)
        drain_until = time.monotonic() + DRAIN_S + 3 * self.plan.kitchen_step_s
        while self.tally.completed < self.tally.paid and time.monotonic() < drain_until:  # noqa: ASYNC110
            await asyncio.sleep(0.05)  # the kitchens' last tickets: counted by their own tasks
        self.tally.ended = time.monotonic()
        for meter in reversed(self.meters):
            await meter.stop()
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
    fleet = await provision_for(
        settings, kiosks=plan.kiosks, kitchens=plan.kitchens, boards=plan.boards, stations=plan.stations
    )
    urls = [ws_url(url, settings.API_V1_STR) for url in plan.urls]
    return await Simulation(plan, fleet, urls, renew=partial(reissue, settings)).run()


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
    parser.add_argument(
        "--stations",
        default="",
        help="kitchen station codes, comma-separated, each with a display that bumps its lines (none)",
    )
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
        stations=tuple(code for code in args.stations.split(",") if code),
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
