"""The packages are this repository's own, and imports point one way: server -> channels -> persistence."""

from __future__ import annotations

import ast
from pathlib import Path
from types import ModuleType

import pytest

import channels
import migrations
import persistence
import server
from persistence.migrate import MIGRATIONS_DIR

REPO = Path(__file__).resolve().parent.parent


def _imported_modules(source: str) -> set[str]:
    """Dotted name of every absolute import in `source`, nested ones included.

    `from a.b import c` counts as `a.b` and `a.b.c`, since `c` may be a module. Relative
    imports are skipped: they cannot leave the package they are written in.
    """
    names: set[str] = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module)
            names.update(f"{node.module}.{alias.name}" for alias in node.names)
    return names


def _reaches(name: str, prefix: str) -> bool:
    """True when module `name` is `prefix` or lies inside it."""
    return name == prefix or name.startswith(prefix + ".")


def _forbidden_imports(folder: str, forbidden: set[str]) -> dict[str, set[str]]:
    """Per module under `folder`, the imports that reach a forbidden package or module (by dotted prefix)."""
    files = sorted((REPO / folder).rglob("*.py"))
    assert files, f"no module found under {folder}/"
    found = {}
    for path in files:
        imported = _imported_modules(path.read_text(encoding="utf-8"))
        bad = {prefix for prefix in forbidden if any(_reaches(name, prefix) for name in imported)}
        if bad:
            found[str(path.relative_to(REPO))] = bad
    return found


@pytest.mark.parametrize("package", [channels, server, persistence, migrations], ids=lambda package: package.__name__)
def test_packages_are_imported_from_this_repository(package: ModuleType) -> None:
    """Each package resolves to this checkout, not to an installed namesake such as Django Channels."""
    assert package.__file__ is not None
    assert Path(package.__file__).resolve().is_relative_to(REPO)


def test_alembic_runs_this_repositorys_migrations() -> None:
    """The migrations folder Alembic is pointed at is this checkout's."""
    assert MIGRATIONS_DIR.resolve() == REPO / "migrations"
    assert any((MIGRATIONS_DIR / "versions").glob("*.py"))


def test_persistence_imports_neither_server_nor_channels() -> None:
    """The storage layer knows nothing of the layers above it."""
    assert _forbidden_imports("persistence", {"server", "channels"}) == {}


def test_channels_does_not_import_server() -> None:
    """The realtime layer knows nothing of orders, payments or the app."""
    assert _forbidden_imports("channels", {"server"}) == {}


def test_migration_scripts_do_not_import_the_application() -> None:
    """A migration spells its types in plain SQLAlchemy, so a later model change cannot rewrite history."""
    assert _forbidden_imports("migrations/versions", {"server", "channels", "persistence"}) == {}


def test_server_commands_and_realtime_do_not_import_rest() -> None:
    """The WebSocket side shares validation with REST through server/validation.py, never through server/api."""
    assert _forbidden_imports("server/commands", {"server.api"}) == {}
    assert _forbidden_imports("server/realtime", {"server.api"}) == {}


def test_migrations_import_nothing_of_the_server() -> None:
    """Alembic's environment and the migrations run without the application: the URL comes from persistence/."""
    assert _forbidden_imports("migrations", {"server"}) == {}


def test_the_import_scan_sees_nested_and_dotted_imports() -> None:
    """Imports inside TYPE_CHECKING blocks and functions count, by their dotted name; relative ones do not."""
    source = (
        "from typing import TYPE_CHECKING\n"
        "import server.app as app\n"
        "from . import base\n"
        "if TYPE_CHECKING:\n"
        "    from channels.hub import Hub\n"
        "def load():\n"
        "    import persistence.tables\n"
    )
    assert _imported_modules(source) == {
        "typing",
        "typing.TYPE_CHECKING",
        "server.app",
        "channels.hub",
        "channels.hub.Hub",
        "persistence.tables",
    }


def test_a_forbidden_module_is_matched_by_dotted_prefix() -> None:
    """`server.api` catches its submodules and `from server import api`, not a sibling that shares its letters."""
    assert _reaches("server.api", "server.api")
    assert _reaches("server.api.fields", "server.api")
    assert not _reaches("server.apiary", "server.api")
    assert not _reaches("server", "server.api")
    assert "server.api" in _imported_modules("from server import api\n")
