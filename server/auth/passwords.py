"""Argon2 hashing for user passwords and device secrets, off the event loop."""

from __future__ import annotations

import asyncio
import secrets

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

_hasher = PasswordHasher()

# Verified against when the user does not exist, so that a missing user takes as long as a wrong password.
_DUMMY_HASH = _hasher.hash(secrets.token_urlsafe(16))


async def hash_secret(secret: str) -> str:
    """The Argon2id hash of `secret`; hashing takes tens of milliseconds, so it runs in a thread."""
    return await asyncio.to_thread(_hasher.hash, secret)


async def verify_secret(secret_hash: str | None, secret: str) -> bool:
    """True when `secret` matches `secret_hash`; a None hash costs the same time and fails."""

    def verify() -> bool:
        try:
            return _hasher.verify(secret_hash or _DUMMY_HASH, secret) and secret_hash is not None
        except (VerificationError, InvalidHashError):
            return False

    return await asyncio.to_thread(verify)


def generate_secret() -> str:
    """A new random secret for a device or a generated password (about 190 bits)."""
    return secrets.token_urlsafe(24)
