"""Phone normalisation: every way people type an international number gives one E.164 string."""

from __future__ import annotations

import pytest

from server.domain.phones import InvalidPhoneError, normalise_phone


@pytest.mark.parametrize(
    ("typed", "stored"),
    [
        ("+4930123456", "+4930123456"),
        ("+49 30 123456", "+4930123456"),
        ("+49 (30) 123-45.6", "+4930123456"),
        ("0049 30 123456", "+4930123456"),
        ("  +1 (212) 555-0100 ", "+12125550100"),
        ("+1\u00a0212\t555 0100", "+12125550100"),
        ("+12345678", "+12345678"),
        ("+123456789012345", "+123456789012345"),
    ],
)
def test_separators_and_00_prefix_normalise_to_e164(typed: str, stored: str) -> None:
    """Spaces, dashes, dots and parentheses go; a leading 00 becomes +."""
    assert normalise_phone(typed) == stored


@pytest.mark.parametrize(
    "typed",
    [
        "",
        "+",
        "030 123456",  # no country code: not guessed
        "4930123456",  # digits without + or 00
        "+1234567",  # 7 digits: too short
        "+1234567890123456",  # 16 digits: too long
        "+0930123456",  # country codes never start with 0
        "000930123456",
        "++4930123456",
        "+49 30 12345a",
        "+49/30/123456",
        "+49 30 123456 ext 7",
        "+٤٩٣٠١٢٣٤٥٦",  # non-ASCII digits are not stored
    ],
)
def test_anything_else_is_refused(typed: str) -> None:
    """Input that is not an international number raises InvalidPhoneError."""
    with pytest.raises(InvalidPhoneError):
        normalise_phone(typed)


def test_normalising_twice_changes_nothing() -> None:
    """A stored number normalises to itself, so lookups may normalise what they are given."""
    stored = normalise_phone("0044 (20) 7946-0958")
    assert normalise_phone(stored) == stored == "+442079460958"
