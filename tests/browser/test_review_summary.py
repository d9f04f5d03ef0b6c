"""The review screen's post-call summary: action items and next steps as lists, never "[object …]"."""

from __future__ import annotations

from playwright.async_api import expect

from crm_core.calls.summaries import store_call_summary
from tests.browser.world import sign_in
from voice_server.app_keys import RUNTIME

# The summary as the live path hands it to the CRM (coaching's CallSummary, as JSON).
SUMMARY = {
    "text": "Dana asked for a proposal; the room is locked on Fridays.",
    "key_points": ["Budget approved for Q3"],
    "action_items": [{"owner": "rep", "text": "Email the security questionnaire", "at_ms": 4200,
                      "due": None}],
    "next_steps": [{"owner": "both", "text": "Send the proposal by Friday", "at_ms": 1500, "due": "friday"},
                   {"owner": "both", "text": "Book a demo with their IT lead", "at_ms": 9100, "due": None}],
    "objections": [], "competitors": [], "duration_ms": 12_000,
}


async def test_review_shows_the_next_steps_as_a_list(site, browser_context, page_health):
    call_id = await site.new_call(site.org.rep)
    async with site.app[RUNTIME].pool.acquire() as conn:
        assert await store_call_summary(conn, site.org.org_id, call_id, SUMMARY) is not None
    page_health.allow(r"status of 404 .*/api/v1/calls/[\w-]+/recording\?")  # no audio was recorded
    page = await sign_in(browser_context, site, site.org.manager_email, f"/app/calls/{call_id}")

    summary = page.locator("section.panel").filter(has=page.get_by_role("heading", name="Summary"))
    await expect(summary.get_by_role("heading", name="Next steps")).to_be_visible()
    steps = summary.locator("ul.next-steps > li")
    await expect(steps).to_have_count(2)
    await expect(steps.first).to_contain_text("Send the proposal by Friday")
    await expect(steps.nth(1)).to_contain_text("Book a demo with their IT lead")
    # each step seeks to its moment in the call
    await expect(steps.first.get_by_role("button", name="Play from 0:01")).to_be_visible()
    await expect(summary.locator("ul.actions > li")).to_have_text("Email the security questionnaire 0:04")
    await expect(summary).not_to_contain_text("[object")
