"""Input validation shared by the REST routes and the device commands, and the `invalid` errors it gives.

Every input model derives from `Input`: unknown fields are refused, and so is any text
holding a NUL character or any integer wider than a database column (PostgreSQL stores
neither), so bad input gets `invalid` naming the field instead of failing in the database.
Integer fields still say their own bounds (`RowId`, ...), which the API documents.
"""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, ValidationError, field_validator
from pydantic_core import PydanticCustomError

from server.domain.translations import InvalidLocale, normalize_locale
from server.errors import ApiError

# Ids, counts and amounts are 32-bit integers in the database; larger values are refused before they reach it.
INT32_MAX = 2_147_483_647
INT32_MIN = -INT32_MAX - 1
RowId = Annotated[int, Field(ge=1, le=INT32_MAX)]


def _locale(code: str) -> str:
    try:
        return normalize_locale(code)
    except InvalidLocale as exc:
        raise PydanticCustomError("locale", str(exc)) from None


# A locale code (`de`, `pt-BR`), in canonical case; a malformed one is `invalid` with the error type `locale`.
Locale = Annotated[str, Field(min_length=2, max_length=16, examples=["de", "pt-BR"]), AfterValidator(_locale)]


def locale_not_offered(locale: str, offered: list[str], field: str = "locale") -> ApiError:
    """`invalid` for a locale the branch does not offer (error type `locale_not_offered`), naming those it does."""
    message = f"this branch offers {', '.join(offered)}, not {locale}"
    error = {"field": field, "message": message, "type": "locale_not_offered"}
    return ApiError("invalid", message, {"errors": [error], "locales": offered})


def storable_problem(value: object) -> str | None:
    """Why `value` (raw input: JSON-like, nested) cannot be stored, or None when it can."""
    if isinstance(value, str):
        return "must not contain a NUL character" if "\x00" in value else None
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return None if INT32_MIN <= value <= INT32_MAX else f"must be between {INT32_MIN} and {INT32_MAX}"
    if isinstance(value, dict):
        for key, item in value.items():
            problem = storable_problem(key) or storable_problem(item)
            if problem:
                return problem
    elif isinstance(value, list | tuple):
        for item in value:
            problem = storable_problem(item)
            if problem:
                return problem
    return None


class Input(BaseModel):
    """A body, query or command payload: unknown fields are refused, and so is what no column can hold."""

    model_config = ConfigDict(extra="forbid")

    @field_validator("*", mode="before")
    @classmethod
    def _storable(cls, value: Any) -> Any:
        # One check for every field, nested values included: NUL in text, integers wider than 32 bits.
        problem = storable_problem(value)
        if problem:
            raise ValueError(problem)
        return value


def validation_error(exc: ValidationError, where: str) -> ApiError:
    """`invalid`, with each failing field, for a pydantic validation error."""
    errors = [
        {"field": ".".join(str(part) for part in err["loc"]), "message": err["msg"], "type": err["type"]}
        for err in exc.errors(include_url=False, include_context=False, include_input=False)
    ]
    return ApiError("invalid", f"invalid {where}", {"errors": errors})


def invalid_field(field: str, message: str) -> ApiError:
    """`invalid` naming one body field, in the shape of a validation error."""
    return ApiError("invalid", message, {"errors": [{"field": field, "message": message, "type": "value_error"}]})
