"""Charging gateway payments through the payment API, and asking it about results that never came.

`payment.start` (with `PAYMENT_API_URL` set) commits a `pending` gateway payment; the
HTTP call cannot happen inside that transaction, so every instance runs this loop.
A round claims a few payments in one short transaction (SKIP LOCKED on PostgreSQL;
the claim stamps `updated_at`, which keeps other instances and the next rounds away
for a while), talks to the API with no transaction open and no row locked, then
records each answer in a transaction of its own, with the row locked again:

- `pending`, never sent (no `provider_ref`): create the intent with the payment's
  idempotency key. An intent comes back `processing` (its id kept as `provider_ref`)
  or already final (`record_result`). A 4xx fails the payment (402: declined); 409 and
  429 are tried again later. When the create gets no usable answer (timeouts, dropped
  connections, 5xx after the client's retries), whether it charged is unknown: the
  intent is looked up by idempotency key at once, and if the API has none, the create
  is sent again (same key) after `retry_s`. `message` says what the last try met.
- `processing` with no word for `status_after_s` (the webhook is late or lost): the
  intent is looked up by `provider_ref`, and looked up again every `status_after_s`.
- `expired` or `cancelled` (by the deadline worker or the kiosk) after a create was
  sent: the API may still approve it, so it is looked up every `late_every_s` for
  `late_window_s` after it ended; an approval is recorded like a terminal's late one.

Webhooks (server/api/payment_webhook.py) apply the same answers with `apply_intent`.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import and_, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from channels.relay import Relay
from channels.unit_of_work import Emit, UnitOfWork
from persistence.base import utcnow
from persistence.database import Database
from persistence.enums import PaymentMethod, PaymentStatus
from persistence.payments import IN_FLIGHT, PaymentRecord, lock_payment, save_payment
from persistence.tables import Payment
from server.errors import ApiError
from server.integrations.payment_gateway import (
    GatewayBusy,
    GatewayDeclined,
    GatewayError,
    GatewayPayment,
    GatewayRejected,
    PaymentGateway,
)
from server.orders.payment_changes import payment_conflict, record_result
from server.payloads.payment import announce_payment
from server.settings import Settings
from server.workers.periodic import Periodic

log = logging.getLogger("server.gateway")

INTERVAL_S = 1.0
BATCH = 10
RETRY_S = 10.0
STATUS_AFTER_S = 30.0
LATE_EVERY_S = 120.0
LATE_WINDOW_S = 1800.0
MESSAGE_LENGTH = 500  # Payment.message
SENT = "sent to the payment API"
# Ended by this server, not by the API, which may still approve them.
ENDED_BY_US = (PaymentStatus.EXPIRED, PaymentStatus.CANCELLED)


async def apply_intent(
    session: AsyncSession, payment: PaymentRecord, intent: GatewayPayment, emit: Emit, settings: Settings
) -> None:
    """Apply what the API says of `payment`'s intent (the payment locked by the caller).

    Not final yet: the intent's id is kept and a pending payment becomes `processing`. Final:
    `record_result`, except that a failure of a payment that already ended changes nothing
    (it ended without money either way). `conflict` when the intent cannot be this
    payment's: another intent id, or another amount or currency.
    """
    if payment.provider_ref not in (None, intent.id):
        raise payment_conflict(payment, f"payment {payment.id} is intent {payment.provider_ref}, not {intent.id}")
    amount_differs = intent.amount is not None and intent.amount != payment.amount
    if amount_differs or (intent.currency is not None and intent.currency != payment.currency.upper()):
        theirs, ours = f"{intent.amount} {intent.currency}", f"{payment.amount} {payment.currency}"
        raise payment_conflict(payment, f"intent {intent.id} is for {theirs}, not {ours}")
    if intent.status == PaymentStatus.PROCESSING:
        if payment.status == PaymentStatus.PENDING:
            payment.provider_ref, payment.status, payment.message = intent.id, PaymentStatus.PROCESSING, None
            await save_payment(session, payment, at=utcnow())
            announce_payment(emit, payment)
        else:
            await _keep_ref(session, payment, intent.id)
        return
    if intent.status != PaymentStatus.APPROVED and payment.status not in IN_FLIGHT:
        await _keep_ref(session, payment, intent.id)
        return  # a failure after the payment ended: nothing was taken, nothing to record
    if intent.status == PaymentStatus.APPROVED and payment.status == PaymentStatus.REFUNDED:
        return  # the approval that was refunded already
    await record_result(session, payment, intent.status, intent.id, intent.message, emit, settings)


async def _keep_ref(session: AsyncSession, payment: PaymentRecord, provider_ref: str) -> None:
    """Keep the intent's id as the payment's reference (written only when it is new to the payment)."""
    if payment.provider_ref != provider_ref:
        payment.provider_ref = provider_ref
        await save_payment(session, payment, at=utcnow())


@dataclass(frozen=True)
class _Job:
    """One claimed payment, read out of the claiming transaction."""

    payment_id: int
    order_id: int
    create: bool
    idempotency_key: str
    provider_ref: str | None
    amount: int
    currency: str


@dataclass(frozen=True)
class _Answer:
    """What the API said: an intent, a refusal, or only a note of what went wrong (the outcome unknown)."""

    intent: GatewayPayment | None = None
    refused: GatewayRejected | None = None
    note: str | None = None


class GatewayWorker:
    """Sends pending gateway payments to the payment API and looks up results that did not arrive."""

    def __init__(
        self,
        db: Database,
        relay: Relay,
        settings: Settings,
        gateway: PaymentGateway,
        *,
        retry_s: float = RETRY_S,
        status_after_s: float = STATUS_AFTER_S,
        late_every_s: float = LATE_EVERY_S,
        late_window_s: float = LATE_WINDOW_S,
    ) -> None:
        self._db = db
        self._relay = relay
        self._settings = settings
        self._gateway = gateway
        self._retry = timedelta(seconds=retry_s)
        self._status_after = timedelta(seconds=status_after_s)
        self._late_every = timedelta(seconds=late_every_s)
        self._late_window = timedelta(seconds=late_window_s)
        self._loop = Periodic("payment-gateway", self.run_once, INTERVAL_S, log, batch=BATCH)

    async def run_once(self, now: datetime | None = None) -> int:
        """Handle what is due by `now` (one batch at most); returns how many payments the API was asked about.

        Notes of a failed try are stamped with `now` when it is given (tests), else with the time the answer came.
        """
        claimed_at = now or utcnow()
        async with self._db.session() as session:
            jobs = await self._claim(session, claimed_at)
        if not jobs:
            return 0
        answers = await asyncio.gather(*(self._ask(job) for job in jobs), return_exceptions=True)
        answered_at = now or utcnow()
        for job, answer in zip(jobs, answers, strict=True):
            if isinstance(answer, BaseException):
                if not isinstance(answer, Exception):
                    raise answer  # cancelled: the claims run out and the next round asks again
                log.error("asking the payment API about payment %d crashed", job.payment_id, exc_info=answer)
                continue
            await self._record(job, answer, answered_at)
        return len(jobs)

    async def _claim(self, session: AsyncSession, now: datetime) -> list[_Job]:
        never_sent = and_(
            Payment.status == PaymentStatus.PENDING,
            Payment.provider_ref.is_(None),
            or_(Payment.message.is_(None), Payment.updated_at <= now - self._retry),
        )
        quiet = and_(Payment.status == PaymentStatus.PROCESSING, Payment.updated_at <= now - self._status_after)
        ended_after_sending = and_(
            Payment.status.in_(ENDED_BY_US),
            Payment.approved_at.is_(None),
            or_(Payment.provider_ref.is_not(None), Payment.message.is_not(None)),
            Payment.finished_at >= now - self._late_window,
            Payment.updated_at <= now - self._late_every,
        )
        statement = (
            select(Payment)
            .where(Payment.method == PaymentMethod.GATEWAY, or_(never_sent, quiet, ended_after_sending))
            .order_by(Payment.updated_at, Payment.id)
            .limit(BATCH)
            .with_for_update(skip_locked=True)
        )
        jobs = []
        for payment in (await session.scalars(statement)).all():
            create = payment.status == PaymentStatus.PENDING
            # The stamp is the claim: nobody asks about this payment again before the next interval.
            payment.updated_at = now
            if create:
                payment.message = payment.message or SENT
            jobs.append(
                _Job(
                    payment.id,
                    payment.order_id,
                    create,
                    payment.idempotency_key,
                    payment.provider_ref,
                    payment.amount,
                    payment.currency,
                )
            )
        return jobs

    async def _ask(self, job: _Job) -> _Answer:
        """One exchange with the API for `job`; never raises for anything the network or the API does."""
        unknown = ""
        if job.create:
            reference = {"payment_id": str(job.payment_id), "order_id": str(job.order_id)}
            try:
                created = await self._gateway.create_payment(job.idempotency_key, job.amount, job.currency, reference)
                return _Answer(intent=created)
            except GatewayBusy as exc:
                return _Answer(note=f"payment API busy, trying again: {exc}")
            except GatewayRejected as exc:
                return _Answer(refused=exc)
            except GatewayError as exc:
                # Maybe charged, maybe not: the intent, if the API made one, is found by its key.
                log.info("create of payment %d got no usable answer (%s); looking it up", job.payment_id, exc)
                unknown = str(exc)
        try:
            if job.provider_ref is not None:
                intent = await self._gateway.get_payment(provider_ref=job.provider_ref)
            else:
                intent = await self._gateway.get_payment(idempotency_key=job.idempotency_key)
        except GatewayError as exc:
            return _Answer(note=f"payment API unreachable, trying again: {exc}")
        if intent is None and job.create:
            return _Answer(note=f"payment API unreachable, trying again: {unknown}")
        if intent is None:
            log.warning("the payment API knows no intent for payment %d", job.payment_id)
        return _Answer(intent=intent)

    async def _record(self, job: _Job, answer: _Answer, at: datetime) -> None:
        try:
            async with UnitOfWork(self._db, self._relay) as uow:
                payment = await lock_payment(uow.session, job.payment_id)
                assert payment is not None  # payments are never deleted
                await self._apply(uow.session, payment, answer, uow.emit, at)
        except ApiError as exc:
            log.error("the payment API's answer for payment %d does not fit it: %s", job.payment_id, exc.message)

    async def _apply(
        self, session: AsyncSession, payment: PaymentRecord, answer: _Answer, emit: Emit, at: datetime
    ) -> None:
        if answer.intent is not None:
            await apply_intent(session, payment, answer.intent, emit, self._settings)
        elif answer.refused is not None:
            if payment.status in IN_FLIGHT:
                status = PaymentStatus.DECLINED if isinstance(answer.refused, GatewayDeclined) else PaymentStatus.FAILED
                log.warning("the payment API refused payment %d: %s", payment.id, answer.refused)
                message = f"refused by the payment API: {answer.refused}"[:MESSAGE_LENGTH]
                await record_result(session, payment, status, None, message, emit, self._settings)
        elif answer.note is not None and payment.status == PaymentStatus.PENDING:
            # The next try is due `retry_s` after this one ended: the note is stamped with that moment.
            payment.message = answer.note[:MESSAGE_LENGTH]
            await save_payment(session, payment, at=at)

    def start(self) -> None:
        """Start the background loop."""
        self._loop.start()

    async def close(self) -> None:
        """Stop the loop and close the HTTP connections; a payment mid-call is asked about again later."""
        await self._loop.close()
        await self._gateway.aclose()
