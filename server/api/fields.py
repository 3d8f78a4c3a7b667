"""Field types and body bases shared by the REST resources and the device commands.

Every input model derives from `Input`: unknown fields are refused, and so is any text
holding a NUL character or any integer wider than a database column (PostgreSQL stores
neither), so bad input gets `invalid` naming the field instead of failing in the database.
Integer fields still say their own bounds (`RowId`, `Count`, ...), which the API documents.
"""

from __future__ import annotations

import re
from datetime import date, datetime
from typing import Annotated, Any, ClassVar

from pydantic import (
    AwareDatetime,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationInfo,
    field_validator,
)

from server.errors import ApiError

# Ids, counts and amounts are 32-bit integers in the database; larger values are refused before they reach it.
INT32_MAX = 2_147_483_647
INT32_MIN = -INT32_MAX - 1
RowId = Annotated[int, Field(ge=1, le=INT32_MAX)]
Count = Annotated[int, Field(ge=0, le=INT32_MAX)]
Position = Annotated[int, Field(ge=-INT32_MAX, le=INT32_MAX, description="display order, lowest first")]

_ISO_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")


def _iso_text(value: object, *, kind: str) -> object:
    # pydantic would also read numbers (and numeric text) as Unix timestamps; the API documents ISO 8601 only.
    if isinstance(value, datetime | date):
        return value
    if not isinstance(value, str) or not _ISO_DATE.match(value):
        raise ValueError(f"must be an ISO 8601 {kind}")
    return value


def _iso_date(value: object) -> object:
    return _iso_text(value, kind="date (YYYY-MM-DD)")


def _iso_datetime(value: object) -> object:
    return _iso_text(value, kind="date-time with a time zone")


IsoDate = Annotated[date, BeforeValidator(_iso_date)]
IsoDatetime = Annotated[AwareDatetime, BeforeValidator(_iso_datetime)]


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


class PatchBody(Input):
    """A PATCH body: a field left out keeps its value; null clears only the fields named in `clearable`.

    The OpenAPI schema says the same: only the clearable fields are nullable there.
    """

    clearable: ClassVar[frozenset[str]] = frozenset()

    @field_validator("*", mode="before")
    @classmethod
    def _null_only_where_clearable(cls, value: object, info: ValidationInfo) -> object:
        # Sending null for a value the resource must have is a mistake, not a request to erase it.
        if value is None and info.field_name not in cls.clearable:
            raise ValueError("may be left out, but not null")
        return value

    @classmethod
    def __get_pydantic_json_schema__(cls, core_schema: Any, handler: Any) -> dict[str, Any]:
        """The schema pydantic writes, without `null` for the fields that may not be cleared."""
        schema: dict[str, Any] = handler(core_schema)
        target = handler.resolve_ref_schema(schema)
        for name, prop in target.get("properties", {}).items():
            if name in cls.clearable or "anyOf" not in prop:
                continue
            options = [option for option in prop["anyOf"] if option != {"type": "null"}]
            del prop["anyOf"]
            if len(options) == 1:
                prop.update(options[0])
            else:
                prop["anyOf"] = options
            if prop.get("default", ...) is None:
                del prop["default"]
        return schema


def invalid_field(field: str, message: str) -> ApiError:
    """`invalid` naming one body field, in the shape of a validation error."""
    return ApiError("invalid", message, {"errors": [{"field": field, "message": message, "type": "value_error"}]})
