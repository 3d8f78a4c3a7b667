"""Floor: the least database work an order needs, with no server at all: the best this machine allows.

    .venv/bin/python -m bench.floor                    # 3 runs of 10 s each way; medians
    .venv/bin/python -m bench.floor --runs 1 --duration 5

An order is 10 commands from its devices (cart.create, cart.add twice, order.place,
payment.start, payment.progress, payment.result, order.start, order.ready,
order.complete), and the design gives every command its own transaction holding its
command-log row and its outbox rows. So the least a command can cost the database is
four round trips: BEGIN, one change, the command-log row (whose key refuses a retry) with
the command's event in one statement (as the server writes them on PostgreSQL), COMMIT.
Here that is all there is: cart.create and order.place each insert an order row and the
other commands update the last one; no menu, stock, cart, payment or deadline rows, no
event published, no frame sent or read. The real flow (bench.orders) makes 55 round trips
per order (35 statements, and BEGIN and COMMIT of 10 transactions); this makes 40.

It runs on the orders benchmark's database, from 32 concurrent connections of this
process pinned to core 0, where the orders benchmark pins the server. Two ways: through
asyncpg itself, and as the server runs its statements (a session of its `Database`
holding the transaction, the statements prepared and run on the driver:
persistence/prepared.py), the least the server's one code path for SQLite and PostgreSQL
can use. It prints complete orders/s and CPU milliseconds per order of this process and
of PostgreSQL (every process named `postgres`; Redis has nothing to do here). At 300
orders/s, one core gives 3.3 ms per order.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
import uuid
from collections.abc import Awaitable, Callable, Iterator
from datetime import UTC, date, datetime
from itertools import count

import asyncpg
from sqlalchemy import bindparam, insert, text, update

from bench.figures import machine, median, table
from bench.processes import asyncpg_url, bench_environment, cpu_seconds_named, pin, prepare_database, run_fast
from persistence import base
from persistence.database import Database, create_engine
from persistence.database_url import normalise_database_url
from persistence.prepared import Prepared
from persistence.tables import Order

CONNECTIONS = 32
COMMANDS = (
    "cart.create",
    "cart.add",
    "cart.add",
    "order.place",
    "payment.start",
    "payment.progress",
    "payment.result",
    "order.start",
    "order.ready",
    "order.complete",
)
# These insert a row (the real cart.create inserts the cart; here it is an order row too); the rest change the last one.
INSERTS = frozenset({"cart.create", "order.place"})
# The status each command leaves the order in (the table's check constraint allows only these).
STATUS = {"payment.result": "paid", "order.start": "preparing", "order.ready": "ready", "order.complete": "completed"}
# Encoded on every command both ways, as the server encodes its replies and events.
REPLY = {"ok": True, "data": {"order_id": 0, "status": "paid", "total": 1250}}
EVENT = {"order_id": 0, "number": 1, "status": "paid", "lines": [{"name": "Burger", "qty": 1}]}

# One command, as a function of (connection number, command name, order id or None); returns the order id.
Command = Callable[[int, str, int | None], Awaitable[int]]
# A way to run commands, and how to close it.
Way = tuple[Command, Callable[[], Awaitable[None]]]


def _status(command: str) -> str:
    return STATUS.get(command, "awaiting_payment")


# The command log row and the command's event in one statement, as the server writes them on PostgreSQL.
JOURNAL = (
    "WITH logged AS (INSERT INTO command_log (principal, command_id, command, reply, created_at)"
    " VALUES ($1, $2, $3, $4, $5))"
    " INSERT INTO outbox (event_id, channel, event, data, created_at, published_at) VALUES ($6, $7, $8, $9, $5, $5)"
)


async def asyncpg_way(url: str, branch_id: int, numbers: Iterator[int]) -> Way:
    """Commands through asyncpg itself (`url` as asyncpg takes it), a connection per worker.

    Not asyncpg's pool: it resets a connection on every release, one more round trip a command.
    """
    connections = [await asyncpg.connect(url) for _ in range(CONNECTIONS)]
    place = (
        "INSERT INTO orders (branch_id, number, business_date, status, currency, subtotal, tax, total, created_at,"
        " updated_at) VALUES ($1, $2, $3, 'awaiting_payment', 'EUR', 1000, 250, 1250, $4, $4) RETURNING id"
    )
    change = "UPDATE orders SET status = $1, updated_at = $2 WHERE id = $3"

    async def command(worker: int, name: str, order_id: int | None) -> int:
        principal, command_id, now = f"device:{worker}", uuid.uuid4().hex, datetime.now(UTC)
        connection = connections[worker]
        async with connection.transaction():
            if order_id is None:
                order_id = await connection.fetchval(place, branch_id, next(numbers), date.today(), now)
            else:
                await connection.execute(change, _status(name), now, order_id)
            logged = (principal, command_id, name, json.dumps(REPLY), now)
            event = (str(uuid.uuid4()), f"branch:{branch_id}", name, json.dumps(EVENT))
            await connection.execute(JOURNAL, *logged, *event)
        assert order_id is not None
        return order_id

    async def close() -> None:
        await asyncio.gather(*(connection.close() for connection in connections))

    return command, close


async def prepared_way(url: str, branch_id: int, numbers: Iterator[int]) -> Way:
    """Commands as the server runs them: a session of the server's `Database` for `url` a command, its statements
    prepared (persistence/prepared.py), so SQLAlchemy holds the transaction and the driver runs the statements."""
    # The server's engine and sessions, with a pool as large as the workers: a smaller one would open and close
    # connections all the time, which is the pool's cost, not the statements'.
    db = Database(create_engine(url, pool_size=CONNECTIONS))
    orders = base.table(Order)
    place = Prepared(
        insert(orders)
        .values(
            branch_id=bindparam("branch_id"),
            number=bindparam("number"),
            business_date=bindparam("business_date"),
            status="awaiting_payment",
            currency="EUR",
            service_mode="eat_in",
            subtotal=1000,
            tax=250,
            total=1250,
            taxes=[],
            version=1,
            created_at=bindparam("now"),
            updated_at=bindparam("now"),
        )
        .returning(orders.c.id)
    )
    change = Prepared(
        update(orders)
        .where(orders.c.id == bindparam("order_id"))
        .values(status=bindparam("s"), updated_at=bindparam("now"))
    )
    journal = Prepared(text(JOURNAL.replace("$", ":p")))

    async def command(worker: int, name: str, order_id: int | None) -> int:
        principal, command_id, now = f"device:{worker}", uuid.uuid4().hex, datetime.now(UTC)
        async with db.session() as session:
            if order_id is None:
                values = {"branch_id": branch_id, "number": next(numbers), "business_date": date.today(), "now": now}
                order_id = await place.scalar(session, values)
            else:
                await change.execute(session, {"order_id": order_id, "s": _status(name), "now": now})
            logged = (principal, command_id, name, json.dumps(REPLY), now)
            event = (str(uuid.uuid4()), f"branch:{branch_id}", name, json.dumps(EVENT))
            await journal.execute(session, {f"p{n}": value for n, value in enumerate((*logged, *event), start=1)})
        assert order_id is not None
        return order_id

    return command, db.dispose


async def orders_per_s(command: Command, duration_s: float) -> tuple[float, float, float]:
    """Complete orders/s, and CPU seconds per order of this process and of PostgreSQL, over `duration_s`.

    Workers start no order after `duration_s` and finish the ones they hold; the span ends when the last is done.
    """
    completed = 0
    stop_at = 0.0

    async def worker(number: int) -> None:
        nonlocal completed
        while time.monotonic() < stop_at:
            order_id: int | None = None
            for name in COMMANDS:
                order_id = await command(number, name, None if name in INSERTS else order_id)
            completed += 1

    # Warm-up: connections, prepared statements, caches.
    stop_at = time.monotonic() + 1.0
    await asyncio.gather(*(worker(n) for n in range(CONNECTIONS)))
    completed = 0
    # This process's own clock last here and first below, so walking /proc is not counted as its work.
    started, stores, own = time.monotonic(), cpu_seconds_named({"postgres"}), time.process_time()
    stop_at = started + duration_s
    await asyncio.gather(*(worker(n) for n in range(CONNECTIONS)))
    own = time.process_time() - own
    stores, elapsed = cpu_seconds_named({"postgres"}) - stores, time.monotonic() - started
    if not completed:
        raise RuntimeError(f"no order completed in {duration_s:g} s")
    return completed / elapsed, own / completed, stores / completed


async def run(runs: int, duration_s: float) -> str:
    """Both ways, `runs` times each; the Markdown report."""
    env = bench_environment()
    await prepare_database(env, fresh=True)
    pin({0})
    url = normalise_database_url(env["DATABASE_URL"])
    raw_url = asyncpg_url(url)
    connection = await asyncpg.connect(raw_url)
    try:
        branch_id = await connection.fetchval("SELECT min(id) FROM branches")
    finally:
        await connection.close()
    # Order numbers are unique per branch and day, across connections and runs.
    numbers = count(1)
    ways = (("asyncpg", asyncpg_way, raw_url), ("the server's prepared statements", prepared_way, url))
    results: dict[str, list[tuple[float, float, float]]] = {name: [] for name, _, _ in ways}
    for number in range(1, runs + 1):
        for name, make, way_url in ways:
            command, close = await make(way_url, branch_id, numbers)
            try:
                results[name].append(await orders_per_s(command, duration_s))
            finally:
                await close()
            print(f"run {number}/{runs}, {name}: {results[name][-1][0]:.0f} orders/s", file=sys.stderr)
    rows = []
    for name, measured in results.items():
        rows.append(
            [
                name,
                f"{median(m[0] for m in measured):.0f}",
                f"{median(m[1] for m in measured) * 1000:.2f}",
                f"{median(m[2] for m in measured) * 1000:.2f}",
            ]
        )
    header = ["through", "complete orders/s", "CPU ms per order: this process", "CPU ms per order: PostgreSQL"]
    return (
        f"Machine: {machine()}\n\nMedians of {runs} run(s) of {duration_s:g} s; {CONNECTIONS} connections, "
        f"{len(COMMANDS)} transactions of 4 round trips per order.\n\n{table(header, rows)}"
    )


def main(argv: list[str] | None = None) -> int:
    """Run the floor benchmark and print its table."""
    parser = argparse.ArgumentParser(prog="python -m bench.floor", description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=3, help="repetitions; the table shows medians (3)")
    parser.add_argument("--duration", type=float, default=10.0, help="seconds per run (10)")
    args = parser.parse_args(argv)
    print(run_fast(run(args.runs, args.duration)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
