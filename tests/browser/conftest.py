"""The browser apps in a real Chromium against a live server over the demo data, at 08:00 Berlin time.

Fixtures:
- `demo`: the demo loaded into the test's database (cheap hashes); `live`: a server over it on a free port, whose
  business clock reads 08:00 in Berlin (`now[0]` in `clock` moves it);
- `browser`: one headless Chromium per module (Debian's /usr/bin/chromium; Playwright never downloads one);
- `page`: a fresh page (its own storage) whose test FAILS on any console error or uncaught page error;
- `screenshot(page, name)`: saves docs/screenshots/<name>.png, for the README.

The apps are backend-independent JavaScript, but the server under them is not: like every other test they run on
SQLite and on PostgreSQL with Redis.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator
from datetime import datetime
from pathlib import Path

import pytest
from playwright.async_api import Browser, ConsoleMessage, Error, Page, async_playwright

from persistence.database import Database
from server.app import build_services
from server.demo import DemoResult, seed_demo
from server.settings import Settings
from tests.flows.test_demo_walk_through import EIGHT_AM
from tests.live import Live, live_server
from tests.test_demo import cheap_hash

CHROMIUM = os.environ.get("CHROMIUM", "/usr/bin/chromium")
SCREENSHOTS = Path(__file__).resolve().parents[2] / "docs" / "screenshots"
# Every wait in a browser test is bounded by this (milliseconds): the apps answer within well under a second.
WAIT_MS = 10_000


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


@pytest.fixture
async def page(browser: Browser, live: Live) -> AsyncIterator[Page]:
    """A page of a fresh browser context (its own localStorage) on the live server, German first."""
    context = await browser.new_context(base_url=live.http, locale="de-DE", viewport={"width": 1024, "height": 700})
    context.set_default_timeout(WAIT_MS)
    opened = await context.new_page()
    problems = PageProblems()
    opened.on("console", problems.console)
    opened.on("pageerror", problems.page_error)
    yield opened
    await context.close()
    if problems.found:
        pytest.fail("the page reported errors:\n" + "\n".join(problems.found))


async def screenshot(page: Page, name: str) -> Path:
    """Save the page as docs/screenshots/<name>.png and return the path."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    path = SCREENSHOTS / f"{name}.png"
    await page.screenshot(path=str(path))
    return path
