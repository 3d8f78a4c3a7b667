"""The OpenAPI document, Swagger UI and ReDoc, all served from this server (no CDN).

{API_V1_STR}/openapi.json   the document, built on first request and kept for the app's life
{API_V1_STR}/docs           Swagger UI (log in with Authorize, then try the routes)
{API_V1_STR}/redoc          ReDoc
{API_V1_STR}/static/...     the pages' scripts and styles, vendored under server/api/static/
"""

from __future__ import annotations

import functools
import html
import json
from pathlib import Path

from starlette.requests import Request
from starlette.responses import HTMLResponse, Response
from starlette.routing import BaseRoute, Mount, Route
from starlette.staticfiles import StaticFiles

from server.api.openapi import openapi_document
from server.api.routing import ApiRouter
from server.settings import Settings

STATIC_DIR = Path(__file__).parent / "static"

_SWAGGER_PAGE = """<!doctype html>
<html lang="en">
<head>
  <meta charset="utf-8">
  <meta name="viewport" content="width=device-width, initial-scale=1">
  <title>{title} - API</title>
  <link rel="stylesheet" href="{static}/swagger-ui/swagger-ui.css">
</head>
<body>
  <div id="swagger-ui" data-openapi-url="{openapi_url}"></div>
  <script src="{static}/swagger-ui/swagger-ui-bundle.js"></script>
  <script src="{static}/swagger-init.js"></script>
</body>
</html>
"""

_REDOC_PAGE = """<!doctype html>
<html lang="en">
<head>
  <meta charset="utf-8">
  <meta name="viewport" content="width=device-width, initial-scale=1">
  <title>{title} - API reference</title>
</head>
<body>
  <redoc spec-url="{openapi_url}"></redoc>
  <script src="{static}/redoc/redoc.standalone.js"></script>
</body>
</html>
"""


def routes(settings: Settings, routers: list[ApiRouter]) -> list[BaseRoute]:
    """`openapi.json`, `docs` and `redoc` under the API prefix, and the static files they load."""
    prefix = settings.API_V1_STR
    openapi_url = f"{prefix}/openapi.json"
    page_values = {
        "title": html.escape(settings.PROJECT_NAME),
        "static": html.escape(f"{prefix}/static"),
        "openapi_url": html.escape(openapi_url),
    }
    swagger_page = _SWAGGER_PAGE.format(**page_values)
    redoc_page = _REDOC_PAGE.format(**page_values)

    @functools.cache
    def document() -> bytes:
        # Built on first request rather than with the app: many apps (tests) never serve it.
        return json.dumps(openapi_document(settings, routers), separators=(",", ":")).encode()

    async def openapi_json(request: Request) -> Response:
        return Response(document(), media_type="application/json")

    async def swagger_ui(request: Request) -> Response:
        return HTMLResponse(swagger_page)

    async def redoc(request: Request) -> Response:
        return HTMLResponse(redoc_page)

    return [
        Route(openapi_url, openapi_json, methods=["GET"]),
        Route(f"{prefix}/docs", swagger_ui, methods=["GET"]),
        Route(f"{prefix}/redoc", redoc, methods=["GET"]),
        Mount(f"{prefix}/static", app=StaticFiles(directory=STATIC_DIR), name="api_static"),
    ]
