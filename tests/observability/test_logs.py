"""JSON log lines: the fields of a line, one handler however often logging is configured, uvicorn's loggers."""

from __future__ import annotations

import json
import logging
import logging.config
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import uvicorn.config

from server.observability.logs import JsonFormatter, JsonLinesHandler, configure_logging
from server.settings import Settings

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def root_level() -> Iterator[None]:
    """Puts the root logger's level back after a test that changes it."""
    level = logging.getLogger().level
    yield
    logging.getLogger().setLevel(level)


def _lines(out: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in out.splitlines() if line.strip()]


def test_a_record_is_one_json_line_with_its_fields() -> None:
    """ts (RFC 3339, UTC), level, logger, message, `extra=` fields and the traceback, on a single line."""
    try:
        raise ValueError("boom")
    except ValueError:
        record = logging.getLogger("server.test").makeRecord(
            "server.test",
            logging.ERROR,
            __file__,
            1,
            "order %s failed",
            (42,),
            sys.exc_info(),
            extra={"order_id": 42, "at": datetime(2026, 11, 26, tzinfo=UTC)},
        )
    line = JsonFormatter().format(record)
    assert "\n" not in line
    entry = json.loads(line)
    assert entry["level"] == "ERROR"
    assert entry["logger"] == "server.test"
    assert entry["message"] == "order 42 failed"
    assert entry["order_id"] == 42
    assert entry["at"] == "2026-11-26 00:00:00+00:00"
    assert entry["exc_info"].startswith("Traceback") and entry["exc_info"].endswith("ValueError: boom")
    assert entry["ts"].endswith("Z")
    assert datetime.fromisoformat(entry["ts"]).utcoffset() is not None
    assert abs(datetime.fromisoformat(entry["ts"]).timestamp() - record.created) < 0.001
    assert not {"args", "msg", "levelno", "pathname", "exc_text"} & set(entry)


def test_an_extra_cannot_overwrite_the_standard_fields() -> None:
    """A caller's `extra={"level": ...}` does not change what the line says its level is."""
    record = logging.makeLogRecord({"name": "x", "levelno": 20, "levelname": "INFO", "msg": "hi", "level": "fake"})
    assert json.loads(JsonFormatter().format(record))["level"] == "INFO"


def test_configuring_again_never_adds_a_second_handler(root_level: None) -> None:
    """Every app configures logging; the root logger keeps one JSON handler, at DEBUG or INFO as DEBUG says."""
    configure_logging(Settings(_env_file=None, DEBUG=True))
    configure_logging(Settings(_env_file=None, DEBUG=True))
    root = logging.getLogger()
    assert sum(isinstance(handler, JsonLinesHandler) for handler in root.handlers) == 1
    assert root.level == logging.DEBUG
    configure_logging(Settings(_env_file=None))
    assert root.level == logging.INFO
    assert sum(isinstance(handler, JsonLinesHandler) for handler in root.handlers) == 1


def test_uvicorn_and_app_records_reach_stdout_but_driver_chatter_does_not(
    root_level: None, capsys: pytest.CaptureFixture[str]
) -> None:
    """After uvicorn's default logging setup, its records and the app's come out as JSON; drivers only warn."""
    logging.config.dictConfig(uvicorn.config.LOGGING_CONFIG)  # plain-text handlers on uvicorn's loggers
    configure_logging(Settings(_env_file=None, DEBUG=True))
    capsys.readouterr()
    logging.getLogger("uvicorn.error").info("Started server process")
    logging.getLogger("uvicorn.access").info('%s - "%s %s HTTP/%s" %d', "127.0.0.1:5000", "GET", "/health", "1.1", 200)
    logging.getLogger("server.orders").debug("order placed", extra={"order_id": 7})
    logging.getLogger("aiosqlite").debug("executing a query")
    logging.getLogger("sqlalchemy.engine.Engine").info("SELECT 1")
    logging.getLogger("sqlalchemy.pool").warning("connection invalidated")
    captured = capsys.readouterr()
    assert captured.err == ""
    entries = _lines(captured.out)
    assert [(entry["logger"], entry["message"]) for entry in entries] == [
        ("uvicorn.error", "Started server process"),
        ("uvicorn.access", '127.0.0.1:5000 - "GET /health HTTP/1.1" 200'),
        ("server.orders", "order placed"),
        ("sqlalchemy.pool", "connection invalidated"),
    ]
    assert entries[2]["order_id"] == 7


def test_uvicorn_log_config_and_configure_logging_print_each_record_once() -> None:
    """Under uvicorn's own logging setup, each record of uvicorn, the app and Python warnings is one JSON line."""
    script = textwrap.dedent(
        """
        import logging, warnings
        import uvicorn
        from sqlalchemy.exc import SAWarning
        from server.observability.logs import configure_logging, uvicorn_log_config
        from server.settings import Settings

        async def app(scope, receive, send):
            pass

        uvicorn.Config(app, log_config=uvicorn_log_config())  # applies the config, as uvicorn.run does
        logging.getLogger("uvicorn.error").info("Started", extra={"color_message": "\\x1b[32mStarted\\x1b[0m"})
        configure_logging(Settings(_env_file=None))
        logging.getLogger("uvicorn.access").info("GET /")
        warnings.warn("a relationship will copy a column", SAWarning)
        """
    )
    result = subprocess.run(
        [sys.executable, "-c", script], cwd=REPO, capture_output=True, text=True, timeout=60, check=False
    )
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""
    entries = _lines(result.stdout)
    assert [(entry["logger"], entry["level"]) for entry in entries] == [
        ("uvicorn.error", "INFO"),
        ("uvicorn.access", "INFO"),
        ("py.warnings", "WARNING"),
    ]
    assert "color_message" not in entries[0]
    assert "SAWarning: a relationship will copy a column" in entries[2]["message"]
