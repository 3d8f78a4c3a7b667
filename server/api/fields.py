"""Field types and body bases shared by the REST resources."""

from __future__ import annotations

from typing import Annotated, ClassVar

from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator

from server.errors import ApiError

# Ids and counts are 32-bit integers in the database; larger values are refused before they reach it.
INT32_MAX = 2_147_483_647
RowId = Annotated[int, Field(ge=1, le=INT32_MAX)]
Position = Annotated[int, Field(ge=-INT32_MAX, le=INT32_MAX, description="display order, lowest first")]


class PatchBody(BaseModel):
    """A PATCH body: a field left out keeps its value; null clears only the fields named in `clearable`."""

    model_config = ConfigDict(extra="forbid")

    clearable: ClassVar[frozenset[str]] = frozenset()

    @field_validator("*", mode="before")
    @classmethod
    def _null_only_where_clearable(cls, value: object, info: ValidationInfo) -> object:
        # Sending null for a value the resource must have is a mistake, not a request to erase it.
        if value is None and info.field_name not in cls.clearable:
            raise ValueError("may be left out, but not null")
        return value


def invalid_field(field: str, message: str) -> ApiError:
    """`invalid` naming one body field, in the shape of a validation error."""
    return ApiError("invalid", message, {"errors": [{"field": field, "message": message, "type": "value_error"}]})
