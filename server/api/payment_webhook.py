"""REST route: the payment API tells the server what became of a payment (its webhook).

    POST {API_V1_STR}/payments/webhook
    Payment-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256 of "<t>.<raw body>" keyed with PAYMENT_API_KEY>
    {"id": "evt_...", "type": "payment_intent.succeeded", "data": {"object": <payment intent>}}

A delivery is accepted only with a valid signature whose timestamp is within
`TOLERANCE_S` of the server's clock (either way), so a captured delivery cannot be
replayed later. Each event id is acted on once: it is stored (`webhook_events`) in the
transaction that applies it, and a second delivery answers 200 with no effect. An
event for a payment this server does not know answers 404 and is not stored, so the
API delivers it again (it may have raced the worker that created the intent). Events
of other types are acknowledged and ignored. docs/payment-gateway.md is the
integrator's page.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import time

from pydantic import BaseModel, ConfigDict, Field, ValidationError
from sqlalchemy import bindparam
from sqlalchemy.ext.asyncio import AsyncSession

from persistence.base import utcnow
from persistence.enums import PaymentMethod
from persistence.payments import PaymentRecord, lock_gateway_payment, lock_payment
from persistence.tables import WebhookEvent
from persistence.upsert import Upsert
from server.api.routing import ApiRouter, Call
from server.errors import ApiError
from server.integrations.payment_gateway import (
    CANCELED,
    FAILED,
    SUCCEEDED,
    GatewayBadResponse,
    GatewayPayment,
    parse_intent,
)
from server.validation import INT32_MAX, validation_error
from server.workers.gateway import apply_intent

log = logging.getLogger("server.gateway")

router = ApiRouter("webhooks")

SIGNATURE_HEADER = "Payment-Signature"
TOLERANCE_S = 300
PAYMENT_FAILED = "payment_intent.payment_failed"


def sign(body: bytes, secret: str, timestamp: int) -> str:
    """The `Payment-Signature` value for `body` sent at `timestamp` (what the payment API computes)."""
    digest = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()
    return f"t={timestamp},v1={digest}"


def verify_signature(header: str | None, body: bytes, secret: str, now: float) -> None:
    """Raise `unauthorized` unless `header` signs `body` with `secret` at a time within `TOLERANCE_S` of `now`.

    Several `v1` entries may be present (the API rolling its key): any one matching is enough.
    """
    if not header:
        raise ApiError("unauthorized", f"the {SIGNATURE_HEADER} header is missing")
    timestamp, candidates = None, []
    for part in header.split(","):
        name, _, value = part.strip().partition("=")
        if name == "t" and value.isdigit():
            timestamp = int(value)
        elif name == "v1":
            candidates.append(value)
    if timestamp is None or not candidates:
        raise ApiError("unauthorized", f"the {SIGNATURE_HEADER} header needs t=<unix seconds> and v1=<hex>")
    if abs(now - timestamp) > TOLERANCE_S:
        raise ApiError("unauthorized", f"the signature's timestamp is more than {TOLERANCE_S} s away from now")
    expected = sign(body, secret, timestamp).partition(",v1=")[2]
    # Every candidate is compared, in constant time each, so timing tells nothing about which was close.
    matches = [hmac.compare_digest(expected.encode(), candidate.encode()) for candidate in candidates]
    if not any(matches):
        raise ApiError("unauthorized", "the signature does not match the body")


class EventData(BaseModel):
    """The event's subject: for `payment_intent.*` events, the payment intent as it is now."""

    model_config = ConfigDict(extra="ignore")

    object: dict[str, object]


class WebhookEventIn(BaseModel):
    """One event of the payment API."""

    model_config = ConfigDict(extra="ignore")

    id: str = Field(min_length=1, max_length=128, description="unique per event; a redelivery repeats it")
    type: str = Field(min_length=1, max_length=128, description='e.g. "payment_intent.succeeded"')
    data: EventData


class WebhookAck(BaseModel):
    """The server took the event: `duplicate` when it had already acted on this id, `payment_id` it applied to."""

    received: bool = True
    duplicate: bool = False
    payment_id: int | None = None


_STORE_EVENT = Upsert(
    lambda insert: (
        insert(WebhookEvent)
        .values(event_id=bindparam("b_event_id"), received_at=bindparam("b_received_at"))
        .on_conflict_do_nothing(index_elements=[WebhookEvent.event_id])
        .returning(WebhookEvent.event_id)
    )
)


async def _first_delivery(session: AsyncSession, event_id: str) -> bool:
    """Store the event id; False when it was stored before (or by a delivery committing right now)."""
    stored = await _STORE_EVENT.execute(session, {"b_event_id": event_id, "b_received_at": utcnow()})
    return stored.scalar_one_or_none() is not None


async def _payment_of(session: AsyncSession, intent: GatewayPayment) -> PaymentRecord | None:
    """The gateway payment the intent belongs to, locked: by the id in its metadata, else by `provider_ref`."""
    by_metadata = intent.payment_id
    if by_metadata is not None and by_metadata <= INT32_MAX:
        payment = await lock_payment(session, by_metadata)
        ours = payment is not None and payment.method == PaymentMethod.GATEWAY
        if ours and payment is not None and payment.provider_ref in (None, intent.id):
            return payment
    return await lock_gateway_payment(session, intent.id)


def _intent_of(event: WebhookEventIn) -> GatewayPayment:
    raw = dict(event.data.object)
    if event.type == PAYMENT_FAILED and raw.get("status") not in (SUCCEEDED, CANCELED, FAILED):
        # Stripe leaves a failed attempt's intent in `requires_payment_method`; the event says it failed.
        raw["status"] = FAILED
    try:
        return parse_intent(raw)
    except GatewayBadResponse as exc:
        raise ApiError("invalid", f"data.object is not a payment intent: {exc}") from exc


@router.post(
    "/payments/webhook",
    "Receive a payment API event",
    public=True,
    response=WebhookAck,
    errors=("unauthorized", "invalid", "not_found", "conflict", "unavailable"),
)
async def receive_event(call: Call[None, None]) -> WebhookAck:
    """For the payment API only, signed with `PAYMENT_API_KEY` in the `Payment-Signature` header
    (`t=<unix seconds>,v1=<hex HMAC-SHA256 of "<t>.<body>">`, at most 300 s old or ahead).

    A `payment_intent.*` event moves the payment it names (by `metadata.payment_id` or the intent id):
    `succeeded` approves it and pays the order, `payment_failed` and `canceled` end it, `processing` and
    `requires_action` mark it processing. An event id already handled answers 200 with `duplicate: true` and
    changes nothing. `not_found` (the API delivers again later) when no gateway payment matches; `conflict` when
    the intent cannot be that payment's or contradicts its final result; `unavailable` without a `PAYMENT_API_KEY`.
    """
    settings = call.services.settings
    if not settings.PAYMENT_API_KEY:
        raise ApiError("unavailable", "no payment API is configured (PAYMENT_API_KEY); nothing was changed")
    body = await call.request.body()
    verify_signature(call.request.headers.get(SIGNATURE_HEADER), body, settings.PAYMENT_API_KEY, time.time())
    try:
        event = WebhookEventIn.model_validate_json(body)
    except ValidationError as exc:
        raise validation_error(exc, "event") from exc

    if not await _first_delivery(call.session, event.id):
        log.info("payment API event %s delivered again: ignored", event.id)
        return WebhookAck(duplicate=True)
    if not event.type.startswith("payment_intent."):
        return WebhookAck()
    intent = _intent_of(event)
    payment = await _payment_of(call.session, intent)
    if payment is None:
        details = {"intent": intent.id, "payment_id": intent.metadata.get("payment_id")}
        raise ApiError("not_found", f"no gateway payment for intent {intent.id}", details)
    await apply_intent(call.session, payment, intent, call.emit, settings)
    log.info("payment API event %s (%s) applied to payment %d", event.id, event.type, payment.id)
    return WebhookAck(payment_id=payment.id)
