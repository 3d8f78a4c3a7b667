"""Field types and bases only the REST resources use: counts, display positions, ISO dates, PATCH bodies, and the
field errors of checks a route makes itself (against the database) after its body validated.

What the device commands share with them (`Input`, `RowId`, the `invalid` errors) is in server/validation.py.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from datetime import date, datetime
from typing import Annotated, Any, ClassVar

from pydantic import AwareDatetime, BeforeValidator, Field, ValidationInfo, field_validator

from server.validation import INT32_MAX, Input

Count = Annotated[int, Field(ge=0, le=INT32_MAX)]
Position = Annotated[int, Field(ge=-INT32_MAX, le=INT32_MAX, description="display order, lowest first")]

FieldError = dict[str, str]

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


def field_error(path: Sequence[int | str], message: str, rule: str) -> FieldError:
    """One entry of an `invalid` error's `errors`, for the field at `path` (`("tax_rates", 2, "tax_category_id")`).

    The same shape as the errors of a body that fails validation (server.validation.validation_error), so that a
    client reads both alike.
    """
    return {"field": ".".join(str(part) for part in path), "message": message, "type": rule}
