"""JSON log lines on stdout. (to be written)"""

from __future__ import annotations

from server.settings import Settings


def configure_logging(settings: Settings) -> None:
    """Send every log record to stdout as one JSON object a line."""
