"""`GET /`, `GET /health` and `GET /metrics`. (to be written)"""

from __future__ import annotations

from starlette.routing import BaseRoute

from server.settings import Settings


def routes(settings: Settings) -> list[BaseRoute]:
    """The routes outside the API prefix."""
    return []
