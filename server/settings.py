"""Configuration from the environment and a `.env` file.

Every variable of the deployment guide is honoured under its own name; the protocol's
tunables sit beside them. Unset `DATABASE_URL` means a local SQLite file and unset
`REDIS_URL` means the in-process broker, so the server runs with nothing but Python.
"""

from __future__ import annotations

import ipaddress
import json
from datetime import timedelta
from functools import cached_property
from typing import Annotated, Literal

from pydantic import Field, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from persistence.database_url import normalise_database_url

# Shipped so that `make run` works out of the box; refused in production.
DEFAULT_SECRET_KEY = "dev-only-secret-key-change-me-for-production"
DEFAULT_JWT_SECRET_KEY = "dev-only-jwt-secret-key-change-me-for-production"
MIN_SECRET_LENGTH = 32


class InsecureSettingsError(ValueError):
    """Raised when production would start on a default or short secret."""


def _parse_origins(value: object) -> object:
    """Accept a JSON list (as the deployment guide writes it) or a comma-separated string."""
    if isinstance(value, str):
        text = value.strip()
        if not text:
            return []
        if text.startswith("["):
            return json.loads(text)
        return [part.strip() for part in text.split(",") if part.strip()]
    return value


def _parse_proxies(value: object) -> object:
    """Check FORWARDED_ALLOW_IPS: comma-separated IP addresses and networks, or `*` alone."""
    if isinstance(value, list):
        value = ",".join(str(part) for part in value)
    if not isinstance(value, str):
        return value
    proxies = [part.strip() for part in value.split(",") if part.strip()]
    for proxy in proxies:
        if proxy == "*":
            if len(proxies) > 1:
                raise ValueError("'*' trusts every peer and must stand alone")
            continue
        try:
            ipaddress.ip_network(proxy, strict=False)
        except ValueError:
            raise ValueError(f"{proxy!r} is not an IP address or network") from None
    return proxies


class Settings(BaseSettings):
    """All configuration of one server process."""

    model_config = SettingsConfigDict(env_file=".env", env_file_encoding="utf-8", extra="ignore")

    # Application
    PROJECT_NAME: str = "KIOSK Application"
    API_V1_STR: str = "/api/v1"
    ENVIRONMENT: Literal["local", "development", "staging", "production", "test"] = "local"
    DEBUG: bool = False
    SECRET_KEY: str = DEFAULT_SECRET_KEY
    JWT_SECRET_KEY: str = DEFAULT_JWT_SECRET_KEY

    # Backends
    DATABASE_URL: str | None = None
    # PostgreSQL connections one instance keeps at most (none beyond: see persistence/database.py).
    DATABASE_POOL_SIZE: int = Field(default=30, gt=0)
    REDIS_URL: str | None = None

    # Tokens
    JWT_ALGORITHM: Literal["HS256", "HS384", "HS512"] = "HS256"
    ACCESS_TOKEN_EXPIRE_MINUTES: int = Field(default=1800, gt=0)
    REFRESH_TOKEN_EXPIRE_DAYS: int = Field(default=30, gt=0)

    # HTTP
    ALLOWED_ORIGINS: Annotated[list[str], NoDecode] = Field(default_factory=list)
    LOGIN_RATE_LIMIT: int = Field(
        default=10, gt=0, description="failed logins a minute per username or device id from one address"
    )
    # Peers whose X-Forwarded-For and X-Forwarded-Proto are believed (server/realtime/serving.py); none by default.
    FORWARDED_ALLOW_IPS: Annotated[list[str], NoDecode] = Field(default_factory=list)

    # Integrations
    POS_API_URL: str | None = None
    POS_API_KEY: str | None = None
    PAYMENT_API_URL: str | None = None
    PAYMENT_API_KEY: str | None = None

    # Device protocol tunables (PROTOCOL.md)
    WS_MAX_MESSAGE_BYTES: int = Field(default=65536, gt=0)
    WS_HEARTBEAT_S: float = Field(default=20, gt=0)
    WS_MAX_BAD_FRAMES: int = Field(default=20, gt=0)
    WS_HELLO_TIMEOUT_S: float = Field(default=10, gt=0)
    WS_COMMAND_RATE_PER_S: float = Field(default=20, gt=0)
    WS_COMMAND_BURST: int = Field(default=40, gt=0)
    WS_SEND_BUFFER_BYTES: int = Field(default=1 << 20, gt=0)
    WS_MAX_REPLAY: int = Field(default=256, ge=0)
    WS_CLOSE_TIMEOUT_S: float = Field(default=5, gt=0)
    # Sockets saying hello at once; one more is closed with 1013 and a retry hint instead of waiting in line.
    WS_MAX_HANDSHAKES: int = Field(default=500, gt=0)
    # The retry hints of 1001 (shutdown) and 1013 (busy) closes are spread at random over this many seconds.
    WS_RETRY_SPREAD_S: float = Field(default=5, ge=0)
    HISTORY_SIZE: int = Field(default=1000, gt=0)
    HISTORY_TTL_S: int = Field(default=600, gt=0)
    ORDER_PAYMENT_TIMEOUT_S: int = Field(default=600, gt=0)
    PAYMENT_TIMEOUT_S: int = Field(default=120, gt=0)
    CART_IDLE_TIMEOUT_S: int = Field(default=900, gt=0)
    SHUTDOWN_GRACE_S: float = Field(default=10, gt=0)

    @field_validator("ALLOWED_ORIGINS", mode="before")
    @classmethod
    def _split_origins(cls, value: object) -> object:
        return _parse_origins(value)

    @field_validator("FORWARDED_ALLOW_IPS", mode="before")
    @classmethod
    def _check_proxies(cls, value: object) -> object:
        return _parse_proxies(value)

    @field_validator("POS_API_URL", "POS_API_KEY", "PAYMENT_API_URL", "PAYMENT_API_KEY", "REDIS_URL", "DATABASE_URL")
    @classmethod
    def _empty_is_unset(cls, value: str | None) -> str | None:
        # The guide writes `POS_API_URL=` for "not used"; treat it as unset.
        return value or None

    @field_validator("API_V1_STR")
    @classmethod
    def _api_prefix(cls, value: str) -> str:
        value = "/" + value.strip("/")
        return "" if value == "/" else value

    @model_validator(mode="after")
    def _payment_api_needs_its_key(self) -> Settings:
        # The key authenticates the calls and signs the webhooks: without it no result could be trusted.
        if self.PAYMENT_API_URL and not self.PAYMENT_API_KEY:
            raise ValueError("PAYMENT_API_KEY is required when PAYMENT_API_URL is set")
        return self

    @model_validator(mode="after")
    def _refuse_weak_secrets_in_production(self) -> Settings:
        if self.ENVIRONMENT != "production":
            return self
        problems = []
        for name, default in (("SECRET_KEY", DEFAULT_SECRET_KEY), ("JWT_SECRET_KEY", DEFAULT_JWT_SECRET_KEY)):
            value: str = getattr(self, name)
            if value == default or "change-this" in value or "change-me" in value:
                problems.append(f"{name} is the default value")
            elif len(value) < MIN_SECRET_LENGTH:
                problems.append(f"{name} is shorter than {MIN_SECRET_LENGTH} characters")
        if problems:
            raise InsecureSettingsError(
                "refusing to start with ENVIRONMENT=production: "
                + "; ".join(problems)
                + '. Generate one with: python -c "import secrets; print(secrets.token_urlsafe(32))"'
            )
        return self

    @cached_property
    def database_url(self) -> str:
        """The async SQLAlchemy URL the engine connects to."""
        return normalise_database_url(self.DATABASE_URL)

    @property
    def is_sqlite(self) -> bool:
        """True when the database is the local SQLite file."""
        return self.database_url.startswith("sqlite")

    @property
    def cart_idle_timeout(self) -> timedelta:
        """How long a cart may stay unchanged before it expires."""
        return timedelta(seconds=self.CART_IDLE_TIMEOUT_S)
