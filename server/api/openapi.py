"""The OpenAPI 3.1 document, generated from the route declarations of every `ApiRouter`.

Schemas come from pydantic (bodies in validation mode, responses in serialization mode)
and live under `components/schemas`; a query model becomes query parameters instead. Each
operation lists its success response, the errors it declares, and the errors every route
of its kind can give: 401 and 403 for routes that need a token, 422 where there is input
to validate, 404 where the path names a resource.
"""

from __future__ import annotations

import re
import sys
from collections.abc import Sequence
from http import HTTPStatus
from typing import Any

from pydantic import BaseModel
from pydantic.json_schema import JsonSchemaMode, models_json_schema

import server
from server.api.routing import ApiRouter, Operation
from server.errors import HTTP_STATUS, ErrorCode
from server.settings import Settings

OPENAPI_VERSION = "3.1.0"
BEARER_SCHEME = "bearerAuth"
OAUTH2_SCHEME = "oauth2Password"
_REF_PREFIX = "#/components/schemas/"
# `{name}` or Starlette's `{name:convertor}`; OpenAPI knows only the first.
_PATH_PARAM = re.compile(r"\{(\w+)(?::(\w+))?\}")

_MEANINGS: dict[str, str] = {
    "unauthorized": "no token, or a bad, expired or revoked one",
    "forbidden": "the caller may not do this, or is disabled",
    "invalid": "the input failed validation; `details.errors` names each field",
    "not_found": "the resource does not exist (or is outside the caller's branch)",
    "conflict": "the change conflicts with the current state or existing data",
    "out_of_stock": "not enough stock left",
    "price_changed": "prices changed since the client last saw them",
    "terminal_offline": "the paired payment terminal is not connected",
    "terminal_busy": "the paired payment terminal is handling another payment",
    "rate_limited": "too many attempts; the Retry-After header says when to try again",
    "unavailable": "the database or broker is down; nothing was changed",
    "internal": "an unexpected server error",
}


class ErrorBody(BaseModel):
    """What went wrong: a stable code, a message for people and details for programs."""

    code: ErrorCode
    message: str
    details: dict[str, Any]


class Error(BaseModel):
    """The shape of every error response."""

    error: ErrorBody


def openapi_document(settings: Settings, routers: Sequence[ApiRouter]) -> dict[str, Any]:
    """The OpenAPI document of every operation of `routers`, with paths under `API_V1_STR`."""
    prefix = settings.API_V1_STR
    operations = [op for router in routers for op in router.operations]
    schemas = _Schemas(operations)

    paths: dict[str, dict[str, Any]] = {}
    operation_ids: set[str] = set()
    for op in operations:
        operation_id = f"{op.tag}_{op.handler.__name__}"
        if operation_id in operation_ids:
            raise ValueError(f"two operations of tag {op.tag!r} share the handler name {op.handler.__name__!r}")
        operation_ids.add(operation_id)
        path = prefix + _PATH_PARAM.sub(r"{\1}", op.path)
        methods = paths.setdefault(path, {})
        if op.method.lower() in methods:
            raise ValueError(f"{op.method} {path} is declared twice")
        methods[op.method.lower()] = _operation(op, operation_id, schemas)

    return {
        "openapi": OPENAPI_VERSION,
        "info": {"title": settings.PROJECT_NAME, "version": server.__version__, "description": _description(prefix)},
        "tags": _tags(routers),
        "paths": paths,
        "components": {"schemas": schemas.components, "securitySchemes": _security_schemes(prefix)},
    }


def _description(prefix: str) -> str:
    return (
        "REST for people: log in, and manage users, roles, branches, devices, the menu, stock, customers, "
        "orders and payments.\n\n"
        "Devices (kiosks, payment terminals, kitchen displays, order boards) use REST only to get a token "
        f"(`POST {prefix}/auth/device`); everything else they do over the WebSocket at `{prefix}/ws`, "
        "with the protocol documented in docs/protocol.md.\n\n"
        "Every route but the public ones needs a bearer access token; the permission each route needs is "
        "listed in its description, and a user bound to a branch only sees and changes that branch.\n\n"
        'Every error has the shape `{"error": {"code", "message", "details"}}` with a stable code. '
        "Besides the errors listed per route, any route may answer 503 `unavailable` (nothing was changed) "
        "or 500 `internal`."
    )


def _tags(routers: Sequence[ApiRouter]) -> list[dict[str, str]]:
    tags = []
    for router in routers:
        if not router.operations:
            continue
        # The first line of the route module's docstring says what the resource is.
        module_doc = sys.modules[router.operations[0].handler.__module__].__doc__ or ""
        tags.append({"name": router.tag, "description": (module_doc.strip().splitlines() or [""])[0]})
    return tags


def _security_schemes(prefix: str) -> dict[str, Any]:
    return {
        BEARER_SCHEME: {
            "type": "http",
            "scheme": "bearer",
            "bearerFormat": "JWT",
            "description": f"An access token from `{prefix}/auth/login` (users) or `{prefix}/auth/device` (devices).",
        },
        OAUTH2_SCHEME: {
            "type": "oauth2",
            "description": "Log in with a username and password; the documentation page then sends the token.",
            "flows": {"password": {"tokenUrl": f"{prefix}/auth/login", "scopes": {}}},
        },
    }


# Schemas ---------------------------------------------------------------------------------------------------------


class _Schemas:
    """The component schemas of the operations' models, and how to point at them."""

    def __init__(self, operations: Sequence[Operation]) -> None:
        wanted: dict[tuple[type[BaseModel], JsonSchemaMode], None] = {(Error, "serialization"): None}
        for op in operations:
            wanted.update(dict.fromkeys(_models(op)))
        keys, definitions = models_json_schema(list(wanted), ref_template=_REF_PREFIX + "{model}")
        self._refs = {key: str(schema["$ref"]) for key, schema in keys.items()}
        self.components: dict[str, Any] = definitions.get("$defs", {})
        # A query model becomes parameters rather than a schema of its own, unless a body or response uses it too.
        self.queries: dict[type[BaseModel], dict[str, Any]] = {}
        in_bodies = {model for op in operations for model in (op.body, op.response) if model is not None}
        for query in {op.query for op in operations if op.query is not None}:
            name = self.ref(query, "validation").removeprefix(_REF_PREFIX)
            self.queries[query] = self.components[name] if query in in_bodies else self.components.pop(name)

    def ref(self, model: type[BaseModel], mode: JsonSchemaMode) -> str:
        """The `$ref` of `model` in `mode`."""
        return self._refs[(model, mode)]

    @property
    def error(self) -> dict[str, str]:
        """A reference to the shared `Error` schema."""
        return {"$ref": self.ref(Error, "serialization")}


def _models(op: Operation) -> list[tuple[type[BaseModel], JsonSchemaMode]]:
    uses: list[tuple[type[BaseModel] | None, JsonSchemaMode]] = [
        (op.body, "validation"),
        (op.query, "validation"),
        (op.response, "serialization"),
        *((model, "serialization") for model in op.also.values()),
    ]
    return [(model, mode) for model, mode in uses if model is not None]


# Operations ------------------------------------------------------------------------------------------------------


def _operation(op: Operation, operation_id: str, schemas: _Schemas) -> dict[str, Any]:
    operation: dict[str, Any] = {
        "tags": [op.tag],
        "summary": op.summary,
        "description": _operation_description(op),
        "operationId": operation_id,
    }
    parameters = _path_parameters(op.path)
    if op.query is not None:
        parameters += _query_parameters(schemas.queries[op.query])
    if parameters:
        operation["parameters"] = parameters
    if op.body is not None:
        body = {"schema": {"$ref": schemas.ref(op.body, "validation")}}
        content = {"application/json": body}
        if op.form:
            content["application/x-www-form-urlencoded"] = body
        operation["requestBody"] = {"required": True, "content": content}
    operation["responses"] = {**_success(op, schemas), **_errors(op, schemas.error)}
    operation["security"] = [] if op.public else [{BEARER_SCHEME: []}, {OAUTH2_SCHEME: []}]
    return operation


def _operation_description(op: Operation) -> str:
    if op.public:
        access = "**Public:** no token needed."
    elif op.permission is not None:
        access = f"**Permission:** `{op.permission}`."
    else:
        access = "**Permission:** none beyond a valid token."
    return f"{op.description}\n\n{access}" if op.description else access


def _path_parameters(path: str) -> list[dict[str, Any]]:
    return [
        {
            "name": name,
            "in": "path",
            "required": True,
            "schema": {"type": "integer" if convertor in (None, "int") else "string"},
        }
        for name, convertor in ((m.group(1), m.group(2)) for m in _PATH_PARAM.finditer(path))
    ]


def _query_parameters(model_schema: dict[str, Any]) -> list[dict[str, Any]]:
    required = set(model_schema.get("required", ()))
    parameters = []
    for name, field_schema in model_schema.get("properties", {}).items():
        schema = {key: value for key, value in field_schema.items() if key not in ("title", "description")}
        schema = _without_null(schema)
        parameter: dict[str, Any] = {"name": name, "in": "query", "required": name in required, "schema": schema}
        if "description" in field_schema:
            parameter["description"] = field_schema["description"]
        parameters.append(parameter)
    return parameters


def _without_null(schema: dict[str, Any]) -> dict[str, Any]:
    """`X | None` as a query parameter is just an optional X: leaving it out is how a client says None."""
    options = schema.get("anyOf")
    if not options or {"type": "null"} not in options:
        return schema
    rest = [option for option in options if option != {"type": "null"}]
    unwrapped = {key: value for key, value in schema.items() if key != "anyOf"}
    if len(rest) == 1:
        unwrapped.update(rest[0])
    else:
        unwrapped["anyOf"] = rest
    if unwrapped.get("default", ...) is None:
        del unwrapped["default"]
    return unwrapped


def _success(op: Operation, schemas: _Schemas) -> dict[str, Any]:
    if op.response is None:
        # The handler returns nothing: routing answers 204 unless the route names another status.
        status = 204 if op.status_code == 200 else op.status_code
        return {str(status): {"description": HTTPStatus(status).phrase}}
    answers = {op.status_code: op.response, **op.also}
    return {
        str(status): {
            "description": HTTPStatus(status).phrase,
            "content": {"application/json": {"schema": {"$ref": schemas.ref(model, "serialization")}}},
        }
        for status, model in sorted(answers.items())
    }


def _error_codes(op: Operation) -> list[str]:
    codes = list(op.errors)
    if not op.public:
        codes += ["unauthorized", "forbidden"]
    if op.body is not None or op.query is not None:
        codes.append("invalid")
    if _PATH_PARAM.search(op.path):
        codes.append("not_found")
    return list(dict.fromkeys(codes))


def _errors(op: Operation, error_schema: dict[str, str]) -> dict[str, Any]:
    by_status: dict[int, list[str]] = {}
    for code in _error_codes(op):
        if code not in HTTP_STATUS:
            raise ValueError(f"{op.method} {op.path} declares the unknown error code {code!r}")
        by_status.setdefault(HTTP_STATUS[code], []).append(code)
    responses = {}
    for status in sorted(by_status):
        meanings = [f"`{code}`: {_meaning(op, code)}" for code in by_status[status]]
        responses[str(status)] = {
            "description": "; ".join(meanings),
            "content": {"application/json": {"schema": error_schema}},
        }
    return responses


def _meaning(op: Operation, code: str) -> str:
    if code == "forbidden" and op.permission is not None:
        return f"the caller lacks `{op.permission}` or is outside the branch, or is disabled"
    return _MEANINGS[code]
