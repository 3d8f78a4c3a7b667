"""The command line: `python -m server` and the `kiosk-server` script.

    serve         run the server (uvicorn, the app factory)
    migrate       bring the database schema up to date (Alembic)
    seed-demo     load a demo branch, menu, devices and admin into an empty database
    create-admin  add an admin user
    enrol-links   print a one-step enrolment link for every device (the browser apps)

Settings come from the environment and `.env` (server/settings.py). An expected failure
(bad settings, database out of reach, schema not migrated, a taken username) prints one
line on stderr and exits 1; argparse exits 2 on a usage error.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from collections.abc import Callable, Coroutine, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

from alembic.util.exc import CommandError as AlembicCommandError
from pydantic import TypeAdapter, ValidationError
from sqlalchemy import select
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError, DBAPIError

from persistence import migrate
from persistence.base import utcnow
from persistence.database import Database
from persistence.database_url import DEFAULT_SQLITE_URL
from persistence.tables import User
from server import __version__
from server.api.users import Password, Username
from server.app import create_app
from server.auth.enrolment import LINK_TTL, enrolment_links
from server.auth.passwords import generate_secret, hash_secret
from server.auth.permissions import ADMIN_ROLE
from server.auth.roles import ensure_default_roles
from server.demo import DemoResult, describe, seed_demo
from server.realtime.serving import GracefulServer, tune_garbage_collector, uvicorn_config
from server.settings import InsecureSettingsError, Settings

EXIT_FAILURE = 1
USERNAME_RULE: TypeAdapter[str] = TypeAdapter(Username)
PASSWORD_RULE: TypeAdapter[str] = TypeAdapter(Password)

T = TypeVar("T")


class CommandError(Exception):
    """An expected failure, told to the user in one line; the command exits 1."""


def load_settings() -> Settings:
    """The settings from the environment and `.env`; a bad value is a `CommandError` naming it."""
    try:
        return Settings()
    except ValidationError as exc:
        raise CommandError(_settings_problem(exc)) from exc


def _settings_problem(exc: ValidationError) -> str:
    problems = []
    for error in exc.errors():
        cause = error.get("ctx", {}).get("error")
        if isinstance(cause, InsecureSettingsError):
            problems.append(str(cause))
        else:
            name = ".".join(str(part) for part in error["loc"]) or "settings"
            problems.append(f"invalid {name}: {error['msg']}")
    return "; ".join(problems)


def where(url: str) -> str:
    """The database of `url` as a person reads it: the SQLite file's path, or the URL without its password."""
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        return f"SQLite file {Path(parsed.database or '').resolve()}"
    return parsed.render_as_string(hide_password=True)


def check_database_url(url: str) -> None:
    """Refuse, in one line, a URL that names neither PostgreSQL nor SQLite."""
    try:
        backend = make_url(url).get_backend_name()
    except ArgumentError as exc:
        raise CommandError(f"DATABASE_URL is not a database URL: {exc}") from exc
    if backend not in ("postgresql", "sqlite"):
        raise CommandError(f"DATABASE_URL must name PostgreSQL or SQLite, not {backend!r}")


@contextmanager
def database_errors(url: str) -> Iterator[None]:
    """Turn a database that cannot be reached or used into a one-line `CommandError`."""
    try:
        yield
    except (OSError, DBAPIError) as exc:
        reason = exc.orig if isinstance(exc, DBAPIError) and exc.orig is not None else exc
        first_line = (str(reason).strip().splitlines() or [type(reason).__name__])[0]
        raise CommandError(f"cannot use the database ({where(url)}): {first_line}") from exc


def run_async(url: str, work: Callable[[], Coroutine[Any, Any, T]]) -> T:
    """Run `work()` on the database of `url`, reporting failures to reach or use it as a `CommandError`."""
    check_database_url(url)
    with database_errors(url):
        return asyncio.run(work())


async def require_migrated(url: str) -> None:
    """Refuse to go on unless the database schema is at the newest migration."""
    current, head = await migrate.current_revision(url), migrate.head_revision()
    if current != head:
        state = "has no schema yet" if current is None else f"is at revision {current}, the code needs {head}"
        raise CommandError(f"the database ({where(url)}) {state}: run `python -m server migrate` first")


def reset_hint(url: str) -> str:
    """How to start over with an empty database of `url`."""
    parsed = make_url(url)
    if url == DEFAULT_SQLITE_URL:
        return "To start over: `make reset` (deletes the local SQLite file), then `make run`."
    if parsed.get_backend_name() == "sqlite":
        return f"To start over: delete {Path(parsed.database or '').resolve()} (and its -wal and -shm files)."
    name = parsed.database or "<database>"
    return (
        f"To start over: drop and recreate the database, e.g. `dropdb {name} && createdb {name}`, "
        "then `python -m server migrate`."
    )


def base_url(host: str, port: int) -> str:
    """The http URL of a server listening on `host` and `port`."""
    shown = f"[{host}]" if ":" in host else host
    return f"http://{shown}:{port}"


def serve(args: argparse.Namespace, settings: Settings) -> int:
    """Run the server with uvicorn until it is stopped."""
    url = base_url(args.host, args.port)
    print(f"{settings.PROJECT_NAME} on {url} (API docs: {url}{settings.API_V1_STR}/docs)", flush=True)
    app = create_app(settings)
    config = uvicorn_config(app, settings, host=args.host, port=args.port)
    tune_garbage_collector()
    GracefulServer(config, app.state.services).run()
    return 0


def migrate_database(args: argparse.Namespace, settings: Settings) -> int:
    """Upgrade the schema to `--revision` and say from where to where."""
    url = settings.database_url

    async def upgrade() -> tuple[str | None, str | None]:
        before = await migrate.current_revision(url)
        await migrate.upgrade(url, args.revision)
        return before, await migrate.current_revision(url)

    try:
        before, after = run_async(url, upgrade)
    except AlembicCommandError as exc:
        raise CommandError(f"cannot migrate to {args.revision!r}: {exc}") from exc
    if before == after:
        print(f"Database ({where(url)}) already at revision {after}; nothing to do.")
    else:
        print(f"Database ({where(url)}) migrated from {before or 'an empty schema'} to revision {after}.")
    return 0


def load_demo(args: argparse.Namespace, settings: Settings) -> int:
    """Load the demo data unless the database already holds a branch."""
    url = settings.database_url

    async def seed() -> DemoResult | None:
        await require_migrated(url)
        db = Database.from_url(url)
        try:
            return await seed_demo(db)
        finally:
            await db.dispose()

    result = run_async(url, seed)
    if result is None:
        print(f"The database ({where(url)}) already holds data, so the demo was not loaded again.")
        print("The admin password and device secrets were printed when the demo was first loaded.")
        print(reset_hint(url))
    else:
        print(describe(result, args.base_url, settings.API_V1_STR))
    return 0


def create_admin(args: argparse.Namespace, settings: Settings) -> int:
    """Add an admin user (all permissions, no branch)."""
    url = settings.database_url
    password = args.password or generate_secret()

    async def create() -> None:
        await require_migrated(url)
        password_hash = await hash_secret(password)
        db = Database.from_url(url)
        try:
            async with db.session() as session:
                if await session.scalar(select(User.id).where(User.username == args.username)) is not None:
                    raise CommandError(f"a user named {args.username!r} already exists; nothing was changed")
                roles = await ensure_default_roles(session)
                session.add(User(username=args.username, password_hash=password_hash, role_id=roles[ADMIN_ROLE].id))
        finally:
            await db.dispose()

    run_async(url, create)
    print(f"Created admin {args.username!r} in the database ({where(url)}).")
    if args.password is None:
        print(f"Password (shown only now, keep it): {password}")
    return 0


def print_enrol_links(args: argparse.Namespace, settings: Settings) -> int:
    """Print a one-step enrolment link per active device; opening one enrols that browser as the device."""
    url = settings.database_url

    async def issue() -> list[str]:
        await require_migrated(url)
        db = Database.from_url(url)
        try:
            async with db.session() as session:
                links = await enrolment_links(session, args.base_url, utcnow())
                return [f"    {link.kind:<16} {link.name:<20} {link.url}" for link in links]
        finally:
            await db.dispose()

    lines = run_async(url, issue)
    hours = int(LINK_TTL.total_seconds() // 3600)
    print(f"Open a link in a browser to make it that device (each works once, for {hours} hours; it gives the device")
    print("a new secret, so the one printed before stops working). New screens enrol by pairing code instead.")
    print("\n".join(lines) if lines else "    (no active devices)")
    print(f"    staff            ops page             {args.base_url.rstrip('/')}/apps/ops/")
    return 0


def _port(text: str) -> int:
    if not text.isdigit() or not 1 <= int(text) <= 65535:
        raise argparse.ArgumentTypeError(f"not a TCP port: {text!r}")
    return int(text)


def _api_rule(rule: TypeAdapter[str]) -> Callable[[str], str]:
    """An argparse type that applies the users API's own rule, so both accept the same values."""

    def check(text: str) -> str:
        try:
            return rule.validate_python(text)
        except ValidationError as exc:
            raise argparse.ArgumentTypeError(exc.errors()[0]["msg"]) from exc

    return check


class _MovedToSetting(argparse.Action):
    """An option that became a setting: using it is a usage error naming the variable to set."""

    def __call__(
        self, parser: argparse.ArgumentParser, namespace: argparse.Namespace, values: Any, option: str | None = None
    ) -> None:
        """Exit 2, saying which setting replaces the option."""
        parser.error(f"{option} is no longer an option: set FORWARDED_ALLOW_IPS in the environment or .env")


Handler = Callable[[argparse.Namespace, Settings], int]


def build_parser() -> argparse.ArgumentParser:
    """The parser of every subcommand and its options."""
    parser = argparse.ArgumentParser(
        prog="kiosk-server",
        description="Realtime order orchestration for self-service restaurants. "
        "Settings come from environment variables and ./.env (see .env.example).",
        epilog="A first run: migrate, then seed-demo, then serve (this is what `make run` does).",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    commands = parser.add_subparsers(title="commands", dest="command", required=True, metavar="COMMAND")

    default_port = os.environ.get("PORT", "8000")
    serve_parser = commands.add_parser(
        "serve",
        help="run the server",
        description="Run the server (uvicorn). It stops on SIGINT or SIGTERM, giving open connections "
        "SHUTDOWN_GRACE_S seconds to finish. The proxies whose X-Forwarded-For and X-Forwarded-Proto "
        "are believed are the FORWARDED_ALLOW_IPS setting (default: none).",
    )
    serve_parser.add_argument("--host", default="127.0.0.1", help="address to listen on (default: %(default)s)")
    serve_parser.add_argument(
        "--port", type=_port, default=default_port, help="port to listen on (default: $PORT if set, else 8000)"
    )
    # The old flag is refused with a pointer rather than as unknown: the setting is now the one way.
    serve_parser.add_argument("--forwarded-allow-ips", action=_MovedToSetting, help=argparse.SUPPRESS)
    serve_parser.set_defaults(handler=serve)

    migrate_parser = commands.add_parser(
        "migrate",
        help="bring the database schema up to date",
        description="Apply the Alembic migrations in migrations/ to the database of DATABASE_URL "
        "(default: the SQLite file ./var/kiosk.db). Safe to run again: it only applies what is missing.",
    )
    migrate_parser.add_argument("--revision", default="head", help="revision to upgrade to (default: %(default)s)")
    migrate_parser.set_defaults(handler=migrate_database)

    seed_parser = commands.add_parser(
        "seed-demo",
        help="load demo data into an empty database",
        description="Load one branch with a menu, stock, one device of each kind and an admin, and print "
        "the admin password and the device secrets (once). Needs a migrated database. Changes nothing "
        "when the database already holds a branch.",
    )
    seed_parser.add_argument(
        "--base-url",
        default=f"http://127.0.0.1:{default_port}",
        help="where the server will be reached, for the printed URLs (default: %(default)s)",
    )
    seed_parser.set_defaults(handler=load_demo)

    links_parser = commands.add_parser(
        "enrol-links",
        help="print a one-step enrolment link for every device",
        description="Print, for every active device, a link that enrols a browser as that device in one step "
        "(/apps/<app>/#enrol=<token>). Each link works once, for 12 hours, and gives the device a new secret. "
        "Needs a migrated database.",
    )
    links_parser.add_argument(
        "--base-url",
        default=f"http://127.0.0.1:{default_port}",
        help="where the server will be reached, for the printed links (default: %(default)s)",
    )
    links_parser.set_defaults(handler=print_enrol_links)

    admin_parser = commands.add_parser(
        "create-admin",
        help="add an admin user",
        description="Add a user with the admin role (every permission, every branch), creating the default "
        "roles if missing. Needs a migrated database.",
    )
    admin_parser.add_argument(
        "--username", type=_api_rule(USERNAME_RULE), required=True, help="3-64 of a-z 0-9 . _ - (stored lower-cased)"
    )
    admin_parser.add_argument(
        "--password",
        type=_api_rule(PASSWORD_RULE),
        help="8-256 characters; without it a strong one is generated and printed once",
    )
    admin_parser.set_defaults(handler=create_admin)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run one command; the exit status is returned (argparse itself exits 2 on bad usage)."""
    args = build_parser().parse_args(argv)
    handler: Handler = args.handler
    try:
        return handler(args, load_settings())
    except CommandError as exc:
        print(f"kiosk-server {args.command}: {exc}", file=sys.stderr)
        return EXIT_FAILURE
