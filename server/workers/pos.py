"""Pushing paid orders to the POS: every queued delivery, at least once, with backoff and a budget.

Every instance runs the loop when `POS_API_URL` is set. A round claims a few due rows in
one short transaction (SKIP LOCKED on PostgreSQL; the claim counts the attempt and
leases the row for `LEASE`), pushes them with no transaction open, then records each
outcome in a second short transaction. A row is marked delivered only after a 2xx; if
the process dies mid-push or the outcome cannot be written, the lease runs out and the
row is pushed again with the same idempotency key, which is what lets the POS drop the
duplicate.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import httpx
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from persistence import pos_deliveries
from persistence.base import utcnow
from persistence.database import Database
from persistence.tables import Order
from server.integrations.pos import TIMEOUT_S, Outcome, PosClient, PushResult, backoff_s
from server.payloads.order import order_data
from server.settings import Settings
from server.workers.periodic import Periodic

log = logging.getLogger("server.pos")

INTERVAL_S = 1.0
BATCH = 10
MAX_ATTEMPTS = 10
# Longer than any push can take (pushes of a round run side by side, each bounded by the timeout).
LEASE = timedelta(seconds=60)


@dataclass(frozen=True)
class _Push:
    """One claimed delivery, read out of the claiming transaction."""

    delivery_id: int
    order_id: int
    idempotency_key: str
    attempt: int
    order: dict[str, Any]


class PosWorker:
    """Claims due POS deliveries every second and pushes them; idle when `POS_API_URL` is unset."""

    def __init__(
        self,
        db: Database,
        settings: Settings,
        transport: httpx.AsyncBaseTransport | None = None,
        *,
        timeout_s: float = TIMEOUT_S,
        max_attempts: int = MAX_ATTEMPTS,
        rng: Callable[[], float] = random.random,
    ) -> None:
        self._db = db
        self._max_attempts = max_attempts
        self._rng = rng
        self._client = (
            PosClient(settings.POS_API_URL, settings.POS_API_KEY, timeout_s=timeout_s, transport=transport)
            if settings.POS_API_URL
            else None
        )
        self._loop = Periodic("pos-push", self.run_once, INTERVAL_S, log, batch=BATCH)

    @property
    def enabled(self) -> bool:
        """True when there is a POS to push to."""
        return self._client is not None

    async def run_once(self, now: datetime | None = None) -> int:
        """Push what is due by `now` (one batch at most); returns how many deliveries were attempted.

        Outcomes are stamped with `now` when it is given (tests), else with the time the push ended.
        """
        if self._client is None:
            return 0
        claimed_at = now or utcnow()
        async with self._db.session() as session:
            pushes = await self._claim(session, claimed_at)
        if not pushes:
            return 0
        results = await asyncio.gather(
            *(self._client.push(push.idempotency_key, push.order) for push in pushes), return_exceptions=True
        )
        finished_at = now or utcnow()
        async with self._db.session() as session:
            for push, result in zip(pushes, results, strict=True):
                if isinstance(result, BaseException):
                    if not isinstance(result, Exception):
                        raise result  # cancelled: the leases bring the rows back
                    log.error("POS push of order %d crashed", push.order_id, exc_info=result)
                    result = PushResult(Outcome.RETRY, f"internal error: {type(result).__name__}")
                await self._record(session, push, result, finished_at)
        return len(pushes)

    async def _claim(self, session: AsyncSession, now: datetime) -> list[_Push]:
        claimed = await pos_deliveries.claim_due(session, now, BATCH, lease_until=now + LEASE)
        if not claimed:
            return []
        ids = [delivery.order_id for delivery in claimed]
        orders = {order.id: order for order in (await session.scalars(select(Order).where(Order.id.in_(ids)))).all()}
        # The order as it is now: the POS sees its current state and lines, keyed by the delivery's key.
        return [_Push(d.id, d.order_id, d.idempotency_key, d.attempts, order_data(orders[d.order_id])) for d in claimed]

    async def _record(self, session: AsyncSession, push: _Push, result: PushResult, at: datetime) -> None:
        if result.outcome is Outcome.DELIVERED:
            await pos_deliveries.mark_delivered(session, push.delivery_id, at)
            log.info("order %d delivered to the POS on attempt %d", push.order_id, push.attempt)
        elif result.outcome is Outcome.REFUSED:
            await pos_deliveries.mark_failed(session, push.delivery_id, push.attempt, result.detail)
            log.warning("the POS refused order %d: %s", push.order_id, result.detail)
        elif push.attempt >= self._max_attempts:
            error = f"gave up after {push.attempt} attempts: {result.detail}"
            await pos_deliveries.mark_failed(session, push.delivery_id, push.attempt, error)
            log.warning("POS push of order %d failed for good: %s", push.order_id, error)
        else:
            delay = backoff_s(push.attempt, self._rng, result.retry_after_s)
            await pos_deliveries.schedule_retry(
                session, push.delivery_id, push.attempt, result.detail, at + timedelta(seconds=delay)
            )
            log.info("POS push of order %d failed (%s); retrying in %.1f s", push.order_id, result.detail, delay)

    def start(self) -> None:
        """Start the background loop (nothing to do without `POS_API_URL`)."""
        if self._client is not None:
            self._loop.start()

    async def close(self) -> None:
        """Stop the loop and close the HTTP connections; pushes in flight are retried after their lease."""
        await self._loop.close()
        if self._client is not None:
            await self._client.aclose()
