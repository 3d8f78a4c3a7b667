"""The scale benchmark's own logic: the chain it provisions, its backoff, how its sockets count gaps, its verdicts."""

from __future__ import annotations

import json
import random
from collections import Counter

import pytest
from sqlalchemy import func, select

from bench.chain import STAFF, Seat, provision_chain, sockets_per_branch, wanted_devices
from bench.scale import Events, FirstConnect, Storm, events_table, first_connect_table, storm_table
from bench.seat_client import BACKOFF_BASE_S, Follower, staff_channels
from channels.reconnecting import backoff_s
from persistence.database import Database
from persistence.tables import Branch, Device, ItemAvailability
from server.auth.principals import principal_for_claims
from server.auth.tokens import TokenCodec
from server.settings import Settings
from tests.rows import add_branch, add_item


def test_a_branch_has_ten_sockets_four_kiosks_two_terminals_two_displays_a_board_and_staff() -> None:
    """Nine devices per branch, by kind, named apart; the tenth socket is staff's."""
    devices = wanted_devices([7, 8])
    assert sockets_per_branch() == 10
    assert len(devices) == 18
    kinds = Counter(kind for branch_id, kind, _ in devices if branch_id == 7)
    assert kinds == {"kiosk": 4, "payment_terminal": 2, "kitchen_display": 2, "order_board": 1}
    assert len({(branch_id, name) for branch_id, _, name in devices}) == 18


def test_full_jitter_waits_anywhere_up_to_the_doubled_base_and_never_past_the_cap() -> None:
    """Attempt n waits in [0, min(5, 0.1·2^n)]; the waits spread over the whole range."""
    rng = random.Random(1)
    for attempt in range(12):
        ceiling = min(5.0, 0.1 * 2**attempt)
        waits = [backoff_s(attempt, rng, BACKOFF_BASE_S) for _ in range(500)]
        assert all(0 <= wait <= ceiling for wait in waits)
        assert min(waits) < ceiling * 0.05
        assert max(waits) > ceiling * 0.95


def _device(kind: str = "kiosk") -> Follower:
    return Follower(Seat(3, kind, 11, "token"), arrivals=[])


def _event(
    channel: str, seq: int, epoch: str = "e1", event: str = "stock.changed", stock: int = 1
) -> dict[str, object]:
    data = {"branch_id": 3, "item_id": 1, "stock": stock}
    return {"type": "event", "channel": channel, "seq": seq, "epoch": epoch, "event": event, "data": data}


def test_a_device_resumes_every_channel_in_its_hello_and_counts_a_refused_resume_as_a_gap() -> None:
    """The first hello resumes nothing; the next names each channel's last seq and epoch; `resumed: false` for a
    channel it asked for is a gap, for one it did not ask for is none."""
    follower = _device()
    assert "resume" not in json.loads(follower.hello())
    follower.status("branch:3:menu", {"seq": 0, "epoch": "e1", "resumed": False})
    follower.frame({"type": "snapshot", "channel": "branch:3:menu", "seq": 0, "epoch": "e1", "data": {}})
    follower.frame(_event("branch:3:menu", 1, stock=9))
    assert follower.gaps == 0
    assert follower.arrivals is not None and [(b, s) for b, s, _ in follower.arrivals] == [(3, 9)]

    hello = json.loads(follower.hello())
    assert hello["resume"] == {"branch:3:menu": {"seq": 1, "epoch": "e1"}}
    follower.status("branch:3:menu", {"seq": 1, "epoch": "e1", "resumed": True})
    follower.status("device:11", {"seq": 0, "epoch": "d1", "resumed": False})
    assert (follower.gaps, follower.resumed) == (0, 1)
    follower.status("branch:3:menu", {"seq": 4, "epoch": "e2", "resumed": False})
    assert follower.gaps == 1


def test_a_skipped_seq_or_an_epoch_changed_without_a_snapshot_is_a_gap_a_repeat_is_not() -> None:
    """Events apply in seq order; a repeat is ignored, a skip or a new epoch counts; a snapshot sets the position."""
    follower = _device()
    follower.frame({"type": "snapshot", "channel": "branch:3:menu", "seq": 2, "epoch": "e1", "data": {}})
    follower.frame(_event("branch:3:menu", 3))
    follower.frame(_event("branch:3:menu", 3))
    assert follower.gaps == 0
    follower.frame(_event("branch:3:menu", 5))
    assert follower.gaps == 1
    follower.frame(_event("branch:3:menu", 1, epoch="e2"))
    assert follower.gaps == 2
    follower.frame({"type": "snapshot", "channel": "branch:3:menu", "seq": 7, "epoch": "e3", "data": {}})
    follower.frame(_event("branch:3:menu", 8, epoch="e3"))
    assert follower.gaps == 2
    assert follower.positions["branch:3:menu"] == (8, "e3")


def test_staff_resume_with_subscribe_since_and_epoch_not_in_the_hello() -> None:
    """A member of staff says no resume on hello; it subscribes to its branch's orders and devices, from where it
    stood on each."""
    follower = Follower(Seat(3, STAFF, 5, "token"))
    assert [json.loads(frame)["data"] for frame in follower.subscribes()] == [
        {"channel": channel} for channel in staff_channels(3)
    ]
    follower.frame({"type": "snapshot", "channel": "branch:3:orders", "seq": 4, "epoch": "o1", "data": {}})
    assert "resume" not in json.loads(follower.hello())
    data = [json.loads(frame)["data"] for frame in follower.subscribes()]
    assert data == [{"channel": "branch:3:orders", "since": 4, "epoch": "o1"}, {"channel": "branch:3:devices"}]


def test_the_tables_say_which_targets_are_met() -> None:
    """Per-socket figures are divided out; a target missed is marked, one met is not."""
    first = FirstConnect(10_000, 20.0, 12.0, 30_000, 100 * 2**20, 100 * 2**20 + 10_000 * 20 * 1024, 0.02, 0)
    text = first_connect_table(first)
    assert "| server CPU per connect | 1.20 ms | ≤ 1.5 ms | yes |" in text
    assert "| server RSS per socket at rest | 20.0 KiB | ≤ 16 KB | **no** |" in text
    assert "| database transactions per connect | 3.00 |" in text
    assert "| idle server CPU (20 s) | 2.0% of a core | ≤ 3% | yes |" in text

    flow = Events(100, 0, 600, latencies=[0.01] * 599 + [0.2])
    assert "| deliveries | 600 of 600 | all | yes |" in events_table(flow)
    assert "| event latency p99 | 10.0 ms | < 50 ms | yes |" in events_table(flow)

    storm = Storm("storm", 4, [0.5, 1.0, 2.0, 16.0], 0.002, 0, 1, 8, 9)
    text = storm_table(storm)
    assert "| time until all welcomed | 16.0 s | ≤ 15 s | **no** |" in text
    assert "| server CPU per resumed connect | 0.50 ms | ≤ 1 ms | yes |" in text
    row = "database transactions per resumed connect (background included)"
    assert f"| {row} | 0.00 | 0 (≤ 0.02) | yes |" in text
    assert "| gaps | 1 | 0 | **no** |" in text
    assert "| database connections open at most | 0 | ≤ 30 (the pool) | yes |" in text
    # A storm that reads the database for each hello is marked.
    busy = Storm("storm", 4, [0.5] * 4, 0.002, 4, 0, 8, 4, database_connections=31)
    assert f"| {row} | 1.00 | 0 (≤ 0.02) | **no** |" in storm_table(busy)
    assert "| database connections open at most | 31 | ≤ 30 (the pool) | **no** |" in storm_table(busy)


@pytest.mark.parametrize("backend", ["postgresql"])  # the benchmark runs on PostgreSQL only
async def test_the_chain_is_provisioned_once_and_its_tokens_name_live_principals_of_their_branch(
    db: Database,
) -> None:
    """Two branches: ten seats each, nine devices each, the menu offered; a second run adds nothing; every token
    names a principal of its seat's branch."""
    await add_item(db, await add_branch(db), stock=None)
    settings = Settings(_env_file=None, DATABASE_URL=db.engine.url.render_as_string(hide_password=False))
    await provision_chain(settings, 2)
    chain = await provision_chain(settings, 2)
    assert len(chain.seats) == 20
    async with db.session() as session:
        branches = (await session.scalars(select(Branch.id).where(Branch.name.like("Scale %")))).all()
        devices = await session.scalar(select(func.count()).select_from(Device).where(Device.branch_id.in_(branches)))
        offers = await session.scalar(
            select(func.count()).select_from(ItemAvailability).where(ItemAvailability.branch_id.in_(branches))
        )
        assert (len(branches), devices, offers) == (2, 18, 2)
        codec = TokenCodec(settings)
        for seat in chain.seats:
            principal = await principal_for_claims(session, codec.decode(seat.token))
            assert (principal.kind, principal.branch_id) == ("user" if seat.kind == STAFF else "device", seat.branch_id)
            assert principal.id == seat.ident
