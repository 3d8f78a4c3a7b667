"""Locale codes and the text shown in a locale (server/domain/translations.py): pure functions."""

from __future__ import annotations

import pytest

from server.domain.translations import InvalidLocale, fallback_chain, normalize_locale, pick

TEXTS = {
    "de": {"name": "Pommes", "description": "knusprig"},
    "pt": {"name": "Batatas"},
    "pt-BR": {"name": "Batata frita"},
    "en": {"name": ""},
}


@pytest.mark.parametrize(
    ("code", "canonical"),
    [
        ("de", "de"),
        ("DE", "de"),
        ("pt-br", "pt-BR"),
        ("zh-hant-tw", "zh-Hant-TW"),
        ("es-419", "es-419"),
        ("fil", "fil"),
    ],
)
def test_locale_codes_are_written_in_canonical_case(code: str, canonical: str) -> None:
    """Language lower case, script title case, region upper case."""
    assert normalize_locale(code) == canonical


NOT_LOCALES = ["", "d", "deutsch", "de_DE", "de-", "de-DEU-x", "en-US-1", "12", "de DE", "e\u0301n", "de\n"]


@pytest.mark.parametrize("code", NOT_LOCALES)
def test_what_is_not_a_language_tag_is_refused(code: str) -> None:
    """Underscores, long languages, dangling hyphens, digits as a language, spaces: not locale codes."""
    with pytest.raises(InvalidLocale):
        normalize_locale(code)


def test_the_chain_looks_in_the_locale_its_language_then_the_default() -> None:
    """pt-BR, then pt, then the default and its own language, each once."""
    assert fallback_chain("pt-BR", "de") == ("pt-BR", "pt", "de")
    assert fallback_chain("zh-Hant-TW", "en-GB") == ("zh-Hant-TW", "zh-Hant", "zh", "en-GB", "en")
    assert fallback_chain("de", "de") == ("de",)
    assert fallback_chain(None, "de") == ("de",)
    assert fallback_chain(None, None) == ()


def test_pick_takes_the_first_locale_that_has_the_text_else_the_base() -> None:
    """The region's name first, the language's next, the default's, then the row's own; an empty text is none."""
    assert pick(TEXTS, "name", fallback_chain("pt-BR", "de"), "Fries") == "Batata frita"
    assert pick(TEXTS, "name", fallback_chain("pt-PT", "de"), "Fries") == "Batatas"
    assert pick(TEXTS, "name", fallback_chain("fr", "de"), "Fries") == "Pommes"
    assert pick(TEXTS, "name", fallback_chain("en", "fr"), "Fries") == "Fries"
    assert pick(TEXTS, "description", fallback_chain("pt-BR", "de"), None) == "knusprig"
    assert pick(TEXTS, "description", fallback_chain("pt-BR", None), None) is None
    assert pick({}, "name", ("de",), "Fries") == "Fries"
    assert pick(None, "name", ("de",), "Fries") == "Fries"
