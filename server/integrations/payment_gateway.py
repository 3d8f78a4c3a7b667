"""The payment API client (docs/payment-gateway.md): card payments over HTTP, modelled on Stripe's PaymentIntents.

    POST {base}/payment_intents                       {"amount", "currency", "metadata": {"payment_id", "order_id"}}
    GET  {base}/payment_intents/{id}                  the intent, or 404
    GET  {base}/payment_intents?idempotency_key={key} {"object": "list", "data": [the intent]} (empty: never created)
    POST {base}/refunds                               {"payment_intent", "amount"}

Every request carries `Authorization: Bearer {PAYMENT_API_KEY}`; every POST an
`Idempotency-Key`, the same on every try, so a retried create never charges twice.
Integrators read docs/payment-gateway.md for the whole wire shape and the webhooks.

Retries: a try that times out, loses its connection or gets a 5xx is tried again
after an exponential, jittered backoff, up to `attempts` tries; a 4xx is never tried
again. What the caller may see:

    GatewayError                 the payment API did not do what was asked
    ├── GatewayUnavailable       no usable answer after every try (network error, 5xx): the outcome is unknown
    │   └── GatewayTimeout       ... and the last try timed out
    ├── GatewayBadResponse       a 2xx (or 3xx) that is not the documented JSON: the outcome is unknown
    └── GatewayRejected          a 4xx: the API understood and refused; sending it again would not help
        ├── GatewayDeclined      402, or a refund that failed: the card or the money movement was declined
        └── GatewayBusy          409 or 429: the same key is still being handled, or a rate limit; ask later

Tests hand the client a transport or point it at a loopback server; nothing is monkeypatched.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

import httpx
from pydantic import BaseModel, ConfigDict, ValidationError

from persistence.enums import PaymentStatus

TIMEOUT_S = 10.0
ATTEMPTS = 3
BASE_DELAY_S = 0.5
MAX_DELAY_S = 5.0
DETAIL_LENGTH = 300
MESSAGE_LENGTH = 500  # Payment.message

# Stripe's PaymentIntent statuses (plus "failed" of our wire shape) and what they mean for a payment here.
SUCCEEDED = "succeeded"
CANCELED = "canceled"
FAILED = "failed"
REQUIRES_PAYMENT_METHOD = "requires_payment_method"


class GatewayError(Exception):
    """The payment API did not do what was asked (see the tree in the module docstring)."""

    def __init__(self, message: str, *, status_code: int | None = None, code: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.status_code = status_code
        self.code = code


class GatewayUnavailable(GatewayError):
    """No usable answer after every try: network errors, timeouts or 5xx. The request may or may not have acted."""


class GatewayTimeout(GatewayUnavailable):
    """The last try got no answer in time."""


class GatewayBadResponse(GatewayError):
    """A success status whose body is not what the API documents."""


class GatewayRejected(GatewayError):
    """A 4xx answer: the request was refused and is never retried as it is."""


class GatewayDeclined(GatewayRejected):
    """The card (402) or the refund was declined."""


class GatewayBusy(GatewayRejected):
    """409 (a request with the same idempotency key is in progress) or 429 (rate limited): ask again later."""


@dataclass(frozen=True)
class GatewayPayment:
    """A payment intent as the API reported it, with its status mapped to ours (see `payment_status`)."""

    id: str
    status: PaymentStatus
    message: str | None
    gateway_status: str
    amount: int | None = None
    currency: str | None = None
    metadata: dict[str, str] = field(default_factory=dict)

    @property
    def payment_id(self) -> int | None:
        """Our payment id from the intent's metadata, when it is there and a number."""
        raw = self.metadata.get("payment_id", "")
        return int(raw) if raw.isdigit() else None


@dataclass(frozen=True)
class GatewayRefund:
    """A refund as the API reported it: `pending` or `succeeded` (a failed one raises `GatewayDeclined`)."""

    id: str
    status: str


class _LastError(BaseModel):
    model_config = ConfigDict(extra="ignore")

    type: str | None = None
    code: str | None = None
    decline_code: str | None = None
    message: str | None = None


class _Intent(BaseModel):
    model_config = ConfigDict(extra="ignore")

    id: str
    status: str
    amount: int | None = None
    currency: str | None = None
    metadata: dict[str, str | int] = {}
    last_error: _LastError | None = None
    cancellation_reason: str | None = None


class _Refund(BaseModel):
    model_config = ConfigDict(extra="ignore")

    id: str
    status: str


class _IntentList(BaseModel):
    model_config = ConfigDict(extra="ignore")

    data: list[dict[str, Any]]


def payment_status(gateway_status: str, *, card_error: bool, has_error: bool) -> PaymentStatus:
    """Our status for an intent status.

    succeeded -> approved; failed -> declined when the card was refused (a `card_error`
    or a `decline_code`), else failed; canceled -> failed (nobody was charged); an
    attempt that failed and left the intent waiting for another card
    (`requires_payment_method` with `last_error`) counts as that failure, because a kiosk
    starts a new payment rather than retrying the old one; anything else
    (`processing`, `requires_action`, `requires_confirmation`, a status added later) ->
    processing, i.e. not final yet.
    """
    if gateway_status == SUCCEEDED:
        return PaymentStatus.APPROVED
    if gateway_status == FAILED or (gateway_status == REQUIRES_PAYMENT_METHOD and has_error):
        return PaymentStatus.DECLINED if card_error else PaymentStatus.FAILED
    if gateway_status == CANCELED:
        return PaymentStatus.FAILED
    return PaymentStatus.PROCESSING


def parse_intent(raw: object) -> GatewayPayment:
    """A `GatewayPayment` from an intent object (an answer's body or a webhook's `data.object`)."""
    try:
        intent = _Intent.model_validate(raw)
    except ValidationError as exc:
        raise GatewayBadResponse(f"not a payment intent: {exc.error_count()} invalid fields") from exc
    error = intent.last_error
    card_error = error is not None and (error.type == "card_error" or error.decline_code is not None)
    status = payment_status(intent.status, card_error=card_error, has_error=error is not None)
    message = None
    if status in (PaymentStatus.DECLINED, PaymentStatus.FAILED):
        if intent.status == CANCELED:
            message = f"canceled at the payment API ({intent.cancellation_reason or 'no reason given'})"
        elif error is not None:
            reason = error.decline_code or error.code
            message = f"{error.message or 'payment failed'}" + (f" ({reason})" if reason else "")
        else:
            message = "payment failed at the payment API"
    return GatewayPayment(
        id=intent.id,
        status=status,
        message=message[:MESSAGE_LENGTH] if message else None,
        gateway_status=intent.status,
        amount=intent.amount,
        currency=intent.currency.upper() if intent.currency else None,
        metadata={key: str(value) for key, value in intent.metadata.items()},
    )


def backoff_s(retry: int, rng: Callable[[], float] = random.random, base_s: float = BASE_DELAY_S) -> float:
    """Seconds before retry `retry` (1-based): `base_s` doubling up to `MAX_DELAY_S`, jittered to 50-100 %."""
    ceiling = min(base_s * 2.0 ** min(max(retry - 1, 0), 16), MAX_DELAY_S)
    return ceiling * (0.5 + 0.5 * rng())


def _rejected(response: httpx.Response) -> GatewayRejected:
    """The typed error for a 4xx, with the API's own error code and message when it sent them."""
    status = response.status_code
    code, text = None, response.text[:DETAIL_LENGTH].strip()
    try:
        body = response.json()
    except ValueError:
        body = None
    if isinstance(body, dict) and isinstance(body.get("error"), dict):
        error = _LastError.model_validate(body["error"])
        code = error.decline_code or error.code
        text = error.message or text
    message = f"HTTP {status}" + (f": {text}" if text else "") + (f" ({code})" if code else "")
    kind = GatewayDeclined if status == 402 else GatewayBusy if status in (409, 429) else GatewayRejected
    return kind(message, status_code=status, code=code)


class PaymentGateway:
    """Talks to the payment API; one connection pool, opened on first use and closed by `aclose`."""

    def __init__(
        self,
        base_url: str,
        api_key: str,
        *,
        transport: httpx.AsyncBaseTransport | None = None,
        timeout_s: float = TIMEOUT_S,
        attempts: int = ATTEMPTS,
        base_delay_s: float = BASE_DELAY_S,
        rng: Callable[[], float] = random.random,
    ) -> None:
        if attempts < 1:
            raise ValueError("attempts must be at least 1")
        httpx.URL(base_url)  # a malformed PAYMENT_API_URL fails at start-up, not at the first payment
        self.base_url = base_url.rstrip("/")
        self._api_key = api_key
        self._transport = transport
        self._timeout_s = timeout_s
        self._attempts = attempts
        self._base_delay_s = base_delay_s
        self._rng = rng
        self._http: httpx.AsyncClient | None = None

    async def create_payment(
        self, idempotency_key: str, amount: int, currency: str, reference: dict[str, str]
    ) -> GatewayPayment:
        """Create (or, with a key already used, get back) the intent charging `amount` minor units of `currency`."""
        body = {"amount": amount, "currency": currency.lower(), "metadata": reference}
        answer = await self._request("POST", "/payment_intents", body=body, idempotency_key=idempotency_key)
        return parse_intent(answer)

    async def get_payment(
        self, *, provider_ref: str | None = None, idempotency_key: str | None = None
    ) -> GatewayPayment | None:
        """The intent known as `provider_ref`, or created with `idempotency_key`; None when the API has none."""
        if (provider_ref is None) == (idempotency_key is None):
            raise ValueError("give exactly one of provider_ref and idempotency_key")
        if provider_ref is not None:
            answer = await self._request("GET", f"/payment_intents/{quote(provider_ref, safe='')}", missing_ok=True)
            return None if answer is None else parse_intent(answer)
        listed = await self._request("GET", "/payment_intents", params={"idempotency_key": idempotency_key})
        try:
            found = _IntentList.model_validate(listed).data
        except ValidationError as exc:
            raise GatewayBadResponse("the payment intent list is not a list") from exc
        return parse_intent(found[0]) if found else None

    async def refund(self, provider_ref: str, amount: int, idempotency_key: str) -> GatewayRefund:
        """Give back `amount` of the intent `provider_ref`; `GatewayDeclined` when the API says it failed."""
        body = {"payment_intent": provider_ref, "amount": amount}
        answer = await self._request("POST", "/refunds", body=body, idempotency_key=idempotency_key)
        try:
            refund = _Refund.model_validate(answer)
        except ValidationError as exc:
            raise GatewayBadResponse("not a refund") from exc
        if refund.status in (FAILED, CANCELED):
            raise GatewayDeclined(f"refund {refund.id} {refund.status}", code=refund.status)
        return GatewayRefund(refund.id, refund.status)

    async def aclose(self) -> None:
        """Close the connection pool (a later call opens a new one)."""
        if self._http is not None:
            http, self._http = self._http, None
            await http.aclose()

    def _client(self) -> httpx.AsyncClient:
        if self._http is None:
            self._http = httpx.AsyncClient(
                transport=self._transport,
                timeout=httpx.Timeout(self._timeout_s),
                follow_redirects=False,
                headers={"Authorization": f"Bearer {self._api_key}", "Accept": "application/json"},
            )
        return self._http

    async def _request(
        self,
        method: str,
        path: str,
        *,
        body: dict[str, Any] | None = None,
        params: dict[str, Any] | None = None,
        idempotency_key: str | None = None,
        missing_ok: bool = False,
    ) -> object:
        """The JSON of a 2xx answer, trying again on network errors, timeouts and 5xx; a 404 is None if `missing_ok`."""
        headers = {"Idempotency-Key": idempotency_key} if idempotency_key else {}
        url = self.base_url + path
        detail, timed_out = "", False
        for attempt in range(1, self._attempts + 1):
            if attempt > 1:
                await asyncio.sleep(backoff_s(attempt - 1, self._rng, self._base_delay_s))
            try:
                # httpx times each phase; this bounds the whole exchange, e.g. an API trickling its answer.
                async with asyncio.timeout(self._timeout_s):
                    response = await self._client().request(method, url, json=body, params=params, headers=headers)
            except (TimeoutError, httpx.TimeoutException):
                detail, timed_out = f"no answer within {self._timeout_s:g} s", True
                continue
            except httpx.TransportError as exc:
                # Refused, reset or dropped connections: the API may be back on the next try.
                detail, timed_out = f"{type(exc).__name__}: {exc}"[:DETAIL_LENGTH], False
                continue
            except httpx.HTTPError as exc:
                raise GatewayBadResponse(f"{type(exc).__name__}: {exc}"[:DETAIL_LENGTH]) from exc
            status = response.status_code
            if status >= 500:
                text = response.text[:DETAIL_LENGTH].strip()
                detail, timed_out = f"HTTP {status}" + (f": {text}" if text else ""), False
                continue
            if status == 404 and missing_ok:
                return None
            if status >= 400:
                raise _rejected(response)
            if status >= 300:
                raise GatewayBadResponse(f"HTTP {status}: redirects are not followed", status_code=status)
            try:
                return response.json()
            except ValueError as exc:
                raise GatewayBadResponse(f"HTTP {status} with a body that is not JSON", status_code=status) from exc
        kind = GatewayTimeout if timed_out else GatewayUnavailable
        raise kind(f"{method} {path}: no usable answer after {self._attempts} tries; last: {detail}")
