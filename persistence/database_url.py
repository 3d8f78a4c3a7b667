"""The database URL: what a deployment hands out, made into the async SQLAlchemy URL the engine needs."""

from __future__ import annotations

from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

DEFAULT_SQLITE_URL = "sqlite+aiosqlite:///./var/kiosk.db"


def normalise_database_url(url: str | None) -> str:
    """Return an async SQLAlchemy URL for `url`; None means the local SQLite file.

    Railway and Heroku hand out `postgres://` and `postgresql://` URLs meant for libpq;
    SQLAlchemy needs the asyncpg driver named, and asyncpg spells `sslmode` as `ssl`.
    """
    if not url:
        return DEFAULT_SQLITE_URL
    scheme, rest = url.split("://", 1) if "://" in url else (url, "")
    if scheme in ("postgres", "postgresql", "postgresql+psycopg2", "postgresql+psycopg"):
        scheme = "postgresql+asyncpg"
    elif scheme == "sqlite":
        scheme = "sqlite+aiosqlite"
    normalised = f"{scheme}://{rest}"
    if scheme == "postgresql+asyncpg":
        parts = urlsplit(normalised)
        query = [("ssl" if key == "sslmode" else key, value) for key, value in parse_qsl(parts.query)]
        normalised = urlunsplit(parts._replace(query=urlencode(query)))
    return normalised
