"""Pushing one paid order to the POS over HTTP, and what the answer means for the next attempt.

    POST {POS_API_URL}
    Authorization: Bearer {POS_API_KEY}        (when a key is set)
    Idempotency-Key: {key}                      (the same on every attempt for one order)
    {"idempotency_key": key, "order": <the order as devices see it>}

    2xx                                         DELIVERED
    network error, timeout, 408, 429, 5xx       RETRY, after `backoff_s`, until the budget is spent
    anything else (400, 401, 404, 422, 3xx...)  REFUSED: sending it again would not help

The client is built on httpx; tests hand it a transport or point it at a loopback server.
"""

from __future__ import annotations

import asyncio
import enum
import random
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import httpx

TIMEOUT_S = 5.0
BASE_DELAY_S = 2.0
MAX_DELAY_S = 300.0
RETRYABLE_STATUSES = frozenset({408, 429})
DETAIL_LENGTH = 300


class Outcome(enum.Enum):
    """What one push attempt came to."""

    DELIVERED = "delivered"
    RETRY = "retry"
    REFUSED = "refused"


@dataclass(frozen=True)
class PushResult:
    """The outcome of one attempt, a line for `last_error`, and the POS's own `Retry-After` if it sent one."""

    outcome: Outcome
    detail: str
    retry_after_s: float | None = None


def backoff_s(attempt: int, rng: Callable[[], float] = random.random, retry_after_s: float | None = None) -> float:
    """Seconds to wait after failed attempt `attempt` (1-based): 2 s doubling up to 5 min, jittered to 50-100 %.

    A `Retry-After` from the POS is honoured when it asks for longer (up to the same cap).
    """
    ceiling = min(BASE_DELAY_S * 2.0 ** min(max(attempt - 1, 0), 16), MAX_DELAY_S)
    # "Equal jitter": never less than half the step, so instances that failed together spread out.
    delay = ceiling * (0.5 + 0.5 * rng())
    if retry_after_s is not None:
        delay = max(delay, min(retry_after_s, MAX_DELAY_S))
    return delay


def classify(response: httpx.Response) -> PushResult:
    """The outcome a POS answer means."""
    status = response.status_code
    if 200 <= status < 300:
        return PushResult(Outcome.DELIVERED, f"HTTP {status}")
    text = response.text[:DETAIL_LENGTH].strip()
    detail = f"HTTP {status}: {text}" if text else f"HTTP {status}"
    if status in RETRYABLE_STATUSES or status >= 500:
        return PushResult(Outcome.RETRY, detail, _retry_after(response))
    return PushResult(Outcome.REFUSED, detail)


def _retry_after(response: httpx.Response) -> float | None:
    # Only the delta-seconds form; an HTTP date is rare from an API and the backoff covers it.
    value = response.headers.get("retry-after", "").strip()
    return float(value) if value.isdigit() else None


class PosClient:
    """Posts orders to the POS; one connection pool, opened on first use and closed by `aclose`."""

    def __init__(
        self,
        url: str,
        api_key: str | None,
        *,
        timeout_s: float = TIMEOUT_S,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self.url = url
        self._api_key = api_key
        self._timeout_s = timeout_s
        self._transport = transport
        self._http: httpx.AsyncClient | None = None

    def _client(self) -> httpx.AsyncClient:
        if self._http is None:
            self._http = httpx.AsyncClient(
                transport=self._transport, timeout=httpx.Timeout(self._timeout_s), follow_redirects=False
            )
        return self._http

    async def push(self, idempotency_key: str, order: dict[str, Any]) -> PushResult:
        """Send one order once; never raises for anything the network or the POS does."""
        headers = {"Idempotency-Key": idempotency_key}
        if self._api_key:
            headers["Authorization"] = f"Bearer {self._api_key}"
        body = {"idempotency_key": idempotency_key, "order": order}
        try:
            # httpx times each phase; this bounds the whole exchange, e.g. a POS trickling its answer.
            async with asyncio.timeout(self._timeout_s):
                response = await self._client().post(self.url, json=body, headers=headers)
        except (TimeoutError, httpx.TimeoutException):
            return PushResult(Outcome.RETRY, f"no answer within {self._timeout_s:g} s")
        except (httpx.HTTPError, httpx.InvalidURL) as exc:
            # Refused connections, resets, a malformed URL: the POS or the configuration may come back.
            return PushResult(Outcome.RETRY, f"{type(exc).__name__}: {exc}"[:DETAIL_LENGTH])
        return classify(response)

    async def aclose(self) -> None:
        """Close the connection pool (a later push opens a new one)."""
        if self._http is not None:
            http, self._http = self._http, None
            await http.aclose()
