"""Faults: the simulator against two instances while an instance, Redis and PostgreSQL fail in turn.

    .venv/bin/python -m bench.faults                  # 20 s of calm, then 45 s per fault
    .venv/bin/python -m bench.faults --phase 30 --kiosks 6

Everything runs on private stores, started here and stopped by pid at the end (also on an
error or Ctrl-C): a PostgreSQL cluster made with `initdb` in a temporary folder and a
`redis-server` with nothing saved, on ports of their own, and two server instances on them.
The simulator's devices reconnect, resume and resend as channels/reconnecting.py describes. The
faults, one per phase: kill -9 of instance A (started again 5 s later); a restart of Redis
(every channel's history is lost: devices get snapshots); a restart of PostgreSQL.

Then the simulator stops, the servers' deadlines get `--settle` seconds to end what is left
awaiting payment, and the database is checked: every order placed is completed or in a
final state (cancelled, refunded) or else stuck, and stock is conserved: each item's stock
went down by exactly the quantities of its orders that were not cancelled (cancelled ones
gave theirs back). One Markdown row per phase: orders placed then, completed, cancelled,
stuck; commands failed by code; closes the devices recovered from; seconds until the rate
of completed orders was back to normal (80% of the rate in the 10 s before the fault).
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import partial
from pathlib import Path

import asyncpg

from bench.figures import machine, table
from bench.private import (
    Instance,
    PrivatePostgres,
    PrivateRedis,
    instances,
    private_folder,
    private_postgres,
    private_redis,
)
from bench.processes import ROOT, bench_environment, prepare_database, run_fast, server_command
from bench.provision import Fleet, provision_for, reissue
from bench.sim import Plan, Simulation
from server.settings import Settings

SERVER_PORTS = (8331, 8332)
POSTGRES_PORT = 55432
REDIS_PORT = 56379
STOCK = 1_000_000
BEFORE_S = 10.0  # the rate before a fault: completions in the last 10 s
WINDOW_S = 5.0  # the rate after it: a sliding 5 s window
NORMAL_SHARE = 0.8
DOWN_S = 5.0  # how long the killed instance stays down
FINAL = ("completed", "cancelled", "refunded")


@dataclass
class Phase:
    """One fault and what followed it until the next one."""

    name: str
    started: float
    started_at: datetime
    errors: Counter[str] = field(default_factory=Counter)
    closes: Counter[str] = field(default_factory=Counter)
    recovery_s: float | None = None


def recovery_s(completed_at: list[float], start: float, end: float) -> float | None:
    """Seconds from `start` until the completion rate was back to normal; None if not before `end`."""
    before = sum(1 for t in completed_at if start - BEFORE_S <= t < start) / BEFORE_S
    if before == 0:
        return None
    moment = start
    while moment + WINDOW_S <= end:
        window = sum(1 for t in completed_at if moment <= t < moment + WINDOW_S) / WINDOW_S
        if window >= NORMAL_SHARE * before:
            return moment - start
        moment += 0.5
    return None


class FaultRun:
    """The stores, the instances, the simulator and the faults, in order."""

    def __init__(self, args: argparse.Namespace, postgres: PrivatePostgres, redis: PrivateRedis, logs: Path) -> None:
        self.args = args
        self.postgres = postgres
        self.redis = redis
        self.logs = logs
        self.phases: list[Phase] = []

    async def _restart_instance(self, instance: Instance) -> None:
        await instance.kill()
        await asyncio.sleep(DOWN_S)
        await instance.start()

    async def _stock(self, url: str, branch_id: int) -> None:
        connection = await asyncpg.connect(url)
        try:
            await connection.execute(
                "UPDATE items_live_available SET stock = $1, available = true WHERE branch_id = $2", STOCK, branch_id
            )
        finally:
            await connection.close()

    async def run(self) -> str:
        """Prepare, run every fault, check the database; the report."""
        env = bench_environment()
        env.update(
            DATABASE_URL=self.postgres.url,
            REDIS_URL=self.redis.url,
            ORDER_PAYMENT_TIMEOUT_S=str(self.args.settle // 2),
            PAYMENT_TIMEOUT_S=str(self.args.settle // 3),
            SHUTDOWN_GRACE_S="3",
        )
        await prepare_database(env, fresh=True)
        settings = Settings(_env_file=None, DATABASE_URL=env["DATABASE_URL"], REDIS_URL=env["REDIS_URL"])
        fleet = await provision_for(settings, kiosks=self.args.kiosks, kitchens=2, boards=1)
        await self._stock(self.postgres.url, fleet.branch_id)
        servers = [
            Instance(server_command(port), port, env, ROOT, self.logs / f"instance-{name}.log")
            for name, port in zip("ab", SERVER_PORTS, strict=True)
        ]
        async with instances(servers):
            urls = [f"ws://127.0.0.1:{port}{settings.API_V1_STR}/ws" for port in SERVER_PORTS]
            plan = Plan(
                urls=urls,
                kiosks=self.args.kiosks,
                kitchens=2,
                boards=1,
                duration_s=None,
                approve_after_s=0.2,
                decline_share=0.1,
                kitchen_step_s=0.2,
                think_s=self.args.think,
                seed=1,
                progress=False,
            )
            simulation = Simulation(plan, fleet, urls, renew=partial(reissue, settings))
            running = asyncio.ensure_future(simulation.run())
            try:
                await self._faults(simulation, servers[0])
            finally:
                simulation.stopping.set()
                tally = await running
        print(f"simulator: {tally.placed} placed, {tally.completed} completed", file=sys.stderr)
        return await self._report(fleet, tally.completed_at)

    async def _faults(self, simulation: Simulation, victim: Instance) -> None:
        faults: list[tuple[str, Callable[[], Awaitable[None]]]] = [
            ("kill -9 of instance A, restarted 5 s later", partial(self._restart_instance, victim)),
            ("Redis restart", self.redis.restart),
            ("PostgreSQL restart", self.postgres.restart),
        ]
        await self._phase(simulation, "none (calm, before the faults)", None, self.args.calm)
        for name, fault in faults:
            await self._phase(simulation, name, fault, self.args.phase)

    async def _phase(
        self, simulation: Simulation, name: str, fault: Callable[[], Awaitable[None]] | None, length_s: float
    ) -> None:
        tally = simulation.tally
        errors, closes = Counter(tally.errors), Counter(tally.connections)
        phase = Phase(name, time.monotonic(), datetime.now(UTC))
        print(f"{name} ...", file=sys.stderr)
        if fault is not None:
            await fault()
        await asyncio.sleep(max(0.0, phase.started + length_s - time.monotonic()))
        phase.errors = simulation.tally.errors - errors
        phase.closes = Counter({k: v for k, v in (simulation.tally.connections - closes).items() if k != "resent"})
        phase.closes["resent"] = simulation.tally.connections["resent"] - closes["resent"]
        if fault is not None:
            phase.recovery_s = recovery_s(simulation.tally.completed_at, phase.started, time.monotonic())
        self.phases.append(phase)

    async def _report(self, fleet: Fleet, completed_at: list[float]) -> str:
        connection = await asyncpg.connect(self.postgres.url)
        try:
            settle_until = time.monotonic() + self.args.settle
            while True:
                open_orders = await connection.fetchval(
                    "SELECT count(*) FROM orders WHERE branch_id = $1 AND status::text <> ALL($2::text[])",
                    fleet.branch_id,
                    list(FINAL),
                )
                if not open_orders or time.monotonic() >= settle_until:
                    break
                await asyncio.sleep(1)
            rows = []
            ends = [p.started_at for p in self.phases[1:]] + [datetime.now(UTC)]
            for phase, end in zip(self.phases, ends, strict=True):
                counts = dict(
                    await connection.fetch(
                        "SELECT status::text, count(*) FROM orders WHERE branch_id = $1 AND created_at >= $2 "
                        "AND created_at < $3 GROUP BY status",
                        fleet.branch_id,
                        phase.started_at,
                        end,
                    )
                )
                placed = sum(counts.values())
                stuck = sum(n for status, n in counts.items() if status not in FINAL)
                rows.append(
                    [
                        phase.name,
                        placed,
                        counts.get("completed", 0),
                        counts.get("cancelled", 0) + counts.get("refunded", 0),
                        stuck,
                        _counts(phase.errors),
                        _counts(phase.closes),
                        "–" if phase.name.startswith("none") else _seconds(phase.recovery_s, self.args.phase),
                    ]
                )
            stuck_rows = await connection.fetch(
                "SELECT o.id, o.status::text AS status, o.created_at, "
                "(SELECT string_agg(p.status::text, ',' ORDER BY p.id) FROM payments p WHERE p.order_id = o.id) "
                "AS payments FROM orders o WHERE o.branch_id = $1 AND o.status::text <> ALL($2::text[]) ORDER BY o.id",
                fleet.branch_id,
                list(FINAL),
            )
            stock = await connection.fetch(
                "SELECT a.item_id, $2 - a.stock AS taken, coalesce(sum(l.qty) FILTER (WHERE o.status::text NOT IN "
                "('cancelled', 'refunded')), 0) AS held FROM items_live_available a "
                "LEFT JOIN order_lines l ON l.item_id = a.item_id "
                "LEFT JOIN orders o ON o.id = l.order_id AND o.branch_id = a.branch_id "
                "WHERE a.branch_id = $1 GROUP BY a.item_id, a.stock ORDER BY a.item_id",
                fleet.branch_id,
                STOCK,
            )
        finally:
            await connection.close()
        header = [
            "fault",
            "orders placed",
            "completed",
            "cancelled",
            "stuck",
            "commands failed, by code",
            "device closes recovered / reconnections / resends",
            "s to normal rate",
        ]
        lines = [f"Machine: {machine()}", "", table(header, rows), ""]
        broken = [row for row in stock if row["taken"] != row["held"]]
        if broken:
            lines.append("STOCK NOT CONSERVED (item: taken from stock / held by orders not cancelled): ")
            lines += [f"- item {row['item_id']}: {row['taken']} / {row['held']}" for row in broken]
        else:
            total = sum(row["taken"] for row in stock)
            lines.append(
                f"Stock conserved: every item's stock went down by what its live orders hold ({total} in all)."
            )
        if stuck_rows:
            lines.append(f"STUCK after {self.args.settle} s of settling: {len(stuck_rows)} order(s):")
            lines += [
                f"- order {row['id']}: {row['status']}, placed {row['created_at']:%H:%M:%S}, "
                f"payments {row['payments'] or 'none'}"
                for row in stuck_rows[:20]
            ]
            lines.append(f"Server logs: {self.logs}")
        else:
            lines.append("Stuck: none; every order placed is completed, cancelled or refunded.")
        return "\n".join(lines)


def _counts(counter: Counter[str]) -> str:
    return ", ".join(f"{key} {value}" for key, value in sorted(counter.items()) if value) or "none"


def _seconds(value: float | None, phase_s: float) -> str:
    return f"not within {phase_s:g} s" if value is None else f"{value:.1f}"


async def run(args: argparse.Namespace) -> str:
    """Start the private stores, run the faults, stop everything; the report."""
    folder = private_folder("kiosk-faults-")
    logs = folder / "logs"
    logs.mkdir()
    print(f"private PostgreSQL on {POSTGRES_PORT}, Redis on {REDIS_PORT}; logs in {logs}", file=sys.stderr)
    async with (
        private_postgres(folder / "pg", POSTGRES_PORT) as postgres,
        private_redis(REDIS_PORT, logs / "redis.log") as redis,
    ):
        return await FaultRun(args, postgres, redis, logs).run()


def main(argv: list[str] | None = None) -> int:
    """Run the fault benchmark and print its table."""
    parser = argparse.ArgumentParser(prog="python -m bench.faults", description=__doc__.split("\n\n")[0])
    parser.add_argument("--kiosks", type=int, default=8, help="kiosks, each with a terminal (8)")
    parser.add_argument("--think", type=float, default=1.0, help="seconds a kiosk waits between orders (1)")
    parser.add_argument("--calm", type=float, default=20.0, help="seconds before the first fault (20)")
    parser.add_argument("--phase", type=float, default=45.0, help="seconds from one fault to the next (45)")
    parser.add_argument("--settle", type=int, default=60, help="seconds the servers get to end open orders (60)")
    args = parser.parse_args(argv)
    print(run_fast(run(args)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
