"""The reference booking page (examples/booking-page/) in a real browser: Debian's chromium,
headless, driven by Playwright (no browser download), against `booking-api serve` with
DEMO_PAGE=true. Screenshots of the final pages go to build/test-artifacts/."""

from __future__ import annotations

import asyncio
import shutil
from collections.abc import AsyncIterator, Iterator
from datetime import date, timedelta

import pytest
from playwright.async_api import Browser, Page, Playwright, Route, async_playwright, expect
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncEngine

from booking.store.models import Appointment
from tests import builders
from tests.builders import World
from tests.conftest import ROOT
from tests.serving import Server, serve

CHROMIUM = shutil.which("chromium")
CHROMIUM_FLAGS = [
    "--no-sandbox",  # root in CI
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
ARTIFACTS = ROOT / "build" / "test-artifacts"
DAY = date.today() + timedelta(days=3)  # the server runs on the real clock
TEN = 600  # 10:00, vacant in the default world (08-12, a 10-minute grid, 30-minute type)
PHONE = "+1 202 555 0143"
# A machine shared with other work can be slow to paint: wait up to 10 s for what must show.
expect.set_options(timeout=10_000)


@pytest.fixture
async def world(engine: AsyncEngine) -> World:
    """The default world, its service asking for a phone number."""
    async with engine.begin() as conn:
        return await builders.world(conn, service_options={"requires_phone": True})


@pytest.fixture(scope="module")
def server(database_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """One server for the module (it caches no configuration: each test's world is seen)."""
    with serve(database_url, tmp_path_factory.mktemp("page"), DEMO_PAGE="true") as server:
        yield server


@pytest.fixture
async def playwright() -> AsyncIterator[Playwright]:
    async with async_playwright() as playwright:
        yield playwright


async def launch(playwright: Playwright) -> Browser:
    if CHROMIUM is None:
        pytest.fail("Debian's chromium is not installed: apt-get install chromium (.ci/run does)")
    # Headless, and a fresh temporary profile for each browser (Playwright's default).
    return await playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_FLAGS)


@pytest.fixture
async def browser(playwright: Playwright) -> AsyncIterator[Browser]:
    browser = await launch(playwright)
    yield browser
    await browser.close()


async def open_page(browser: Browser, server: Server, world: World) -> Page:
    page = await browser.new_page(viewport={"width": 720, "height": 900})
    await page.goto(f"{server.url}/demo/?applicationId={world.application_id}&date={DAY}")
    await expect(page.locator("#service option")).to_have_count(1)
    await expect(page.locator("#service-type option")).to_have_text(["30-minute visit (30 min)"])
    return page


async def show_times(page: Page) -> None:
    await page.click("#show-times")
    await expect(page.locator(f'#times button[data-start="{TEN}"]')).to_be_visible()


async def screenshot(page: Page, name: str) -> None:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    await page.screenshot(path=ARTIFACTS / f"{name}.png", full_page=True)


async def booked(engine: AsyncEngine, world: World) -> int:
    async with engine.connect() as conn:
        query = select(func.count()).where(Appointment.service_id == world.service_id)
        return int((await conn.execute(query)).scalar_one())


async def test_a_customer_holds_a_time_corrects_a_bad_phone_and_gets_the_ticket(
    server: Server, browser: Browser, world: World, engine: AsyncEngine
) -> None:
    page = await open_page(browser, server, world)
    await show_times(page)
    await page.click(f'#times button[data-start="{TEN}"]')
    await expect(page.locator("#held")).to_contain_text("10:00 is held for you until")
    await expect(page.locator("#phone-optional")).to_be_hidden()  # the service requires it

    await page.fill("#phone", "not a phone")
    await page.click("#book")
    phone_error = page.locator('[data-error-for="contactPhoneNumber"]')
    await expect(phone_error).to_contain_text("phone number")
    await expect(page.locator("#ticket")).to_be_hidden()

    await page.fill("#phone", PHONE)
    await page.click("#book")
    await expect(page.locator("#ticket")).to_be_visible()
    await expect(page.locator("#ticket-number")).to_have_text("A1")
    await expect(page.locator("#ticket-when")).to_have_text(f"30-minute visit, {DAY} 10:00")
    await screenshot(page, "booking-page-ticket")
    assert await booked(engine, world) == 1


async def test_two_browsers_race_for_one_time_one_gets_the_ticket_the_other_the_nearest(
    server: Server, playwright: Playwright, world: World, engine: AsyncEngine
) -> None:
    browsers = [await launch(playwright), await launch(playwright)]
    try:
        pages = [await open_page(b, server, world) for b in browsers]
        await asyncio.gather(*(show_times(page) for page in pages))
        await asyncio.gather(*(p.click(f'#times button[data-start="{TEN}"]') for p in pages))
        # One of them holds it, the other is offered the nearest vacancies.
        for page in pages:
            settled = page.locator("#step-details:visible, #times button.nearest")
            await expect(settled.first).to_be_visible()
            if await page.locator("#step-details").is_visible():
                await page.fill("#phone", PHONE)
                await page.click("#book")
        outcomes = []
        for page in pages:
            done = page.locator("#ticket:visible, #times button.nearest")
            await expect(done.first).to_be_visible()
            outcomes.append("ticket" if await page.is_visible("#ticket") else "nearest")
        assert sorted(outcomes) == ["nearest", "ticket"]
        winner, loser = pages if outcomes[0] == "ticket" else pages[::-1]
        await expect(winner.locator("#ticket-when")).to_have_text(f"30-minute visit, {DAY} 10:00")
        await expect(loser.locator("#notice")).to_have_text(
            "That time was just taken. The nearest free times:"
        )
        # 10:00-10:30 is taken (capacity 1): the three nearest starts clear of it.
        nearest = await loser.locator("#times button.nearest").all_inner_texts()
        assert sorted(nearest) == ["09:20", "09:30", "10:30"]
        await screenshot(loser, "booking-page-taken")
        await screenshot(winner, "booking-page-race-winner")
        assert await booked(engine, world) == 1

        await loser.click('#times button.nearest >> text="10:30"')  # the offer can be taken
        await expect(loser.locator("#held")).to_contain_text("10:30 is held for you until")
    finally:
        for browser in browsers:
            await browser.close()


async def test_without_holds_the_page_books_directly(
    server: Server, browser: Browser, world: World, engine: AsyncEngine
) -> None:
    page = await open_page(browser, server, world)

    async def no_hold_route(route: Route) -> None:  # a server that has no slot holds
        await route.fulfill(
            status=404,
            content_type="application/problem+json",
            body='{"status":404,"code":"route_not_found","title":"Not Found","detail":"Not Found"}',
        )

    await page.route("**/reservations", no_hold_route)
    await show_times(page)
    await page.click(f'#times button[data-start="{TEN}"]')
    await expect(page.locator("#held")).to_have_text("10:00 is free (not held: book quickly).")
    await page.fill("#phone", PHONE)
    await page.click("#book")
    await expect(page.locator("#ticket-number")).to_have_text("A1")
    assert await booked(engine, world) == 1
