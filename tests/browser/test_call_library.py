"""The call library: a manager searches what was said, jumps to that moment, reads the timeline
bar and comments on a moment; the rep sees the comment. Narrow (360 px) and wide screens."""

from __future__ import annotations

import asyncio
import re
import uuid

import numpy as np
from playwright.async_api import expect

from crm_core.calls.records import SegmentRow, add_final_segments
from media.frames import AudioFrame, Party
from tests.browser.world import UI_TIMEOUT_MS, screenshot, sign_in
from voice_server.app_keys import RUNTIME

LINES = [  # (party, start_ms, text)
    ("rep", 500, "Thanks for taking the call, how is the quarter going?"),
    ("customer", 4000, "Busy. Honestly the renewal discount you offered is what we need to talk about."),
    ("rep", 9000, "Understood, I can walk you through the renewal options."),
    ("customer", 13000, "Also <b>Chorus</b> quoted us less & faster."),
]


async def _recorded_call(site, rep_id: str, lines, seconds: float = 18.0) -> str:
    """A call of ``rep_id`` with a (silent) recording of ``seconds`` and the final segments ``lines``."""
    call_id = await site.new_call(rep_id)
    session = await site.open_call(call_id, rep_id)
    for party in (Party.REP, Party.CUSTOMER):
        for i in range(int(seconds * 50)):
            session.push_audio(AudioFrame(np.zeros(160, np.int16), 8000, party, i * 20))
    await site.close_call(call_id)
    pool = site.app[RUNTIME].pool
    async with pool.acquire() as conn:
        await add_final_segments(conn, site.org.org_id, call_id, [
            SegmentRow(f"lib-{i}", party, start, start + 3000, text, [])
            for i, (party, start, text) in enumerate(lines)])
        await conn.execute(
            "INSERT INTO call_prompts (org_id, call_id, prompt_key, rule_id, kind, severity, title, body, at_ms,"
            " party, segment_key) VALUES ($1, $2, 'p-lib', 'competitor', 'keyword', 'warning',"
            " 'Competitor: Chorus', 'Ask what they liked', 13500, 'customer', 'lib-3')",
            uuid.UUID(site.org.org_id), uuid.UUID(call_id))
    for _ in range(300):  # the recorder finishes asynchronously
        status = await pool.fetchval("SELECT status FROM recordings WHERE call_id = $1", uuid.UUID(call_id))
        if status not in (None, "recording"):
            return call_id
        await asyncio.sleep(0.1)
    raise AssertionError(f"the recording did not finish: {status}")


async def test_search_jumps_to_the_moment_and_comments_reach_the_rep(site, chromium, browser_context,
                                                                     page_health, tmp_path):
    call_id = await _recorded_call(site, site.org.rep, LINES)
    # the same words on another team's call: the team-A manager must never find it
    hidden = await _recorded_call(site, site.org.other_rep, [("customer", 1000, "the renewal discount again")],
                                  seconds=4)
    once = await _recorded_call(site, site.org.rep, [("rep", 2000, "Your renewal is due next month.")], seconds=4)
    page = await sign_in(browser_context, site, site.org.manager_email, "/app/calls")
    filters = page.get_by_role("search", name="Filter calls")
    await filters.get_by_label("Search transcripts").fill("renewal")
    await filters.get_by_role("button", name="Apply").click()
    await expect(page).to_have_url(re.compile(r"q=renewal"))
    # two mentions outrank one; each names its lines in call order, the words marked
    await expect(page.locator("tr.snippets-row")).to_have_count(2)
    order = await page.locator("tr.snippets-row").evaluate_all("(rows) => rows.map((r) => r.dataset.callId)")
    assert order == [call_id, once], order
    snippets = page.locator(f"tr.snippets-row[data-call-id='{call_id}'] a.hit")
    await expect(snippets).to_have_count(2)
    await expect(snippets.first.locator("mark")).to_have_text("renewal")
    await expect(snippets.first).to_contain_text("0:04")
    await expect(snippets.nth(1)).to_contain_text("0:09")
    await expect(page.locator(f"[data-call-id='{hidden}']")).to_have_count(0)
    await screenshot(page, "call-library-1280", tmp_path)

    await filters.get_by_label("Search transcripts").fill("renewal discount")
    await filters.get_by_role("button", name="Apply").click()
    snippets = page.locator(f"tr.snippets-row[data-call-id='{call_id}'] a.hit")
    await expect(snippets).to_have_count(1)  # the one line with both words
    first = snippets.first
    await expect(first.locator("mark")).to_have_text(["renewal", "discount"])

    # what was said is text, never markup: a search for the competitor shows its line as written
    await filters.get_by_label("Search transcripts").fill("chorus")
    await filters.get_by_role("button", name="Apply").click()
    hit = page.locator(f"tr.snippets-row[data-call-id='{call_id}'] a.hit")
    await expect(hit).to_have_count(1)
    await expect(hit.locator("mark")).to_have_text("Chorus")
    assert await page.locator("tr.snippets-row b").count() == 0
    await expect(hit).to_contain_text("& faster")

    # back to the phrase; click its hit: the review opens at that moment
    await filters.get_by_label("Search transcripts").fill("renewal discount")
    await filters.get_by_role("button", name="Apply").click()
    await first.click()
    await page.wait_for_url(re.compile(rf"/app/calls/{call_id}\?t=4000&seg=lib-1"))
    line = page.locator(".transcript .line[data-segment-key='lib-1']")
    await expect(line).to_have_class(re.compile(r"\bjumped\b"))
    await expect(line).to_be_in_viewport()
    await page.wait_for_function("() => document.querySelector('audio').readyState >= 1")
    await page.wait_for_function("() => Math.abs(document.querySelector('audio').currentTime - 4) < 0.5")

    # the timeline bar: a lane per speaker with their turns, and the prompt/keyword marks; click seeks
    bar = page.get_by_role("region", name="Who spoke when")
    await expect(bar.get_by_role("group", name="Rep spoke").get_by_role("button")).to_have_count(2)
    await expect(bar.get_by_role("group", name="Customer spoke").get_by_role("button")).to_have_count(2)
    mark = bar.locator(".tl-mark.keyword[data-at='13500']")
    await expect(mark).to_have_attribute("aria-label", re.compile("Competitor: Chorus"))
    await bar.get_by_role("button", name="Rep from 0:09 to 0:12").click()
    await page.wait_for_function("() => Math.abs(document.querySelector('audio').currentTime - 9) < 0.5")
    await page.evaluate("() => document.querySelector('audio').pause()")

    # the manager comments on this moment; it shows on the bar too
    comments = page.get_by_role("list", name="Comments")
    await page.get_by_role("textbox", name="Comment").fill("Name the renewal price before they ask <again>")
    await page.get_by_role("button", name="Add comment").click()
    await expect(comments).to_contain_text("Name the renewal price before they ask <again>")
    await expect(comments).to_contain_text("0:09")
    await expect(bar.locator(".tl-mark.comment")).to_have_count(1)
    await page.screenshot(path=str(tmp_path / "review-timeline.png"), full_page=True)

    # narrow screen: the library with a search, nothing cut off
    await page.set_viewport_size({"width": 360, "height": 800})
    await page.goto(f"{site.url}/app/calls?q=renewal")
    await expect(page.locator(f"tr.snippets-row[data-call-id='{call_id}'] a.hit")).to_have_count(2)
    width = await page.evaluate("() => document.documentElement.scrollWidth")
    assert width <= 360, width
    await screenshot(page, "call-library-360", tmp_path)

    # the rep on the call sees the comment (and may not delete it); a rep may not play recordings
    page_health.allow(r"status of 403 .*/api/v1/calls/[^/]+/recording")
    rep_context = await chromium.new_context(viewport={"width": 1280, "height": 800})
    rep_context.set_default_timeout(UI_TIMEOUT_MS)
    await page_health.watch(rep_context)
    try:
        rep_page = await sign_in(rep_context, site, site.org.rep_email, f"/app/calls/{call_id}")
        rep_comments = rep_page.get_by_role("list", name="Comments")
        await expect(rep_comments).to_contain_text("Name the renewal price before they ask <again>")
        await expect(rep_comments).to_contain_text("Maya Manager")
        await expect(rep_comments.get_by_role("button", name="Delete")).to_have_count(0)
    finally:
        await rep_context.close()
