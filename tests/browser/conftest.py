"""A real Coachline node on a TCP port, a real organization, and headless Chromium.

The server is the production app (create_app) with the session's PostgreSQL
and Redis, the real speech model and recording on; the browser is Debian's
chromium driven by Playwright (never a downloaded browser). Server and browser
share the test's event loop, so tests can push audio into a call while the page
watches it.
"""

from __future__ import annotations

import json
import os

import pytest
import pytest_asyncio
from aiohttp.test_utils import TestServer
from playwright.async_api import expect

from storage.database import connect
from storage.keys import new_master_key
from tests.browser.page_health import PageHealth
from tests.browser.world import (
    CHROMIUM,
    OUR_NUMBER,
    PUBLIC_URL,
    TWILIO_SID,
    TWILIO_TOKEN,
    UI_TIMEOUT_MS,
    Site,
    make_org,
)
from voice_server.app import create_app
from voice_server.runtime import Runtime
from voice_server.settings import load_settings

os.environ.setdefault("PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD", "1")
# expect() has its own 5 s default, separate from the context's timeout.
expect.set_options(timeout=UI_TIMEOUT_MS)


@pytest.fixture
def site_env() -> dict[str, str]:
    """Extra settings for the node under test (a test module may override this fixture)."""
    return {}


@pytest_asyncio.fixture(loop_scope="session")
async def site(migrated_database, redis_url, tmp_path_factory, site_env):
    conn = await connect(migrated_database)
    try:
        org = await make_org(conn)
    finally:
        await conn.close()
    settings = load_settings({
        "DATABASE_URL": migrated_database, "REDIS_URL": redis_url,
        "COACHLINE_DATA_DIR": str(tmp_path_factory.mktemp("browser-data")),
        "COACHLINE_RECORDING_KEY": f"k1:{new_master_key()}",
        "COACHLINE_RECORDING_CHUNK_S": "0.5",
        "COACHLINE_LOG_FORMAT": "text",
        # Twilio calls to our number ring the team-A rep (voice_server/simulator/carrier plays them).
        "COACHLINE_PUBLIC_URL": PUBLIC_URL,
        "COACHLINE_TWILIO_ACCOUNT_SID": TWILIO_SID, "COACHLINE_TWILIO_AUTH_TOKEN": TWILIO_TOKEN,
        "COACHLINE_TWILIO_CALLER_ID": OUR_NUMBER,
        "COACHLINE_CARRIER_NUMBERS": json.dumps({OUR_NUMBER: org.rep}),
        **site_env,
    })
    runtime = await Runtime(settings).start()
    app = create_app(settings, runtime)
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()
    yield Site(str(server.make_url("")).rstrip("/"), app, org)
    await server.close()
    await runtime.close()


@pytest_asyncio.fixture(loop_scope="session", scope="session")
async def chromium():
    from playwright.async_api import async_playwright

    if not CHROMIUM.exists():
        pytest.skip("Debian's chromium is not installed (scripts/apt-test.txt)")
    async with async_playwright() as pw:
        browser = await pw.chromium.launch(
            executable_path=str(CHROMIUM), headless=True,
            args=["--autoplay-policy=no-user-gesture-required", "--mute-audio"])
        yield browser
        await browser.close()


@pytest.fixture
def page_health() -> PageHealth:
    """Console errors and CSP violations of the test's pages (checked when the test ends)."""
    return PageHealth()


@pytest_asyncio.fixture(loop_scope="session")
async def browser_context(chromium, page_health):
    context = await chromium.new_context(viewport={"width": 1280, "height": 800})
    context.set_default_timeout(UI_TIMEOUT_MS)
    await page_health.watch(context)
    yield context
    await context.close()
    page_health.assert_clean()
