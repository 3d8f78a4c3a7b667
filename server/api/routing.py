"""How a REST route is declared, and the one path every request takes through it.

    router = ApiRouter("users")

    @router.get("/users/{user_id}", "Read a user", permission=Permission.USERS_READ, response=UserOut)
    async def read_user(call: Call[None, None]) -> UserOut: ...

A request is authenticated (unless the route is public), checked for the route's
permission, its JSON (or form) body and query string validated into pydantic models,
and handled inside one database transaction that commits before the response is
sent; the events it emits (`call.emit`) go to the outbox in that transaction and are
published after the commit. Failures become the error shape of PROTOCOL.md. The same
declarations feed the OpenAPI document.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar, cast

from pydantic import BaseModel, ValidationError
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from starlette.types import Receive, Scope, Send

from channels import frames, names
from channels.hub import close_message
from channels.unit_of_work import UnitOfWork
from persistence.outages import is_unavailable
from server.auth.permissions import Permission
from server.auth.principals import Principal, authenticate
from server.errors import ApiError, not_found
from server.services import Services
from server.validation import INT32_MAX, validation_error

log = logging.getLogger("server.api")

B = TypeVar("B", bound=BaseModel | None)
Q = TypeVar("Q", bound=BaseModel | None)


@dataclass
class Call(Generic[B, Q]):
    """One REST call: who makes it, its validated body and query, and its transaction."""

    request: Request
    services: Services
    uow: UnitOfWork
    principal_or_none: Principal | None
    body: B
    query: Q
    after_commit: list[Callable[[], Awaitable[None]]] = field(default_factory=list)
    # The error to answer with although the transaction commits (`refuse`).
    refusal: ApiError | None = None
    # Another success status than the route's own, for this answer only (e.g. 202 while something is pending).
    status_code: int | None = None

    @property
    def session(self) -> AsyncSession:
        """The session of this call's transaction."""
        return self.uow.session

    def emit(self, channel: str, event: str, data: dict[str, Any]) -> None:
        """Record an event in this call's transaction; it is published once the transaction commits."""
        self.uow.emit(channel, event, data)

    def close_sockets(self, principal: str, *, session: str | None = None, code: int, reason: str) -> None:
        """A change ends or narrows what `principal` (`device:7`, `user:3`) may do: once this call's transaction
        commits, close its sockets (only those of `session`, when given) on every instance.

        The change is also announced on the principal's own channel, in this transaction, so that no instance
        takes the principal as pinned before it for a socket's hello (server/auth/known_principals.py).
        """
        self.emit(names.principal(principal), "principal.changed", {"principal": principal, "reason": reason})
        if session is not None:
            message = close_message(session=session, code=code, reason=reason)
        else:
            message = close_message(principal=principal, code=code, reason=reason)
        self.after_commit.append(lambda: self.services.send_control(message))

    def refuse(self, error: ApiError) -> None:
        """Answer with `error`, yet commit what this call changed (a refusal that must leave a trace)."""
        self.refusal = error

    @property
    def principal(self) -> Principal:
        """The authenticated caller (every route but the public ones has one)."""
        if self.principal_or_none is None:
            raise ApiError("unauthorized", "this route needs a token")
        return self.principal_or_none

    def path_int(self, name: str) -> int:
        """An integer path parameter; `not_found` when it is not one."""
        raw = self.request.path_params[name]
        if isinstance(raw, int):
            return raw
        if not str(raw).isdigit() or int(raw) > INT32_MAX:
            raise ApiError("not_found", f"no resource with {name} {raw}", {name: raw})
        return int(raw)

    def require_visible(self, what: str, ident: object, branch_id: int | None) -> None:
        """`not_found`, as for an id that does not exist, when the caller may not see `branch_id`'s things.

        A 403 naming the other branch would tell the caller the resource exists, and where.
        """
        scope = self.principal.branch_scope()
        if scope is not None and branch_id != scope:
            raise not_found(what, ident)

    @property
    def client_address(self) -> str:
        """The caller's address as the server sees it (X-Forwarded-For applied only from FORWARDED_ALLOW_IPS)."""
        return self.request.client.host if self.request.client else "unknown"


Handler = Callable[[Call[Any, Any]], Awaitable[BaseModel | None]]


@dataclass
class Operation:
    """A route's declaration: everything the OpenAPI document says about it."""

    method: str
    path: str
    summary: str
    tag: str
    handler: Handler
    permission: Permission | None
    public: bool
    body: type[BaseModel] | None
    query: type[BaseModel] | None
    response: type[BaseModel] | None
    status_code: int
    form: bool
    errors: tuple[str, ...] = field(default_factory=tuple)
    # Other success answers a route may give (set per call with `Call.status_code`), by status.
    also: dict[int, type[BaseModel]] = field(default_factory=dict)

    @property
    def description(self) -> str:
        """The handler's docstring."""
        return (self.handler.__doc__ or "").strip()


def error_response(error: ApiError) -> JSONResponse:
    """The JSON response for an `ApiError`."""
    return JSONResponse({"error": error.body()}, status_code=error.status_code, headers=error.headers)


async def _after_commit(hook: Callable[[], Awaitable[None]]) -> None:
    # The change is committed whatever happens here; a revocation missed now is still enforced
    # by the database check on the next request or reconnect.
    try:
        await hook()
    except Exception:
        log.exception("after-commit step failed")


_MISSING_BODY = {"field": "body", "message": "a JSON body is required", "type": "missing"}


async def _read_body(request: Request, model: type[BaseModel]) -> BaseModel:
    content_type = request.headers.get("content-type", "").split(";")[0].strip()
    if content_type in ("application/x-www-form-urlencoded", "multipart/form-data"):
        form = await request.form()
        raw: Any = {key: value for key, value in form.items() if isinstance(value, str)}
    else:
        data = await request.body()
        if not data.strip():
            # The document marks every body as required: an empty one is a mistake, not an empty change.
            raise ApiError("invalid", "a JSON body is required", {"errors": [_MISSING_BODY]})
        too_deep = f"the body nests deeper than {frames.MAX_DEPTH} levels"
        try:
            raw = json.loads(data)
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise ApiError("invalid", "the body is not valid JSON") from exc
        except RecursionError as exc:
            raise ApiError("invalid", too_deep) from exc
        # As on the socket: deeper JSON would exhaust recursion in validation, wherever that comes.
        if frames.nests_too_deep(data, raw):
            raise ApiError("invalid", too_deep)
    try:
        return model.model_validate(raw)
    except ValidationError as exc:
        raise validation_error(exc, "body") from exc


def _read_query(request: Request, model: type[BaseModel]) -> BaseModel:
    try:
        return model.model_validate(dict(request.query_params))
    except ValidationError as exc:
        raise validation_error(exc, "query") from exc


def _bearer_token(request: Request) -> str | None:
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    return token.strip() if scheme.lower() == "bearer" and token.strip() else None


def _endpoint(op: Operation, prefix: str) -> Callable[[Request], Awaitable[Response]]:
    template = prefix + op.path

    async def endpoint(request: Request) -> Response:
        request.scope["route_template"] = template
        services: Services = request.app.state.services
        try:
            async with UnitOfWork(services.db, services.relay) as uow:
                principal = None
                if not op.public:
                    principal = await authenticate(uow.session, services.tokens, _bearer_token(request))
                    if op.permission is not None:
                        principal.require(op.permission)
                body = await _read_body(request, op.body) if op.body else None
                query = _read_query(request, op.query) if op.query else None
                call: Call[Any, Any] = Call(request, services, uow, principal, body, query)
                result = await op.handler(call)
            for hook in call.after_commit:
                await _after_commit(hook)
            if call.refusal is not None:
                return error_response(call.refusal)
        except ApiError as error:
            return error_response(error)
        except IntegrityError as exc:
            log.info("integrity error on %s %s: %s", op.method, op.path, exc.orig)
            return error_response(ApiError("conflict", "the change conflicts with existing data"))
        except Exception as exc:
            if is_unavailable(exc):
                log.warning("database or Redis unavailable on %s %s: %s", op.method, op.path, exc)
                message = "the database or Redis is unavailable; nothing was changed, try again"
                return error_response(ApiError("unavailable", message))
            log.exception("unhandled error on %s %s", op.method, op.path)
            return error_response(ApiError("internal", "internal error"))
        if result is None:
            return Response(status_code=204 if op.status_code == 200 else op.status_code)
        return JSONResponse(result.model_dump(mode="json"), status_code=call.status_code or op.status_code)

    endpoint.__name__ = op.handler.__name__
    return endpoint


class ApiRouter:
    """Collects the routes of one resource and their OpenAPI declarations."""

    def __init__(self, tag: str) -> None:
        self.tag = tag
        self.operations: list[Operation] = []

    def route(
        self,
        method: str,
        path: str,
        summary: str,
        *,
        permission: Permission | None = None,
        public: bool = False,
        body: type[BaseModel] | None = None,
        query: type[BaseModel] | None = None,
        response: type[BaseModel] | None = None,
        status_code: int = 200,
        form: bool = False,
        errors: tuple[str, ...] = (),
        also: dict[int, type[BaseModel]] | None = None,
    ) -> Callable[[Callable[[Call[Any, Any]], Awaitable[Any]]], Handler]:
        """Declare a route; `public` routes take no token, all others need one."""

        def register(handler: Callable[[Call[Any, Any]], Awaitable[Any]]) -> Handler:
            typed = cast(Handler, handler)
            self.operations.append(
                Operation(
                    method=method,
                    path=path,
                    summary=summary,
                    tag=self.tag,
                    handler=typed,
                    permission=permission,
                    public=public,
                    body=body,
                    query=query,
                    response=response,
                    status_code=status_code,
                    form=form,
                    errors=errors,
                    also=also or {},
                )
            )
            return typed

        return register

    def get(
        self, path: str, summary: str, **kwargs: Any
    ) -> Callable[[Callable[[Call[Any, Any]], Awaitable[Any]]], Handler]:
        """Declare a GET route."""
        return self.route("GET", path, summary, **kwargs)

    def post(
        self, path: str, summary: str, **kwargs: Any
    ) -> Callable[[Callable[[Call[Any, Any]], Awaitable[Any]]], Handler]:
        """Declare a POST route."""
        return self.route("POST", path, summary, **kwargs)

    def patch(
        self, path: str, summary: str, **kwargs: Any
    ) -> Callable[[Callable[[Call[Any, Any]], Awaitable[Any]]], Handler]:
        """Declare a PATCH route."""
        return self.route("PATCH", path, summary, **kwargs)

    def delete(
        self, path: str, summary: str, **kwargs: Any
    ) -> Callable[[Callable[[Call[Any, Any]], Awaitable[Any]]], Handler]:
        """Declare a DELETE route."""
        return self.route("DELETE", path, summary, **kwargs)

    def routes(self, prefix: str) -> list[Route]:
        """Starlette routes for every declared path, mounted under `prefix`; each answers its methods.

        Any other method gets 405 `invalid` with the `Allow` header listing the path's methods.
        """
        by_path: dict[str, dict[str, Callable[[Request], Awaitable[Response]]]] = {}
        for op in self.operations:
            by_path.setdefault(op.path, {})[op.method] = _endpoint(op, prefix)
        return [
            _ApiRoute(prefix + path, _dispatch(endpoints), methods=list(endpoints))
            for path, endpoints in by_path.items()
        ]


class _ApiRoute(Route):
    """A path's route: a method it does not take is 405 `invalid` with the `Allow` header, in the error shape."""

    async def handle(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Answer the request, or 405 when the path does not take its method."""
        if self.methods and scope["method"] not in self.methods:
            allowed = sorted(self.methods)
            error = ApiError("invalid", f"method {scope['method']} is not allowed here", {"allow": allowed})
            response = error_response(error)
            response.status_code = 405
            response.headers["Allow"] = ", ".join(allowed)
            await response(scope, receive, send)
            return
        await super().handle(scope, receive, send)


def _dispatch(
    endpoints: dict[str, Callable[[Request], Awaitable[Response]]],
) -> Callable[[Request], Awaitable[Response]]:
    """One path's endpoint: the operation of the request's method (HEAD is answered as GET)."""

    async def dispatch(request: Request) -> Response:
        method = "GET" if request.method == "HEAD" else request.method
        return await endpoints[method](request)

    dispatch.__name__ = "_".join(endpoint.__name__ for endpoint in endpoints.values())
    return dispatch
