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


def _imported_packages(source: str) -> set[str]:
    """Top-level package of every absolute import in `source`, nested ones included.

    Relative imports are skipped: they cannot leave the package they are written in.
    """
    names: set[str] = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            names.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module.split(".")[0])
    return names


def _forbidden_imports(folder: str, forbidden: set[str]) -> dict[str, set[str]]:
    files = sorted((REPO / folder).rglob("*.py"))
    assert files, f"no module found under {folder}/"
    found = {}
    for path in files:
        bad = _imported_packages(path.read_text(encoding="utf-8")) & forbidden
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


def test_the_import_scan_sees_nested_and_dotted_imports() -> None:
    """Imports inside TYPE_CHECKING blocks and functions count, by their top-level package; relative ones do not."""
    source = (
        "from typing import TYPE_CHECKING\n"
        "import server.app as app\n"
        "from . import base\n"
        "if TYPE_CHECKING:\n"
        "    from channels.hub import Hub\n"
        "def load():\n"
        "    import persistence.tables\n"
    )
    assert _imported_packages(source) == {"typing", "server", "channels", "persistence"}
