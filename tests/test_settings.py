"""Settings: URL normalisation, production secrets, list and empty values, the `.env` file."""

from __future__ import annotations

import asyncio
import re
import secrets
from pathlib import Path

import pytest
from pydantic import ValidationError
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from persistence.database_url import DEFAULT_SQLITE_URL, normalise_database_url
from server.app import build_services
from server.settings import DEFAULT_SECRET_KEY, InsecureSettingsError, Settings


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """No variable of the machine running the tests, and no `.env` of the repository, leaks in."""
    for name in Settings.model_fields:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.chdir(tmp_path)


def _insecure_message(exc: ValidationError) -> str:
    """The message of the InsecureSettingsError inside a validation error."""
    causes = [error.get("ctx", {}).get("error") for error in exc.errors()]
    [cause] = [cause for cause in causes if isinstance(cause, InsecureSettingsError)]
    return str(cause)


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ("postgres://u:p@db.example:5432/kiosk", "postgresql+asyncpg://u:p@db.example:5432/kiosk"),
        ("postgresql://u:p@db.example:5432/kiosk", "postgresql+asyncpg://u:p@db.example:5432/kiosk"),
        ("postgresql+asyncpg://u:p@db.example/kiosk", "postgresql+asyncpg://u:p@db.example/kiosk"),
        ("postgresql://u@db.example/kiosk?sslmode=require", "postgresql+asyncpg://u@db.example/kiosk?ssl=require"),
        ("sqlite:///./other.db", "sqlite+aiosqlite:///./other.db"),
    ],
)
def test_database_urls_are_normalised_for_asyncpg_and_aiosqlite(given: str, expected: str) -> None:
    """Railway's libpq-style URLs gain the async driver, and sslmode is spelled the asyncpg way."""
    assert normalise_database_url(given) == expected
    assert Settings(_env_file=None, DATABASE_URL=given).database_url == expected


def test_unset_or_empty_database_url_means_the_local_sqlite_file(monkeypatch: pytest.MonkeyPatch) -> None:
    """Without DATABASE_URL the server runs on ./var/kiosk.db."""
    assert Settings(_env_file=None).database_url == DEFAULT_SQLITE_URL
    assert Settings(_env_file=None).is_sqlite
    monkeypatch.setenv("DATABASE_URL", "")
    assert Settings(_env_file=None).database_url == DEFAULT_SQLITE_URL


@pytest.mark.parametrize("name", ["SECRET_KEY", "JWT_SECRET_KEY"])
def test_production_refuses_a_default_secret_and_names_it(monkeypatch: pytest.MonkeyPatch, name: str) -> None:
    """Leaving either secret at its shipped value stops production, and the message says which one."""
    other = "JWT_SECRET_KEY" if name == "SECRET_KEY" else "SECRET_KEY"
    monkeypatch.setenv(other, secrets.token_urlsafe(32))
    with pytest.raises(ValidationError) as raised:
        Settings(_env_file=None, ENVIRONMENT="production")
    message = _insecure_message(raised.value)
    assert f"{name} is the default value" in message
    assert not re.search(rf"\b{other}\b", message)


def test_production_refuses_a_short_secret_and_the_guides_placeholder() -> None:
    """A short secret, or the guide's `...change-this` example, is refused in production."""
    with pytest.raises(ValidationError) as raised:
        Settings(
            _env_file=None,
            ENVIRONMENT="production",
            SECRET_KEY="your-super-secret-key-change-this",
            JWT_SECRET_KEY="too-short",
        )
    message = _insecure_message(raised.value)
    assert "SECRET_KEY is the default value" in message
    assert "JWT_SECRET_KEY is shorter than 32 characters" in message


def test_production_accepts_long_random_secrets() -> None:
    """Two long random secrets are enough to start in production."""
    settings = Settings(
        _env_file=None,
        ENVIRONMENT="production",
        SECRET_KEY=secrets.token_urlsafe(32),
        JWT_SECRET_KEY=secrets.token_urlsafe(32),
    )
    assert settings.ENVIRONMENT == "production"


def test_default_secrets_are_fine_outside_production() -> None:
    """Local runs start on the shipped secrets, so that `make run` needs no set-up."""
    assert Settings(_env_file=None, ENVIRONMENT="local").SECRET_KEY == DEFAULT_SECRET_KEY


@pytest.mark.parametrize(
    "value",
    [
        '["https://a.example", "https://b.example"]',
        "https://a.example, https://b.example",
        "https://a.example,https://b.example,",
    ],
)
def test_allowed_origins_accept_a_json_list_or_commas(monkeypatch: pytest.MonkeyPatch, value: str) -> None:
    """ALLOWED_ORIGINS as the guide writes it (JSON) and as people type it (commas) mean the same."""
    monkeypatch.setenv("ALLOWED_ORIGINS", value)
    assert Settings(_env_file=None).ALLOWED_ORIGINS == ["https://a.example", "https://b.example"]


def test_allowed_origins_empty_means_none(monkeypatch: pytest.MonkeyPatch) -> None:
    """An empty ALLOWED_ORIGINS allows no cross-origin caller."""
    monkeypatch.setenv("ALLOWED_ORIGINS", "")
    assert Settings(_env_file=None).ALLOWED_ORIGINS == []


def test_empty_integration_urls_are_unset(monkeypatch: pytest.MonkeyPatch) -> None:
    """`POS_API_URL=` (as the guide writes it) means no POS, not an empty URL."""
    for name in ("POS_API_URL", "POS_API_KEY", "PAYMENT_API_URL", "PAYMENT_API_KEY", "REDIS_URL"):
        monkeypatch.setenv(name, "")
    settings = Settings(_env_file=None)
    assert settings.POS_API_URL is None
    assert settings.POS_API_KEY is None
    assert settings.PAYMENT_API_URL is None
    assert settings.PAYMENT_API_KEY is None
    assert settings.REDIS_URL is None


def test_a_payment_api_without_its_key_is_refused() -> None:
    """The key authenticates the calls and signs the webhooks, so a URL alone cannot work."""
    with pytest.raises(ValidationError, match="PAYMENT_API_KEY is required when PAYMENT_API_URL is set"):
        Settings(_env_file=None, PAYMENT_API_URL="https://pay.example")
    settings = Settings(_env_file=None, PAYMENT_API_URL="https://pay.example", PAYMENT_API_KEY="sk_test")
    assert settings.PAYMENT_API_KEY == "sk_test"


@pytest.mark.parametrize(
    ("given", "expected"), [("/api/v1", "/api/v1"), ("api/v1/", "/api/v1"), ("/v2/", "/v2"), ("/", ""), ("", "")]
)
def test_api_prefix_is_normalised(given: str, expected: str) -> None:
    """API_V1_STR gets one leading slash and no trailing one; `/` means no prefix."""
    assert Settings(_env_file=None, API_V1_STR=given).API_V1_STR == expected


def test_invalid_values_are_refused_with_the_variable_named(monkeypatch: pytest.MonkeyPatch) -> None:
    """A value of the wrong type is an error that points at its variable."""
    monkeypatch.setenv("ACCESS_TOKEN_EXPIRE_MINUTES", "soon")
    with pytest.raises(ValidationError) as raised:
        Settings(_env_file=None)
    assert [error["loc"] for error in raised.value.errors()] == [("ACCESS_TOKEN_EXPIRE_MINUTES",)]


def test_values_are_read_from_a_dotenv_file_and_the_environment_wins(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """`.env` in the working directory configures the server; a real variable overrides it."""
    (tmp_path / ".env").write_text(
        "PROJECT_NAME=Kiosk from dotenv\n"
        "DATABASE_URL=postgres://u:p@db.example:5432/kiosk\n"
        "ALLOWED_ORIGINS=https://a.example,https://b.example\n"
        "POS_API_URL=\n"
        "WS_HEARTBEAT_S=5\n"
        "DEBUG=true\n",
        encoding="utf-8",
    )
    monkeypatch.setenv("WS_HEARTBEAT_S", "7.5")
    settings = Settings()
    assert settings.PROJECT_NAME == "Kiosk from dotenv"
    assert settings.database_url == "postgresql+asyncpg://u:p@db.example:5432/kiosk"
    assert settings.ALLOWED_ORIGINS == ["https://a.example", "https://b.example"]
    assert settings.POS_API_URL is None
    assert settings.DEBUG is True
    assert settings.WS_HEARTBEAT_S == 7.5


def test_every_setting_is_documented_in_env_example_and_readme() -> None:
    """A deployer finds every variable, with its meaning, in .env.example and in the README's table."""
    repo = Path(__file__).resolve().parent.parent
    env_example = (repo / ".env.example").read_text(encoding="utf-8")
    readme = (repo / "README.md").read_text(encoding="utf-8")
    for name in Settings.model_fields:
        assert re.search(rf"^(# )?{name}=", env_example, re.MULTILINE), f"{name} missing from .env.example"
        assert f"| `{name}` |" in readme, f"{name} missing from the README's configuration table"


def test_no_proxy_is_trusted_by_default() -> None:
    """Unset, FORWARDED_ALLOW_IPS trusts no peer's forwarded headers, not even loopback's."""
    assert Settings(_env_file=None).FORWARDED_ALLOW_IPS == []


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("", []),
        ("*", ["*"]),
        ("127.0.0.1", ["127.0.0.1"]),
        (" 10.0.0.0/8, ::1 ,fd00::/8,", ["10.0.0.0/8", "::1", "fd00::/8"]),
    ],
)
def test_trusted_proxies_are_addresses_networks_or_a_star(
    monkeypatch: pytest.MonkeyPatch, value: str, expected: list[str]
) -> None:
    """FORWARDED_ALLOW_IPS takes comma-separated addresses and networks, or `*` for every peer."""
    monkeypatch.setenv("FORWARDED_ALLOW_IPS", value)
    assert Settings(_env_file=None).FORWARDED_ALLOW_IPS == expected


@pytest.mark.parametrize(
    ("value", "problem"),
    [
        ("localhost", "'localhost' is not an IP address or network"),
        ("10.0.0.0/33", "'10.0.0.0/33' is not an IP address or network"),
        ("127.0.0.1,*", "'*' trusts every peer and must stand alone"),
    ],
)
def test_a_trusted_proxy_that_is_not_an_address_is_refused(
    monkeypatch: pytest.MonkeyPatch, value: str, problem: str
) -> None:
    """A host name or a typo would silently trust nobody (or the wrong peer): it is refused by name."""
    monkeypatch.setenv("FORWARDED_ALLOW_IPS", value)
    with pytest.raises(ValidationError, match=re.escape(problem)) as raised:
        Settings(_env_file=None)
    assert [error["loc"] for error in raised.value.errors()] == [("FORWARDED_ALLOW_IPS",)]


def test_trusted_proxies_are_read_from_the_dotenv_file(tmp_path: Path) -> None:
    """FORWARDED_ALLOW_IPS is a setting like the others: `.env` sets it too."""
    (tmp_path / ".env").write_text("FORWARDED_ALLOW_IPS=10.0.0.0/8\n", encoding="utf-8")
    assert Settings().FORWARDED_ALLOW_IPS == ["10.0.0.0/8"]


async def test_the_postgresql_pool_keeps_database_pool_size_connections_and_none_beyond(
    migrated_urls: dict[str, str],
) -> None:
    """`DATABASE_POOL_SIZE` is the server's pool: with 2, two transactions hold both connections and a third waits
    for one of them rather than opening another."""
    settings = Settings(_env_file=None, DATABASE_URL=migrated_urls["postgresql"], DATABASE_POOL_SIZE=2)
    services = build_services(settings)
    try:
        engine = services.db.engine
        async with engine.connect() as first, engine.connect() as second:
            await first.execute(text("SELECT 1"))
            await second.execute(text("SELECT 1"))
            waiting = asyncio.create_task(_one_more(engine))
            await asyncio.sleep(0.3)
            assert not waiting.done()
            assert engine.pool.checkedout() == 2  # type: ignore[attr-defined]
        await asyncio.wait_for(waiting, 5)
    finally:
        await services.db.dispose()


async def _one_more(engine: AsyncEngine) -> None:
    async with engine.connect() as connection:
        await connection.execute(text("SELECT 1"))
