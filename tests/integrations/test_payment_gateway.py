"""The payment API client against a real HTTP server on loopback: the wire shape, retries, refusals, status queries.

`FakePaymentApi` is a small Starlette app under uvicorn that keeps PaymentIntents the way
the real API does (an idempotency key gives back the intent it created) and answers as
the test scripts it: each request takes the next step (then behaves normally), a `Reply`
(answered without acting), `SLOW` or `DROP` (acted on, the answer late past the client's
timeout or never sent: the outcome unknown to the client) or `HOLD` (acted on, answered
when the test calls `release`). The gateway worker's tests use it too.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import time
from collections import deque
from collections.abc import AsyncIterator, Awaitable, MutableMapping
from dataclasses import dataclass, field
from typing import Any, TypeVar, cast

import pytest
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

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
from tests.live import free_port

API_KEY = "sk_test_loopback"
LIMIT_S = 10
TIMEOUT_S = 0.5  # the client's timeout in these tests; SLOW answers after 3 s
SLOW_S = 3.0
CARD_DECLINED = {
    "type": "card_error",
    "code": "card_declined",
    "decline_code": "insufficient_funds",
    "message": "Your card has insufficient funds.",
}

DROP = "drop"
SLOW = "slow"
HOLD = "hold"

T = TypeVar("T")


async def within(awaitable: Awaitable[T], limit_s: float = LIMIT_S) -> T:
    """Await with the tests' time limit."""
    return await asyncio.wait_for(awaitable, limit_s)


@dataclass(frozen=True)
class Reply:
    """An answer sent instead of acting on the request."""

    status: int
    body: dict[str, Any] | str = field(default_factory=dict)


Step = Reply | str


@dataclass(frozen=True)
class Received:
    """One request as the API saw it: method, path, query, headers (lower-case names), JSON body, arrival."""

    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    body: dict[str, Any]
    at: float


def _error(status: int, kind: str, message: str, code: str | None = None) -> JSONResponse:
    return JSONResponse({"error": {"type": kind, "code": code, "message": message}}, status_code=status)


class FakePaymentApi:
    """A payment API on loopback at `url` (`.../v1`): intents, refunds, a script of failures, every request recorded."""

    def __init__(self) -> None:
        self.script: deque[Step] = deque()
        self.received: list[Received] = []
        self.intents: dict[str, dict[str, Any]] = {}
        self.by_key: dict[str, str] = {}
        self.refunds: dict[str, dict[str, Any]] = {}
        # How a new intent comes out: its status and, for failures, its last_error.
        self.outcome = "processing"
        self.last_error: dict[str, Any] | None = None
        self.refund_status = "succeeded"
        self.url = ""
        self._ids = itertools.count(1)
        self._stopping = asyncio.Event()
        self._released = asyncio.Event()
        self._server: uvicorn.Server | None = None
        self._task: asyncio.Task[None] | None = None
        self._app = Starlette(
            routes=[
                Route("/v1/payment_intents", self._create, methods=["POST"]),
                Route("/v1/payment_intents", self._list, methods=["GET"]),
                Route("/v1/payment_intents/{intent_id}", self._read, methods=["GET"]),
                Route("/v1/refunds", self._refund, methods=["POST"]),
            ]
        )

    def will(self, *steps: Step) -> None:
        """Append steps to the script."""
        self.script.extend(steps)

    def release(self) -> None:
        """Let `HOLD` answers go out."""
        self._released.set()

    def settle(self, intent_id: str, status: str, last_error: dict[str, Any] | None = None) -> dict[str, Any]:
        """Move an intent on, as the card network would; returns it."""
        intent = self.intents[intent_id]
        intent["status"], intent["last_error"] = status, last_error
        return intent

    def posts(self, path: str = "/v1/payment_intents") -> list[Received]:
        """The POSTs to `path`."""
        return [r for r in self.received if r.method == "POST" and r.path == path]

    async def start(self) -> None:
        """Serve on a free loopback port."""
        port = free_port()
        config = uvicorn.Config(
            cast(Any, self),
            host="127.0.0.1",
            port=port,
            http="h11",
            ws="none",
            lifespan="off",
            log_config=None,
            access_log=False,
            timeout_graceful_shutdown=1,
        )
        self._server = uvicorn.Server(config)
        self._task = asyncio.get_running_loop().create_task(self._server.serve())
        # uvicorn exposes only a flag for "started".
        while not self._server.started:  # noqa: ASYNC110
            await asyncio.sleep(0.01)
        self.url = f"http://127.0.0.1:{port}/v1"

    async def stop(self) -> None:
        """End slow and held answers, stop serving."""
        self._stopping.set()
        self._released.set()
        if self._server is not None and self._task is not None:
            self._server.should_exit = True
            await self._task

    # The ASGI entry: record the request, then follow the script.
    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> object:
        assert scope["type"] == "http"
        chunks = []
        while True:
            message = await receive()
            chunks.append(message.get("body", b""))
            if not message.get("more_body"):
                break
        raw = b"".join(chunks)
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
        query = dict(Request(scope).query_params)
        body = json.loads(raw) if raw else {}
        self.received.append(Received(scope["method"], scope["path"], query, headers, body, time.monotonic()))
        replayed = False

        async def replay() -> dict[str, Any]:
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": raw, "more_body": False}
            result: dict[str, Any] = await receive()
            return result

        step = self.script.popleft() if self.script else None
        if isinstance(step, Reply):
            content = step.body if isinstance(step.body, str) else json.dumps(step.body)
            await Response(content, step.status, media_type="application/json")(scope, replay, send)
            return None
        held: list[dict[str, Any]] = []

        async def hold(message: MutableMapping[str, Any]) -> None:
            held.append(dict(message))

        await self._app(scope, replay, send if step is None else hold)
        if step == DROP:
            # uvicorn closes the connection without a word when an ASGI app returns a value.
            return "dropped"
        if step == SLOW:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stopping.wait(), SLOW_S)
        elif step == HOLD:
            await self._released.wait()
        with contextlib.suppress(Exception):  # the client may have given up and gone
            for message in held:
                await send(message)
        return None

    def _authorized(self, request: Request) -> bool:
        return request.headers.get("authorization") == f"Bearer {API_KEY}"

    async def _create(self, request: Request) -> Response:
        if not self._authorized(request):
            return _error(401, "invalid_request_error", "Invalid API Key provided")
        body = await request.json()
        key = request.headers.get("idempotency-key")
        if key in self.by_key:
            intent = self.intents[self.by_key[key]]
            if (intent["amount"], intent["currency"], intent["metadata"]) != (
                body["amount"],
                body["currency"],
                body["metadata"],
            ):
                return _error(400, "idempotency_error", "Keys for idempotent requests can only be used once")
            return JSONResponse(intent)  # the same answer again
        intent_id = f"pi_{next(self._ids)}"
        intent = {
            "id": intent_id,
            "object": "payment_intent",
            "amount": body["amount"],
            "currency": body["currency"],
            "metadata": body["metadata"],
            "status": self.outcome,
            "last_error": self.last_error,
        }
        self.intents[intent_id] = intent
        if key:
            self.by_key[key] = intent_id
        return JSONResponse(intent)

    async def _list(self, request: Request) -> Response:
        if not self._authorized(request):
            return _error(401, "invalid_request_error", "Invalid API Key provided")
        intent_id = self.by_key.get(request.query_params.get("idempotency_key", ""))
        return JSONResponse({"object": "list", "data": [self.intents[intent_id]] if intent_id else []})

    async def _read(self, request: Request) -> Response:
        if not self._authorized(request):
            return _error(401, "invalid_request_error", "Invalid API Key provided")
        intent = self.intents.get(request.path_params["intent_id"])
        if intent is None:
            return _error(404, "invalid_request_error", "No such payment_intent", "resource_missing")
        return JSONResponse(intent)

    async def _refund(self, request: Request) -> Response:
        if not self._authorized(request):
            return _error(401, "invalid_request_error", "Invalid API Key provided")
        body = await request.json()
        key = request.headers.get("idempotency-key", "")
        if key not in self.refunds:
            if body["payment_intent"] not in self.intents:
                return _error(400, "invalid_request_error", "No such payment_intent", "resource_missing")
            self.refunds[key] = {"id": f"re_{next(self._ids)}", "object": "refund", "status": self.refund_status}
        return JSONResponse(self.refunds[key])


@contextlib.asynccontextmanager
async def running_api() -> AsyncIterator[FakePaymentApi]:
    """A started `FakePaymentApi`, stopped when the block ends."""
    api = FakePaymentApi()
    await within(api.start(), 5)
    try:
        yield api
    finally:
        await within(api.stop(), 5)


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
