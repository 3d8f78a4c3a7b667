"""`alembic upgrade --sql` (a SQL script instead of a migration) is refused in one clear line, not a traceback."""

from __future__ import annotations

import pytest
from alembic import command

from persistence.migrate import alembic_config


def test_a_sql_script_is_refused_with_the_command_that_migrates() -> None:
    config = alembic_config()
    config.set_main_option("sqlalchemy.url", "postgresql+asyncpg://postgres@127.0.0.1:5432/unused")
    with pytest.raises(SystemExit) as refused:
        command.upgrade(config, "head", sql=True)
    assert "python -m server migrate" in str(refused.value.code)
