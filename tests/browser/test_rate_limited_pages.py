"""An integration spending the organisation's API budget never locks people out of their pages,
and a page whose own budget is spent waits politely (Retry-After) with a notice, then loads."""

from __future__ import annotations

import uuid

import aiohttp
import pytest
from playwright.async_api import expect

from crm_core.auth.tokens import create_api_token
from tests.browser.world import PASSWORD, sign_in
from voice_server.app_keys import RUNTIME

ORG_PER_MIN = 3          # the organisation's (integrations') budget, set on the organisation
INTERACTIVE_PER_MIN = 10  # each person's own budget: a refused request waits 6 s


@pytest.fixture
def site_env() -> dict[str, str]:
    return {"COACHLINE_RATE_LIMIT_INTERACTIVE_PER_MIN": str(INTERACTIVE_PER_MIN)}


async def _spend(http: aiohttp.ClientSession, url: str, token: str) -> list[int]:
    """Requests with ``token`` until one is refused; their statuses."""
    statuses: list[int] = []
    while not statuses or statuses[-1] != 429:
        async with http.get(f"{url}/api/v1/leads", headers={"Authorization": f"Bearer {token}"}) as resp:
            statuses.append(resp.status)
        assert len(statuses) <= 100, statuses
    return statuses


async def test_a_crm_sync_spending_the_org_budget_leaves_the_managers_leads_page_working(site, browser_context):
    pool = site.app[RUNTIME].pool
    await site.new_lead(site.org.rep)
    await pool.execute("UPDATE organizations SET settings = settings || $2 WHERE id = $1",
                       uuid.UUID(site.org.org_id), {"rate_limit_per_min": ORG_PER_MIN})
    async with pool.acquire() as conn:
        sync = await create_api_token(conn, org_id=site.org.org_id, user_id=site.org.manager,
                                      name="crm sync", scopes=["read"], expires_at=None)
    async with aiohttp.ClientSession() as http:
        assert await _spend(http, site.url, sync.token) == [200] * ORG_PER_MIN + [429]

    page = await sign_in(browser_context, site, site.org.manager_email, "/app/leads")
    row = page.get_by_role("row").filter(has_text="Globex")
    await expect(row.get_by_role("link", name="Dana Diaz")).to_be_visible()
    await expect(page.locator("main")).not_to_contain_text("Something went wrong")
    # ...while the integration is still refused: its budget and the manager's are apart.
    async with aiohttp.ClientSession() as http, http.get(
            f"{site.url}/api/v1/leads", headers={"Authorization": f"Bearer {sync.token}"}) as resp:
        assert resp.status == 429


async def test_a_page_whose_budget_is_spent_says_it_is_busy_and_retries_after_retry_after(
        site, browser_context, page_health):
    await site.new_lead(site.org.rep)
    page_health.allow(r"status of 429 .*/api/v1/leads")  # the refusal the page waits out
    async with aiohttp.ClientSession() as http:
        async with http.post(f"{site.url}/auth/token",
                             json={"email": site.org.manager_email, "password": PASSWORD}) as resp:
            token = (await resp.json())["token"]
        # Another tab of the same person spends their whole budget.
        assert await _spend(http, site.url, token) == [200] * INTERACTIVE_PER_MIN + [429]

    seen: list[int] = []
    browser_context.on("response", lambda r: seen.append(r.status) if "/api/v1/leads" in r.url else None)
    page = await sign_in(browser_context, site, site.org.manager_email, "/app/leads")
    busy = page.get_by_role("status").filter(has_text="busy, retrying")
    await expect(busy).to_be_visible()
    await expect(page.get_by_role("row").filter(has_text="Globex")).to_be_visible()
    await expect(busy).to_have_count(0)
    await expect(page.locator("main")).not_to_contain_text("Something went wrong")
    assert seen == [429, 200], seen  # one refusal, one retry once the server said it may
