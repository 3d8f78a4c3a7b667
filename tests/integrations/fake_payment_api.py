"""A payment API on loopback for the tests: a small Starlette app under uvicorn.

It keeps PaymentIntents the way the real API does (an idempotency key gives back the
intent it created) and answers as the test scripts it: each request takes the next step
(then behaves normally), a `Reply` (answered without acting), `SLOW` or `DROP` (acted on,
the answer late past the client's timeout or never sent: the outcome unknown to the
client) or `HOLD` (acted on, answered when the test calls `release`). The client's, the
gateway worker's and the end-to-end tests use it.
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

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

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
