"""Phone numbers as the chain stores them: E.164, e.g. `+4930123456`.

People type numbers with spaces, dashes, dots and parentheses, and often write the
international prefix as `00`; all of that is accepted and normalised. A number without
a country code is refused rather than guessed, since branches span countries.
"""

from __future__ import annotations

import re

# Separators people type between digit groups; removed before checking.
_SEPARATORS = re.compile(r"[\s\-.()]")
# E.164: a country code never starts with 0, and the whole number has at most 15 digits.
_E164 = re.compile(r"\+[1-9][0-9]{7,14}")


class InvalidPhoneError(ValueError):
    """A phone number that cannot be read as E.164."""


def normalise_phone(raw: str) -> str:
    """`raw` as E.164 ("+" and 8 to 15 digits); `InvalidPhoneError` when it cannot be one."""
    compact = _SEPARATORS.sub("", raw)
    if compact.startswith("00"):
        compact = "+" + compact[2:]
    if not _E164.fullmatch(compact):
        raise InvalidPhoneError(
            "a phone number must be international: '+' or '00', the country code, then the number (8 to 15 digits)"
        )
    return compact
