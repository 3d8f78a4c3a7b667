"""Texts in several languages: which locale codes are valid, and which text to show in a locale.

A catalogue row (category, item, option group, choice) keeps its base `name` (and `description`)
and `translations`, a map of locale code to the texts in that locale:
`{"de": {"name": "Pommes", "description": "..."}}`. A text is shown in the locale asked for,
else in that locale's language without its region (`pt-BR` → `pt`), else in the branch's
default locale (and its language), else the base text. Pure functions, no I/O.

Locale codes are the subset of BCP 47 language tags a kiosk needs: a two- or three-letter
language, optionally a script (`zh-Hant`) and a region (`pt-BR`, `es-419`), written in their
canonical case (`de`, `zh-Hant-TW`, `pt-BR`).
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence

# language [-Script] [-REGION]: case-insensitive on input, canonical case on output.
_LOCALE = re.compile(r"^([A-Za-z]{2,3})(?:-([A-Za-z]{4}))?(?:-([A-Za-z]{2}|[0-9]{3}))?$")
MAX_LOCALE_LENGTH = 16

Translations = Mapping[str, Mapping[str, str]]


class InvalidLocale(ValueError):
    """A locale code that is not a language tag of the accepted shape."""


def normalize_locale(code: str) -> str:
    """The locale code in canonical case (`PT-br` → `pt-BR`); `InvalidLocale` when it is not one."""
    match = _LOCALE.fullmatch(code) if isinstance(code, str) and len(code) <= MAX_LOCALE_LENGTH else None
    if match is None:
        raise InvalidLocale(f"{code!r} is not a locale code like de, en or pt-BR")
    language, script, region = match.groups()
    parts = [language.lower()]
    if script:
        parts.append(script.title())
    if region:
        parts.append(region.upper())
    return "-".join(parts)


def fallback_chain(locale: str | None, default: str | None) -> tuple[str, ...]:
    """The locales to look in, in order, for a text in `locale` with the branch's `default` behind it: each with
    its shorter forms (`zh-Hant-TW`, `zh-Hant`, `zh`), each once."""
    chain: list[str] = []
    for code in (locale, default):
        if not code:
            continue
        parts = code.split("-")
        for end in range(len(parts), 0, -1):
            shorter = "-".join(parts[:end])
            if shorter not in chain:
                chain.append(shorter)
    return tuple(chain)


def pick(translations: Translations | None, field: str, chain: Sequence[str], base: str | None) -> str | None:
    """The text `field` in the first locale of `chain` that has it, else `base` (the row's own column)."""
    if translations:
        for locale in chain:
            text = translations.get(locale, {}).get(field)
            if text:
                return text
    return base
