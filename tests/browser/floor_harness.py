"""Interim: a live demo server at 08:00 Berlin time and a Chromium page failing on console errors."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from playwright.async_api import async_playwright
from sqlalchemy import select

from persistence.database import Database
from persistence.enums import DeviceKind
from persistence.tables import Device
from server.app import build_services
from server.auth.enrolment import APP_OF_KIND, issue_link
from server.demo import DemoResult, seed_demo
from server.services import Services
from server.settings import Settings
from tests.live import live_server
from tests.test_demo import cheap_hash

EIGHT_AM = datetime(2026, 12, 7, 7, 0, tzinfo=UTC)


@asynccontextmanager
async def demo_live(settings: Settings, db: Database) -> AsyncIterator[Any]:
    demo = await seed_demo(db, hasher=cheap_hash)
    assert demo is not None
    services = build_services(settings, db=db, prefix=f"test:{uuid.uuid4()}", clock=lambda: EIGHT_AM)
    try:
        async with live_server(services) as live:
            yield demo, live
    finally:
        await services.stop()
        await services.backend.close()


@asynccontextmanager
async def browser_page() -> AsyncIterator[Any]:
    errors: list[str] = []
    async with async_playwright() as pw:
        browser = await pw.chromium.launch(executable_path="/usr/bin/chromium", headless=True)
        page = await browser.new_page(viewport={"width": 1280, "height": 800})
        page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
        page.on("pageerror", lambda e: errors.append(str(e)))
        try:
            yield page
        finally:
            await browser.close()
    assert not errors, errors


async def enrol_link(services: Services, demo: DemoResult, kind: DeviceKind, station: str | None = None) -> str:
    """The path of the one-step enrolment link of the demo's device of this kind (and station)."""
    wanted = next(d for d in demo.devices if d.kind == kind and d.station == station)
    async with services.db.session() as session:
        device = (await session.execute(select(Device).where(Device.id == wanted.id))).scalar_one()
        issued = await issue_link(session, device, datetime.now(UTC))
    return f"/apps/{APP_OF_KIND[kind]}/#enrol={issued.token}"


SCREENSHOTS = Path(__file__).resolve().parents[2] / "docs" / "screenshots"


async def screenshot(page: Any, name: str) -> None:
    """Save the page as docs/screenshots/<name>.png (for the README)."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    await page.screenshot(path=str(SCREENSHOTS / f"{name}.png"))
