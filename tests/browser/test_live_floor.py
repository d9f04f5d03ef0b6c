"""The manager's live floor (/app/floor) in a real browser, fed by real calls through the speech model.

A manager of team East opens the floor while Rita (East) and Walt (West) are on calls: Rita's
call appears with her name, the caller and a running duration, Walt's never does; the manager
listens in to Rita's call and sees the customer's words and the organization's prompt arrive;
when the call ends it leaves the floor. A rep never gets a floor.
"""

from __future__ import annotations

import asyncio
import re

from playwright.async_api import expect

from media.frames import Party
from tests.browser.world import push_real_time, screenshot, sign_in, telephone_frames
from tests.media.speech_corpus import requires_corpus


@requires_corpus
async def test_a_manager_follows_a_live_call_of_their_team_from_the_floor(
    site, browser_context, tmp_path
):
    org = site.org
    page = await sign_in(browser_context, site, org.manager_email, "/app/floor")
    await expect(page.get_by_role("heading", name="Live floor")).to_be_visible()
    await expect(page.locator("main .status").first).to_have_text("0 calls in progress")
    await expect(page.get_by_role("link", name="Floor")).to_have_attribute("aria-current", "page")

    lead_id = await site.new_lead(org.rep)
    east_call = await site.new_call(org.rep, lead_id=lead_id)
    west_call = await site.new_call(org.other_rep)
    east = await site.open_call(east_call, org.rep, lead_id=lead_id)
    await site.open_call(west_call, org.other_rep)
    pushing = None
    try:
        # Rita's call joins the floor by itself, with the caller and a running duration.
        row = page.locator(f'.floor-call[data-call="{east_call}"]')
        await expect(row).to_contain_text("Rita Rep")
        await expect(row).to_contain_text("Dana Diaz (Globex)")
        await expect(row.locator(".duration")).to_have_text(re.compile(r"^\d+:\d\d$"))
        await expect(row.locator(".duration")).not_to_have_text("0:00")
        await expect(page.locator("main .status").first).to_have_text("1 call in progress")

        await row.get_by_role("button", name="Listen in: Rita Rep with Dana Diaz (Globex)").click()
        detail = page.locator(".floor-detail")
        await expect(
            detail.get_by_role("heading", name="Rita Rep · Dana Diaz (Globex)")
        ).to_be_visible()
        # Both parties speak: the rep greets, the customer names a competitor ("conference").
        pushing = asyncio.gather(
            push_real_time(east, telephone_frames(["dir-welcome"], Party.REP), speed=2.0),
            push_real_time(
                east,
                telephone_frames(["conf-full", "conf-locked"], Party.CUSTOMER, start_ms=2500),
                speed=2.0,
            ),
        )
        line = detail.locator(".transcript .line.customer").filter(has_text="conference").first
        await expect(line).to_be_visible()
        await expect(
            detail.locator(".prompts .prompt").filter(has_text="onference").first
        ).to_be_visible()
        # ...and the floor's row shows the call's last prompt, talk share and sentiment.
        await expect(row.locator(".last-prompt")).to_contain_text("onference")
        await expect(row.locator(".talk-text")).to_have_text(re.compile(r"^\d+ %$"))
        await expect(row.locator(".sentiments")).to_contain_text("Customer:")
        await pushing
        rep_line = detail.locator(".transcript .line.rep:not(.partial)").filter(has_text="irectory")
        await expect(rep_line.locator(".who")).to_contain_text("Rita Rep")
        await screenshot(page, "floor-1280", tmp_path)
        await page.set_viewport_size({"width": 360, "height": 800})
        # nothing wider than the side panel: no sideways scrolling
        assert await page.evaluate("document.documentElement.scrollWidth") <= 360
        await expect(
            row.get_by_role("button", name="Listen in: Rita Rep with Dana Diaz (Globex)")
        ).to_be_visible()
        await screenshot(page, "floor-360", tmp_path)

        # Walt's call (team West) never reached this manager's floor.
        assert await page.locator(f'.floor-call[data-call="{west_call}"]').count() == 0
        assert await page.locator(".floor-call").filter(has_text="Walt West").count() == 0
    finally:
        if pushing is not None:
            pushing.cancel()
        await site.close_call(east_call)
        await site.close_call(west_call)
    # The call leaves the floor when it ends; the open call says so and links to its review.
    await expect(page.locator(f'.floor-call[data-call="{east_call}"]')).to_have_count(0)
    await expect(page.locator("main .status").first).to_have_text("0 calls in progress")
    await expect(
        page.locator(".floor-detail").get_by_role("link", name="Review the call")
    ).to_have_attribute("href", f"/app/calls/{east_call}")


async def test_a_rep_gets_no_floor(site, browser_context):
    page = await sign_in(browser_context, site, site.org.rep_email, "/app/live")
    assert await page.get_by_role("link", name="Floor").count() == 0
    await page.goto(f"{site.url}/floor")
    await page.wait_for_url(f"{site.url}/app")
    await expect(page.get_by_role("heading", name="Live call")).to_be_visible()
