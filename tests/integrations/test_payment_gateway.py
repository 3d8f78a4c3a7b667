"""The payment API client against a real HTTP server on loopback: the wire shape, retries, refusals, status queries.

The server is `tests/integrations/fake_payment_api.py`.
"""

from __future__ import annotations

import itertools
import time
from collections.abc import AsyncIterator
from typing import Any

import pytest

from persistence.enums import PaymentStatus
from server.integrations.payment_gateway import (
    MAX_DELAY_S,
    GatewayBadResponse,
    GatewayBusy,
    GatewayDeclined,
    GatewayError,
    GatewayRejected,
    GatewayTimeout,
    GatewayUnavailable,
    PaymentGateway,
    backoff_s,
    parse_intent,
)
from tests.integrations.fake_payment_api import (
    API_KEY,
    CARD_DECLINED,
    DROP,
    SLOW,
    SLOW_S,
    TIMEOUT_S,
    FakePaymentApi,
    Reply,
    running_api,
    within,
)
from tests.live import free_port


@pytest.fixture
async def api() -> AsyncIterator[FakePaymentApi]:
    """The payment API on loopback."""
    async with running_api() as fake:
        yield fake


@pytest.fixture
async def gateway(api: FakePaymentApi) -> AsyncIterator[PaymentGateway]:
    """A client of the loopback API: short timeout, three tries, tiny backoff."""
    client = PaymentGateway(api.url, API_KEY, timeout_s=TIMEOUT_S, base_delay_s=0.01)
    yield client
    await within(client.aclose())


REFERENCE = {"payment_id": "7", "order_id": "3"}


async def test_create_sends_the_documented_request(api: FakePaymentApi, gateway: PaymentGateway) -> None:
    """POST /payment_intents carries the bearer key, the idempotency key and amount, lower-case currency, metadata."""
    created = await within(gateway.create_payment("key-1", 1250, "EUR", REFERENCE))
    assert (created.id, created.status, created.gateway_status, created.message) == (
        "pi_1",
        PaymentStatus.PROCESSING,
        "processing",
        None,
    )
    assert (created.amount, created.currency, created.payment_id) == (1250, "EUR", 7)
    [request] = api.received
    assert (request.method, request.path) == ("POST", "/v1/payment_intents")
    assert request.headers["authorization"] == f"Bearer {API_KEY}"
    assert request.headers["idempotency-key"] == "key-1"
    assert request.headers["content-type"] == "application/json"
    assert request.body == {"amount": 1250, "currency": "eur", "metadata": REFERENCE}


@pytest.mark.parametrize(
    ("status", "last_error", "ours"),
    [
        ("succeeded", None, PaymentStatus.APPROVED),
        ("processing", None, PaymentStatus.PROCESSING),
        ("requires_action", None, PaymentStatus.PROCESSING),
        ("requires_payment_method", None, PaymentStatus.PROCESSING),
        ("some_status_added_later", None, PaymentStatus.PROCESSING),
        ("failed", CARD_DECLINED, PaymentStatus.DECLINED),
        ("failed", {"type": "api_error", "message": "acquirer down"}, PaymentStatus.FAILED),
        ("failed", None, PaymentStatus.FAILED),
        ("requires_payment_method", CARD_DECLINED, PaymentStatus.DECLINED),
        ("canceled", None, PaymentStatus.FAILED),
    ],
)
def test_intent_statuses_map_to_payment_statuses(
    status: str, last_error: dict[str, Any] | None, ours: PaymentStatus
) -> None:
    """succeeded approves; card errors decline; other failures and cancellation fail; anything else is processing."""
    raw = {"id": "pi_9", "status": status, "amount": 100, "currency": "eur", "last_error": last_error}
    assert parse_intent(raw).status == ours


def test_failures_carry_a_message_for_people() -> None:
    """A decline says why, with the decline code; a cancellation names its reason."""
    declined = parse_intent({"id": "pi_1", "status": "failed", "last_error": CARD_DECLINED})
    assert declined.message == "Your card has insufficient funds. (insufficient_funds)"
    canceled = parse_intent({"id": "pi_2", "status": "canceled", "cancellation_reason": "abandoned"})
    assert canceled.message == "canceled at the payment API (abandoned)"


def test_an_answer_that_is_not_an_intent_is_a_bad_response() -> None:
    """An intent without id or status is `GatewayBadResponse`, whose outcome is unknown."""
    with pytest.raises(GatewayBadResponse):
        parse_intent({"status": "succeeded"})


def test_backoff_doubles_is_capped_and_jittered() -> None:
    """The wait before retry n is base * 2^(n-1), at most MAX_DELAY_S, jittered down to half."""
    assert [backoff_s(n, lambda: 1.0, 0.5) for n in (1, 2, 3)] == [0.5, 1.0, 2.0]
    assert backoff_s(30, lambda: 1.0, 0.5) == MAX_DELAY_S
    assert backoff_s(2, lambda: 0.0, 0.5) == 0.5


async def test_server_errors_are_retried_with_backoff_and_the_same_key(api: FakePaymentApi) -> None:
    """500 and 503 are tried again after base and 2 x base seconds, with the same key; the third try gets the intent."""
    api.will(Reply(500, "boom"), Reply(503))
    client = PaymentGateway(api.url, API_KEY, timeout_s=TIMEOUT_S, base_delay_s=0.2, rng=lambda: 1.0)
    try:
        created = await within(client.create_payment("key-2", 900, "EUR", REFERENCE))
    finally:
        await within(client.aclose())
    assert created.status == PaymentStatus.PROCESSING
    tries = api.posts()
    assert [r.headers["idempotency-key"] for r in tries] == ["key-2"] * 3
    gaps = [later.at - earlier.at for earlier, later in itertools.pairwise(tries)]
    assert gaps[0] >= 0.2 and gaps[1] >= 0.4
    assert len(api.intents) == 1


async def test_a_dropped_connection_is_retried_and_the_key_gives_back_the_same_intent(
    api: FakePaymentApi, gateway: PaymentGateway
) -> None:
    """The API acts and the connection drops before the answer; the retry gets the intent made by the first try."""
    one_try = PaymentGateway(api.url, API_KEY, timeout_s=TIMEOUT_S, attempts=1)
    api.will(DROP)
    try:
        with pytest.raises(GatewayUnavailable, match="disconnected without sending a response"):
            await within(one_try.create_payment("key-3", 900, "EUR", REFERENCE))
    finally:
        await within(one_try.aclose())
    api.will(DROP)
    created = await within(gateway.create_payment("key-3", 900, "EUR", REFERENCE))
    assert len(api.posts()) == 3
    assert list(api.intents) == [created.id]


async def test_a_slow_answer_times_out_and_is_retried(api: FakePaymentApi, gateway: PaymentGateway) -> None:
    """An answer later than the timeout is abandoned and the request sent again, long before the slow one comes."""
    api.will(SLOW)
    started = time.monotonic()
    created = await within(gateway.create_payment("key-4", 900, "EUR", REFERENCE))
    assert time.monotonic() - started < SLOW_S
    assert len(api.posts()) == 2
    assert list(api.intents) == [created.id]


async def test_when_every_try_times_out_the_status_query_finds_the_intent(
    api: FakePaymentApi, gateway: PaymentGateway
) -> None:
    """Three slow answers raise `GatewayTimeout` (the outcome unknown); GET by idempotency key finds the intent."""
    api.will(SLOW, SLOW, SLOW)
    with pytest.raises(GatewayTimeout) as raised:
        await within(gateway.create_payment("key-5", 900, "EUR", REFERENCE))
    assert isinstance(raised.value, GatewayUnavailable)
    assert len(api.posts()) == 3
    found = await within(gateway.get_payment(idempotency_key="key-5"))
    assert found is not None and found.id in api.intents
    lookup = api.received[-1]
    assert (lookup.method, lookup.path, lookup.query) == ("GET", "/v1/payment_intents", {"idempotency_key": "key-5"})
    assert await within(gateway.get_payment(idempotency_key="never-sent")) is None


async def test_persistent_server_errors_raise_unavailable_after_every_try(
    api: FakePaymentApi, gateway: PaymentGateway
) -> None:
    """A 502 on every try raises `GatewayUnavailable` (not a timeout) naming the last answer, after three tries."""
    api.will(Reply(502, "bad gateway"), Reply(502, "bad gateway"), Reply(502, "bad gateway"))
    with pytest.raises(GatewayUnavailable) as raised:
        await within(gateway.create_payment("key-6", 900, "EUR", REFERENCE))
    assert not isinstance(raised.value, GatewayTimeout)
    assert "HTTP 502: bad gateway" in str(raised.value)
    assert len(api.posts()) == 3 and api.intents == {}


async def test_a_refused_connection_is_a_network_error() -> None:
    """Nothing listening: every try fails to connect and `GatewayUnavailable` says so."""
    client = PaymentGateway(f"http://127.0.0.1:{free_port()}/v1", API_KEY, timeout_s=TIMEOUT_S, base_delay_s=0.01)
    try:
        with pytest.raises(GatewayUnavailable, match="ConnectError"):
            await within(client.create_payment("key-7", 900, "EUR", REFERENCE))
    finally:
        await within(client.aclose())


@pytest.mark.parametrize(
    ("reply", "error"),
    [
        (Reply(400, {"error": {"type": "invalid_request_error", "message": "amount too small"}}), GatewayRejected),
        (Reply(402, {"error": CARD_DECLINED}), GatewayDeclined),
        (Reply(409, {"error": {"type": "idempotency_error", "message": "in progress"}}), GatewayBusy),
        (Reply(429, {"error": {"type": "rate_limit_error", "message": "slow down"}}), GatewayBusy),
        (Reply(404), GatewayRejected),
    ],
)
async def test_client_errors_are_never_retried(
    api: FakePaymentApi, gateway: PaymentGateway, reply: Reply, error: type[GatewayError]
) -> None:
    """A 4xx raises its typed error after one try, with the API's status, code and message."""
    api.will(reply)
    with pytest.raises(error) as raised:
        await within(gateway.create_payment("key-8", 900, "EUR", REFERENCE))
    assert type(raised.value) is error
    assert raised.value.status_code == reply.status
    assert len(api.posts()) == 1


async def test_a_decline_carries_the_decline_code(api: FakePaymentApi, gateway: PaymentGateway) -> None:
    """402's message and code come from the API's error object."""
    api.will(Reply(402, {"error": CARD_DECLINED}))
    with pytest.raises(GatewayDeclined) as raised:
        await within(gateway.create_payment("key-9", 900, "EUR", REFERENCE))
    assert raised.value.code == "insufficient_funds"
    assert str(raised.value) == "HTTP 402: Your card has insufficient funds. (insufficient_funds)"


async def test_a_wrong_key_is_refused(api: FakePaymentApi) -> None:
    """The API's 401 for a bad key is `GatewayRejected`, not retried."""
    client = PaymentGateway(api.url, "sk_wrong", timeout_s=TIMEOUT_S, base_delay_s=0.01)
    try:
        with pytest.raises(GatewayRejected) as raised:
            await within(client.create_payment("key-10", 900, "EUR", REFERENCE))
    finally:
        await within(client.aclose())
    assert raised.value.status_code == 401
    assert len(api.received) == 1


async def test_a_success_that_is_not_json_is_a_bad_response(api: FakePaymentApi, gateway: PaymentGateway) -> None:
    """A 200 with a body that is not JSON raises `GatewayBadResponse` after one try."""
    api.will(Reply(200, "<html>maintenance</html>"))
    with pytest.raises(GatewayBadResponse):
        await within(gateway.create_payment("key-11", 900, "EUR", REFERENCE))
    assert len(api.received) == 1


async def test_get_payment_by_id_reads_the_intent_as_it_is_now(api: FakePaymentApi, gateway: PaymentGateway) -> None:
    """GET /payment_intents/{id} shows a later status; an unknown id is None after one try (404 is an answer)."""
    created = await within(gateway.create_payment("key-12", 900, "EUR", REFERENCE))
    api.settle(created.id, "succeeded")
    found = await within(gateway.get_payment(provider_ref=created.id))
    assert found is not None and found.status == PaymentStatus.APPROVED
    assert api.received[-1].path == f"/v1/payment_intents/{created.id}"
    before = len(api.received)
    assert await within(gateway.get_payment(provider_ref="pi_unknown")) is None
    assert len(api.received) == before + 1


async def test_get_payment_retries_server_errors_too(api: FakePaymentApi, gateway: PaymentGateway) -> None:
    """The status query is retried like the create: a 503 then the answer."""
    created = await within(gateway.create_payment("key-13", 900, "EUR", REFERENCE))
    api.will(Reply(503))
    found = await within(gateway.get_payment(provider_ref=created.id))
    assert found is not None and found.id == created.id


async def test_get_payment_takes_exactly_one_key() -> None:
    """Neither or both of provider_ref and idempotency_key is a programming error."""
    client = PaymentGateway("http://127.0.0.1:9/v1", API_KEY)
    with pytest.raises(ValueError):
        await within(client.get_payment())
    with pytest.raises(ValueError):
        await within(client.get_payment(provider_ref="pi_1", idempotency_key="k"))


async def test_a_refund_is_posted_once_per_key(api: FakePaymentApi, gateway: PaymentGateway) -> None:
    """POST /refunds names the intent and amount under an idempotency key; retrying with the key refunds once."""
    created = await within(gateway.create_payment("key-14", 900, "EUR", REFERENCE))
    api.will(DROP)
    refund = await within(gateway.refund(created.id, 900, "key-14:refund"))
    assert refund.status == "succeeded"
    tries = api.posts("/v1/refunds")
    assert [(r.body, r.headers["idempotency-key"]) for r in tries] == [
        ({"payment_intent": created.id, "amount": 900}, "key-14:refund")
    ] * 2
    assert len(api.refunds) == 1


async def test_a_failed_refund_raises(api: FakePaymentApi, gateway: PaymentGateway) -> None:
    """A refund the API reports failed is `GatewayDeclined`: the money did not go back."""
    created = await within(gateway.create_payment("key-15", 900, "EUR", REFERENCE))
    api.refund_status = "failed"
    with pytest.raises(GatewayDeclined):
        await within(gateway.refund(created.id, 900, "key-15:refund"))
