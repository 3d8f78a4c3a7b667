"""The browser device apps: `/apps/<name>/...` serves the static files of the top-level `apps/` folder.

Each app is a folder with an `index.html`, served at `/apps/<name>/`; `apps/shared/` holds what they share (the
protocol client, enrolment, the common look). No build step: the files go out as they are, with content types
browsers accept for ES modules. Folders are never listed, and nothing outside `apps/` is reachable.
"""

from __future__ import annotations

from pathlib import Path

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import FileResponse, RedirectResponse, Response
from starlette.routing import BaseRoute, Route

APPS_DIR = Path(__file__).resolve().parents[2] / "apps"

# Fixed here rather than taken from the platform's mimetypes table: a module script served as text/plain is refused.
CONTENT_TYPES = {
    ".html": "text/html; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".mjs": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".json": "application/json",
    ".svg": "image/svg+xml",
    ".png": "image/png",
    ".jpg": "image/jpeg",
    ".ico": "image/x-icon",
    ".woff2": "font/woff2",
    ".txt": "text/plain; charset=utf-8",
}


def resolve(root: Path, path: str) -> Path | None:
    """The file under `root` that `path` names (a folder stands for its index.html), or None.

    None for anything that is not a served file: unknown types, hidden names, and paths that leave `root`.
    """
    parts = [part for part in path.split("/") if part]
    if any(part.startswith(".") for part in parts):
        return None
    target = (root / Path(*parts)).resolve() if parts else root.resolve()
    if not target.is_relative_to(root.resolve()):
        return None
    if target.is_dir():
        target = target / "index.html"
    if not target.is_file() or target.suffix not in CONTENT_TYPES:
        return None
    return target


def routes(apps_dir: Path = APPS_DIR) -> list[BaseRoute]:
    """`GET /apps/<path>`: a file of `apps_dir`; `/apps/<name>` moves to `/apps/<name>/` so relative links work."""

    async def app_file(request: Request) -> Response:
        path: str = request.path_params["path"]
        target = resolve(apps_dir, path)
        if target is None:
            raise HTTPException(404, "no such file")
        if target.name == "index.html" and path and not path.endswith("/") and not path.endswith("index.html"):
            return RedirectResponse(f"/apps/{path}/", status_code=308)
        # Apps change with the server; `no-cache` makes browsers revalidate (ETag) instead of keeping a stale copy.
        return FileResponse(target, media_type=CONTENT_TYPES[target.suffix], headers={"Cache-Control": "no-cache"})

    return [Route("/apps/{path:path}", app_file, methods=["GET", "HEAD"])]
