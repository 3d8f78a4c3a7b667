"""The command line, run as a user runs it: `python -m server ...` in a subprocess."""

from __future__ import annotations

import asyncio
import os
import re
import secrets
import signal
import sys
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from sqlalchemy import func, select

from persistence import migrate
from persistence.base import Base
from persistence.database import Database
from persistence.database_url import DEFAULT_SQLITE_URL
from persistence.tables import User
from server.auth.passwords import verify_secret
from server.cli import main as cli_main
from server.cli import reset_hint, where
from server.settings import Settings
from tests.live import free_port, listens_on

REPO = Path(__file__).resolve().parent.parent
COMMAND_TIMEOUT_S = 60
SERVE_START_TIMEOUT_S = 30
SERVE_STOP_TIMEOUT_S = 20


@dataclass
class Finished:
    """What a command printed and how it exited."""

    returncode: int
    stdout: str
    stderr: str


def cli_env(**variables: str) -> dict[str, str]:
    """This process's environment without any server setting, plus `variables`."""
    env = {name: value for name, value in os.environ.items() if name not in Settings.model_fields and name != "PORT"}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))
    env.update(variables)
    return env


async def start(*args: str, cwd: Path, env: dict[str, str]) -> asyncio.subprocess.Process:
    """Start `python -m server` with `args`."""
    return await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "server",
        *args,
        cwd=cwd,
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )


async def finish(process: asyncio.subprocess.Process, within_s: float = COMMAND_TIMEOUT_S) -> Finished:
    """Wait for `process` to exit (killing it after `within_s` seconds) and collect its output."""
    try:
        stdout, stderr = await asyncio.wait_for(process.communicate(), within_s)
    except TimeoutError:
        process.kill()
        await process.wait()
        raise
    assert process.returncode is not None
    return Finished(process.returncode, stdout.decode(), stderr.decode())


async def cli(*args: str, cwd: Path, env: dict[str, str] | None = None) -> Finished:
    """Run `python -m server` with `args` to the end."""
    return await finish(await start(*args, cwd=cwd, env=env or cli_env()))


def sqlite_url(path: Path) -> str:
    """The async URL of a SQLite file."""
    return f"sqlite+aiosqlite:///{path}"


async def row_counts(url: str) -> dict[str, int]:
    """How many rows every table of the database at `url` holds."""
    db = Database.from_url(url)
    try:
        async with db.session() as session:
            return {
                table.name: int(await session.scalar(select(func.count()).select_from(table)) or 0)
                for table in Base.metadata.sorted_tables
            }
    finally:
        await db.dispose()


async def read_user(url: str, username: str) -> User | None:
    """The user named `username` in the database at `url`, with its role."""
    db = Database.from_url(url)
    try:
        async with db.session() as session:
            return await session.scalar(select(User).where(User.username == username))
    finally:
        await db.dispose()


def assert_one_clean_line(text: str) -> None:
    """An expected failure is one line, not a traceback."""
    assert "Traceback" not in text
    assert len(text.strip().splitlines()) == 1, text


async def test_help_lists_every_command(tmp_path: Path) -> None:
    """`python -m server --help` names the five commands."""
    finished = await cli("--help", cwd=tmp_path)
    assert finished.returncode == 0, finished.stderr
    for command in ("serve", "migrate", "seed-demo", "create-admin", "enrol-links"):
        assert command in finished.stdout


@pytest.mark.parametrize(
    ("command", "options"),
    [
        ("serve", ["--host", "--port", "FORWARDED_ALLOW_IPS"]),
        ("migrate", ["--revision"]),
        ("seed-demo", ["--base-url"]),
        ("enrol-links", ["--base-url"]),
        ("create-admin", ["--username", "--password"]),
    ],
)
async def test_every_command_explains_its_options(tmp_path: Path, command: str, options: list[str]) -> None:
    """Each subcommand's --help describes it and its options."""
    finished = await cli(command, "--help", cwd=tmp_path)
    assert finished.returncode == 0, finished.stderr
    assert f"usage: kiosk-server {command}" in finished.stdout
    for option in options:
        assert option in finished.stdout


async def test_the_forwarded_allow_ips_flag_points_at_the_setting(tmp_path: Path) -> None:
    """Trusted proxies come only from FORWARDED_ALLOW_IPS; the old flag is a usage error that says so."""
    finished = await cli("serve", "--port", str(free_port()), "--forwarded-allow-ips", "*", cwd=tmp_path)
    assert finished.returncode == 2
    assert "set FORWARDED_ALLOW_IPS" in finished.stderr


async def test_a_trusted_proxy_that_is_no_address_stops_serve_in_one_line(tmp_path: Path) -> None:
    """FORWARDED_ALLOW_IPS naming a host instead of an address is refused before anything is served."""
    env = cli_env(FORWARDED_ALLOW_IPS="proxy.example")
    finished = await cli("serve", "--port", str(free_port()), cwd=tmp_path, env=env)
    assert finished.returncode == 1
    assert "invalid FORWARDED_ALLOW_IPS" in finished.stderr and "'proxy.example'" in finished.stderr
    assert_one_clean_line(finished.stderr)


async def test_a_missing_command_is_a_usage_error(tmp_path: Path) -> None:
    """Without a command the exit status is 2 and stderr shows the usage."""
    finished = await cli(cwd=tmp_path)
    assert finished.returncode == 2
    assert "usage:" in finished.stderr


async def test_migrate_then_seed_demo_twice_on_the_default_sqlite_file(tmp_path: Path) -> None:
    """With nothing configured: migrate, load the demo, and a second load changes nothing and says how to reset."""
    url = sqlite_url(tmp_path / "var" / "kiosk.db")
    migrated = await cli("migrate", cwd=tmp_path)
    assert migrated.returncode == 0, migrated.stderr
    assert f"to revision {migrate.head_revision()}" in migrated.stdout
    assert str(tmp_path / "var" / "kiosk.db") in migrated.stdout

    first = await cli("seed-demo", cwd=tmp_path)
    assert first.returncode == 0, first.stderr
    assert "Demo data loaded" in first.stdout
    assert re.search(r"password\s+\S{20,}", first.stdout)
    assert "/api/v1/auth/device" in first.stdout
    loaded = await row_counts(url)
    assert loaded["branches"] == 1
    assert (loaded["devices"], loaded["stations"]) == (6, 3)

    second = await cli("seed-demo", cwd=tmp_path)
    assert second.returncode == 0, second.stderr
    assert "already holds data" in second.stdout
    assert "make reset" in second.stdout
    assert await row_counts(url) == loaded

    links = await cli("enrol-links", "--base-url", "http://kiosk.test:8000", cwd=tmp_path)
    assert links.returncode == 0, links.stderr
    apps = re.findall(r"http://kiosk\.test:8000/apps/(\w+)/#enrol=[\w-]{40,}", links.stdout)
    assert sorted(apps) == ["board", "kiosk", "kitchen", "kitchen", "kitchen", "terminal"]
    assert (await row_counts(url))["pairing_codes"] == 6


async def test_seed_demo_refuses_an_unmigrated_database(tmp_path: Path) -> None:
    """Loading the demo into a database without the schema fails in one line pointing at `migrate`."""
    finished = await cli("seed-demo", cwd=tmp_path)
    assert finished.returncode == 1
    assert "python -m server migrate" in finished.stderr
    assert_one_clean_line(finished.stderr)


async def test_create_admin_makes_a_user_who_can_log_in_once(tmp_path: Path) -> None:
    """The generated password is printed once and matches the stored hash; the same name again fails."""
    url = sqlite_url(tmp_path / "admin.db")
    env = cli_env(DATABASE_URL=url)
    assert (await cli("migrate", cwd=tmp_path, env=env)).returncode == 0

    created = await cli("create-admin", "--username", "Root", cwd=tmp_path, env=env)
    assert created.returncode == 0, created.stderr
    [password] = re.findall(r"Password \(shown only now, keep it\): (\S+)", created.stdout)
    user = await read_user(url, "root")
    assert user is not None
    assert user.role.name == "admin"
    assert user.branch_id is None
    assert user.is_active
    assert await verify_secret(user.password_hash, password)

    again = await cli("create-admin", "--username", "root", "--password", "another-password", cwd=tmp_path, env=env)
    assert again.returncode == 1
    assert "already exists" in again.stderr
    assert_one_clean_line(again.stderr)
    assert (await row_counts(url))["users"] == 1


async def test_create_admin_with_a_given_password_prints_no_password(tmp_path: Path) -> None:
    """A password given on the command line is stored (hashed) and not echoed."""
    url = sqlite_url(tmp_path / "admin.db")
    env = cli_env(DATABASE_URL=url)
    assert (await cli("migrate", cwd=tmp_path, env=env)).returncode == 0
    created = await cli("create-admin", "--username", "ops", "--password", "long enough secret", cwd=tmp_path, env=env)
    assert created.returncode == 0, created.stderr
    assert "long enough secret" not in created.stdout
    user = await read_user(url, "ops")
    assert user is not None
    assert await verify_secret(user.password_hash, "long enough secret")


async def test_a_too_short_password_is_a_usage_error(tmp_path: Path) -> None:
    """create-admin refuses a short password before touching anything."""
    finished = await cli("create-admin", "--username", "ops", "--password", "short", cwd=tmp_path)
    assert finished.returncode == 2
    assert "at least 8 characters" in finished.stderr
    assert not (tmp_path / "var").exists()


async def test_production_with_a_default_secret_refuses_to_serve(tmp_path: Path) -> None:
    """ENVIRONMENT=production with the shipped JWT secret exits 1 naming JWT_SECRET_KEY, without a traceback."""
    env = cli_env(ENVIRONMENT="production", SECRET_KEY=secrets.token_urlsafe(32))
    finished = await cli("serve", "--port", str(free_port()), cwd=tmp_path, env=env)
    assert finished.returncode == 1
    assert "JWT_SECRET_KEY is the default value" in finished.stderr
    assert_one_clean_line(finished.stderr)


async def test_an_unreachable_database_is_one_line_and_exit_1(tmp_path: Path) -> None:
    """A database that refuses connections is reported with its address, not with a traceback."""
    env = cli_env(DATABASE_URL=f"postgresql://postgres:hunter2@127.0.0.1:{free_port()}/kiosk")
    finished = await cli("migrate", cwd=tmp_path, env=env)
    assert finished.returncode == 1
    assert "cannot use the database (postgresql+asyncpg://postgres:***@127.0.0.1" in finished.stderr
    assert "hunter2" not in finished.stderr
    assert_one_clean_line(finished.stderr)


async def test_serve_answers_health_and_stops_on_sigterm(tmp_path: Path) -> None:
    """`serve` really serves: /health answers 200, and SIGTERM ends the process cleanly."""
    url = sqlite_url(tmp_path / "serve.db")
    await migrate.upgrade(url)
    port = free_port()
    process = await start("serve", "--port", str(port), cwd=tmp_path, env=cli_env(DATABASE_URL=url))
    try:
        deadline = asyncio.get_running_loop().time() + SERVE_START_TIMEOUT_S
        async with httpx.AsyncClient(timeout=2) as client:
            while True:
                assert process.returncode is None, "the server exited before answering"
                assert asyncio.get_running_loop().time() < deadline, "the server did not answer /health in time"
                try:
                    answered = (await client.get(f"http://127.0.0.1:{port}/health")).status_code == 200
                    # Another test's server may have taken the port first: the answer must come from this one.
                    if answered and listens_on(process.pid, port):
                        break
                except httpx.TransportError:
                    pass  # not listening yet
                await asyncio.sleep(0.2)
    finally:
        if process.returncode is None:
            process.terminate()
        finished = await finish(process, SERVE_STOP_TIMEOUT_S)
    # uvicorn shuts down gracefully, then re-raises the signal so that the parent sees why it ended.
    assert finished.returncode in (0, -signal.SIGTERM), finished.stderr
    assert "Finished server process" in finished.stdout
    assert f"http://127.0.0.1:{port}/api/v1/docs" in finished.stdout


@pytest.fixture
def clean_cwd(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """An empty working directory and no server setting in the environment, for in-process runs of `main`."""
    for name in Settings.model_fields:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.chdir(tmp_path)
    return tmp_path


def test_an_unsupported_database_url_is_refused_in_one_line(
    clean_cwd: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """A MySQL URL is named as unsupported instead of failing on a missing driver."""
    monkeypatch.setenv("DATABASE_URL", "mysql://root@127.0.0.1/kiosk")
    assert cli_main(["migrate"]) == 1
    error = capsys.readouterr().err
    assert "DATABASE_URL must name PostgreSQL or SQLite, not 'mysql'" in error
    assert_one_clean_line(error)


def test_migrating_to_an_unknown_revision_fails_in_one_line(
    clean_cwd: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """`migrate --revision` with a revision that does not exist says so and exits 1."""
    assert cli_main(["migrate", "--revision", "no-such-revision"]) == 1
    error = capsys.readouterr().err
    assert "no-such-revision" in error
    assert_one_clean_line(error)


def test_an_invalid_setting_is_named(
    clean_cwd: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """A setting of the wrong type stops the command with the variable's name."""
    monkeypatch.setenv("ACCESS_TOKEN_EXPIRE_MINUTES", "soon")
    assert cli_main(["migrate"]) == 1
    error = capsys.readouterr().err
    assert "invalid ACCESS_TOKEN_EXPIRE_MINUTES" in error
    assert_one_clean_line(error)


@pytest.mark.parametrize(
    ("url", "hint"),
    [
        (DEFAULT_SQLITE_URL, "`make reset`"),
        ("sqlite+aiosqlite:////srv/kiosk/other.db", "delete /srv/kiosk/other.db"),
        ("postgresql+asyncpg://u:secret@db.example:5432/kiosk", "`dropdb kiosk && createdb kiosk`"),
    ],
)
def test_the_reset_hint_fits_the_database(url: str, hint: str) -> None:
    """Starting over is explained for the local file, another SQLite file, and PostgreSQL."""
    assert hint in reset_hint(url)
    assert "secret" not in where(url)
