"""The OpenAPI document, Swagger UI and ReDoc. (to be written)"""

from __future__ import annotations

from starlette.routing import BaseRoute

from server.api.routing import ApiRouter
from server.settings import Settings


def routes(settings: Settings, routers: list[ApiRouter]) -> list[BaseRoute]:
    """`openapi.json`, `docs` and `redoc` under the API prefix."""
    return []
