"""Leads and deals in the browser: why a lead is an A, a deal's prediction."""

from __future__ import annotations

import re
import uuid

from playwright.async_api import expect

from tests.browser.world import sign_in
from voice_server.app_keys import RUNTIME


async def test_rep_sees_why_a_lead_is_an_a_and_predicts_a_deal(site, browser_context):
    lead_id = await site.new_lead(site.org.rep)
    deal_id = str(await site.app[RUNTIME].pool.fetchval(
        "INSERT INTO deals (org_id, lead_id, owner_id, name, company, value, stage) "
        "VALUES ($1, $2, $3, 'Globex rollout', 'Globex', 48000, 'proposal') RETURNING id",
        uuid.UUID(site.org.org_id), uuid.UUID(lead_id), uuid.UUID(site.org.rep)))
    page = await sign_in(browser_context, site, site.org.rep_email, "/app/leads")

    row = page.get_by_role("row").filter(has_text="Globex")
    await expect(row).to_contain_text("87")
    await expect(row.locator(".badge")).to_have_text("A")
    await row.get_by_role("link", name="Dana Diaz").click()
    await expect(page.get_by_role("heading", name="Why this grade")).to_be_visible()
    await expect(page.locator("main li").first).to_have_text("Director title at a 500-person company")

    await page.get_by_role("navigation", name="Main").get_by_role("link", name="Deals").click()
    await page.get_by_role("link", name="Globex rollout").click()
    await expect(page).to_have_url(f"{site.url}/app/deals/{deal_id}")
    await page.get_by_role("button", name="Predict").click()
    await expect(page.locator("main")).to_contain_text("Win probability")
    await expect(page.locator("main strong")).to_have_text(re.compile(r"^\d+ %$"))
