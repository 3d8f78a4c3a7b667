"""The catalogue's texts in other languages as REST writes them: `translations`, by locale code.

A category, option group or choice has a name in each locale; an item a name and, optionally, a
description. Locale codes are language tags such as `de`, `en` or `pt-BR` (server/domain/translations.py),
stored in canonical case: a malformed one is `invalid` with the error type `locale`. A PATCH that sends
`translations` sends the complete new map; `{}` removes them all.
"""

from __future__ import annotations

from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from server.validation import Input, Locale

MAX_LOCALES = 50
Text = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=120)]


class NameText(Input):
    """A name in one locale."""

    model_config = ConfigDict(extra="forbid")

    name: Text


class ItemText(NameText):
    """An item's name and description in one locale."""

    description: str | None = Field(default=None, min_length=1, max_length=1000)


class TextOut(BaseModel):
    """A row's texts in one locale (an item's description only where it has one there)."""

    name: str
    description: str | None = None


NameTranslations = Annotated[
    dict[Locale, NameText],
    Field(max_length=MAX_LOCALES, description="its name by locale code (`de`, `pt-BR`)"),
]
ItemTranslations = Annotated[
    dict[Locale, ItemText],
    Field(max_length=MAX_LOCALES, description="its name and description by locale code (`de`, `pt-BR`)"),
]
TranslationsOut = Annotated[dict[str, TextOut], Field(description="its texts by locale code")]
