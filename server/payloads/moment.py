"""The one way a payload spells a timestamp: RFC 3339, UTC, to the millisecond (`2026-11-26T12:00:00.123Z`)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from pydantic import PlainSerializer, WithJsonSchema

from persistence.base import rfc3339

Moment = Annotated[
    datetime,
    PlainSerializer(rfc3339, return_type=str, when_used="json"),
    WithJsonSchema({"type": "string", "format": "date-time"}, mode="serialization"),
]
