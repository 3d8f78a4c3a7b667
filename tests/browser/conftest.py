"""The browser apps in a real Chromium against a live server over the demo data, at 08:00 Berlin time.

Fixtures:
- `demo`: the demo loaded into the test's database (cheap hashes); `live`: a server over it on a free port, whose
  business clock reads 08:00 in Berlin (`now[0]` in `clock` moves it);
- `browser`: one headless Chromium per module (Debian's /usr/bin/chromium; Playwright never downloads one);
- `page`: a fresh page (its own storage) whose test FAILS on any console error or uncaught page error; `open_page`
  opens more such pages, each in its own context;
- `screenshot(page, name)`: saves <name>.png in var/screenshots/ (ignored by git), or in $SCREENSHOTS_DIR:
  `make screenshots` refreshes the README's, docs/screenshots/.

The apps are backend-independent JavaScript and the server's behaviour on each backend has its own tests, so the
browser tests run on SQLite, the runtime of `make run`; only the whole restaurant (test_restaurant.py) runs on
PostgreSQL with Redis as well.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import datetime
from pathlib import Path

import pytest
from playwright.async_api import Browser, BrowserContext, ConsoleMessage, Error, Page, async_playwright

from persistence.database import Database
from server.app import build_services
from server.demo import DemoResult, seed_demo
from server.settings import Settings
from tests.flows.test_demo_walk_through import EIGHT_AM
from tests.live import Live, live_server
from tests.test_demo import cheap_hash

CHROMIUM = os.environ.get("CHROMIUM", "/usr/bin/chromium")
# A test run leaves the committed pictures alone: only `make screenshots` writes docs/screenshots/.
SCREENSHOTS = Path(os.environ.get("SCREENSHOTS_DIR") or Path(__file__).resolve().parents[2] / "var" / "screenshots")
# Every wait in a browser test is bounded by this (milliseconds): the apps answer within well under a second.
WAIT_MS = 10_000


@pytest.fixture(params=["sqlite"])
def backend(request: pytest.FixtureRequest) -> str:
    """SQLite only (see the module's docstring)."""
    return str(request.param)


@pytest.fixture(scope="module")
async def browser() -> AsyncIterator[Browser]:
    """One headless Chromium for the module's tests."""
    async with async_playwright() as playwright:
        launched = await playwright.chromium.launch(
            executable_path=CHROMIUM, headless=True, args=["--no-sandbox", "--disable-dev-shm-usage"]
        )
        yield launched
        await launched.close()


@pytest.fixture
async def demo(db: Database) -> DemoResult:
    """The demo branch, loaded with cheap hashes."""
    result = await seed_demo(db, hasher=cheap_hash)
    assert result is not None
    return result


@pytest.fixture
def clock() -> list[datetime]:
    """The live server's business time: `clock[0]`, 08:00 in Berlin unless a test moves it."""
    return [EIGHT_AM]


@pytest.fixture
async def live(settings: Settings, db: Database, demo: DemoResult, clock: list[datetime]) -> AsyncIterator[Live]:
    """A server over the demo on a free port."""
    services = build_services(settings, db=db, prefix=f"test:{uuid.uuid4()}", clock=lambda: clock[0])
    try:
        async with live_server(services) as running:
            yield running
    finally:
        await services.stop()
        await services.backend.close()


class PageProblems:
    """Console errors and uncaught errors a page reported."""

    def __init__(self) -> None:
        self.found: list[str] = []

    def console(self, message: ConsoleMessage) -> None:
        if message.type == "error":
            self.found.append(f"console error: {message.text} ({message.location.get('url', '')})")

    def page_error(self, error: Error) -> None:
        self.found.append(f"page error: {error}")


PageOpener = Callable[..., Awaitable[Page]]


@pytest.fixture
async def open_page(browser: Browser, live: Live) -> AsyncIterator[PageOpener]:
    """Opens pages on the live server, each in a fresh browser context (its own localStorage), German first.

    `await open_page(width=..., height=...)`. The test FAILS if any of them reported a console or page error.
    """
    contexts: list[BrowserContext] = []
    problems = PageProblems()

    async def opener(width: int = 1024, height: int = 700) -> Page:
        context = await browser.new_context(
            base_url=live.http, locale="de-DE", viewport={"width": width, "height": height}
        )
        context.set_default_timeout(WAIT_MS)
        contexts.append(context)
        opened = await context.new_page()
        opened.on("console", problems.console)
        opened.on("pageerror", problems.page_error)
        return opened

    yield opener
    for context in contexts:
        await context.close()
    if problems.found:
        pytest.fail("the pages reported errors:\n" + "\n".join(problems.found))


@pytest.fixture
async def page(open_page: PageOpener) -> Page:
    """A page of a fresh browser context on the live server, German first, 1024×700."""
    return await open_page()


async def screenshot(page: Page, name: str) -> Path:
    """Save the page as <name>.png in the screenshots folder and return the path."""
    path = SCREENSHOTS / f"{name}.png"
    await page.screenshot(path=str(path))
    return path
