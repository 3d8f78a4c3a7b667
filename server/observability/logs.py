"""JSON log lines on stdout, one object a line, for every logger of the process.

    {"ts": "2026-11-26T12:00:00.123Z", "level": "INFO", "logger": "uvicorn.access", "message": "...", ...}

Fields given with `extra=` ride along at the top level; an exception comes as `exc_info`,
its formatted traceback. One handler on the root logger carries everything: uvicorn's
loggers and Python warnings (SQLAlchemy's among them) propagate to it.
"""

from __future__ import annotations

import json
import logging
import sys
from datetime import UTC, datetime
from typing import Any, TextIO

from server.settings import Settings

# Attributes every LogRecord has; anything else on a record came from `extra=`.
_RECORD_ATTRIBUTES = frozenset(logging.makeLogRecord({}).__dict__) | {"message", "asctime", "taskName"}
# uvicorn adds an ANSI-coloured copy of some messages for its own console formatter.
_DROPPED_EXTRAS = frozenset({"color_message"})
_UVICORN_LOGGERS = ("uvicorn", "uvicorn.error", "uvicorn.access")


class JsonFormatter(logging.Formatter):
    """Formats a record as one JSON object: ts, level, logger, message, extras, exc_info."""

    def format(self, record: logging.LogRecord) -> str:
        """The record as a single line of JSON."""
        entry: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        for key, value in record.__dict__.items():
            if key not in _RECORD_ATTRIBUTES and key not in _DROPPED_EXTRAS and key not in entry:
                entry[key] = value
        if record.exc_info:
            entry["exc_info"] = self.formatException(record.exc_info)
        if record.stack_info:
            entry["stack_info"] = self.formatStack(record.stack_info)
        # default=str: an extra that JSON cannot encode (a datetime, an enum, an id object) is still logged.
        return json.dumps(entry, default=str, ensure_ascii=False)


class JsonLinesHandler(logging.StreamHandler[TextIO]):
    """Writes JSON lines to whatever `sys.stdout` is at the time of each record."""

    def __init__(self) -> None:
        super().__init__(sys.stdout)
        self.setFormatter(JsonFormatter())

    def emit(self, record: logging.LogRecord) -> None:
        """Write one record; follows `sys.stdout` when something (a test runner, a supervisor) swaps it."""
        self.stream = sys.stdout
        super().emit(record)


def configure_logging(settings: Settings) -> None:
    """Send every log record to stdout as one JSON object a line; safe to call again."""
    root = logging.getLogger()
    root.setLevel(logging.DEBUG if settings.DEBUG else logging.INFO)
    if not any(isinstance(handler, JsonLinesHandler) for handler in root.handlers):
        root.addHandler(JsonLinesHandler())
    for name in _UVICORN_LOGGERS:
        # uvicorn's default config gives these loggers plain-text handlers of their own; route them through root.
        uvicorn_logger = logging.getLogger(name)
        uvicorn_logger.handlers.clear()
        uvicorn_logger.propagate = True
    # At DEBUG, aiosqlite would log every call it proxies. (SQLAlchemy sets its own loggers to WARNING on import.)
    logging.getLogger("aiosqlite").setLevel(logging.WARNING)
    logging.captureWarnings(True)


def uvicorn_log_config() -> dict[str, Any]:
    """A `log_config` for `uvicorn.run`: its loggers go through the same JSON handler on the root logger."""
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "handlers": {"json": {"()": f"{__name__}.JsonLinesHandler"}},
        "root": {"handlers": ["json"], "level": "INFO"},
        "loggers": {name: {"handlers": [], "level": "INFO", "propagate": True} for name in _UVICORN_LOGGERS},
    }
