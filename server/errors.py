"""The error codes of PROTOCOL.md and the one exception that carries them.

ApiError(code, message, details)
  raised anywhere below the edge; the REST layer turns it into
  {"error": {"code", "message", "details"}} with the code's HTTP status,
  the WebSocket router into a failed `reply`.
"""

from __future__ import annotations

from typing import Any, Literal

ErrorCode = Literal[
    "unauthorized",
    "forbidden",
    "invalid",
    "not_found",
    "conflict",
    "out_of_stock",
    "price_changed",
    "terminal_offline",
    "terminal_busy",
    "rate_limited",
    "unavailable",
    "internal",
]

HTTP_STATUS: dict[str, int] = {
    "unauthorized": 401,
    "forbidden": 403,
    "invalid": 422,
    "not_found": 404,
    "conflict": 409,
    "out_of_stock": 409,
    "price_changed": 409,
    "terminal_offline": 409,
    "terminal_busy": 409,
    "rate_limited": 429,
    "unavailable": 503,
    "internal": 500,
}


class ApiError(Exception):
    """A failure the client is told about, with a stable code."""

    def __init__(
        self,
        code: ErrorCode,
        message: str,
        details: dict[str, Any] | None = None,
        *,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.code: ErrorCode = code
        self.message = message
        self.details = details or {}
        self.headers = headers or {}

    @property
    def status_code(self) -> int:
        """The HTTP status that goes with the code."""
        return HTTP_STATUS[self.code]

    def body(self) -> dict[str, Any]:
        """The error as PROTOCOL.md shapes it."""
        return {"code": self.code, "message": self.message, "details": self.details}


def not_found(what: str, ident: object) -> ApiError:
    """`not_found` for one resource, e.g. not_found("user", 7)."""
    return ApiError("not_found", f"{what} {ident} does not exist", {"resource": what, "id": ident})
