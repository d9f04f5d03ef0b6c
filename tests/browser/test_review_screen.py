"""The manager's review screen: recording over Range, click-to-seek, the audit trail; team walls."""

from __future__ import annotations

import asyncio
import re
import uuid
from datetime import date, timedelta

from playwright.async_api import expect

from media.frames import Party
from tests.browser.world import push_real_time, screenshot, sign_in, telephone_frames
from tests.media.speech_corpus import requires_corpus
from voice_server.app_keys import RUNTIME

pytestmark = requires_corpus


async def _finished_call(site, published: list | None = None) -> str:
    """A call of the team-A rep: real speech through the node, recorded, transcribed, summarised.

    ``published`` collects the coaching.prompt events the call put on the bus.
    """
    call_id = await site.new_call(site.org.rep)
    watcher = None
    if published is not None:
        sub = await site.app[RUNTIME].bus.subscribe("coaching.prompt")

        async def watch():
            async for delivery in sub:
                if delivery.event.payload.get("call_id") == call_id:
                    published.append(delivery.event)

        watcher = asyncio.create_task(watch())
    session = await site.open_call(call_id, site.org.rep)
    await push_real_time(session, telephone_frames(["conf-full"], Party.REP), speed=8.0)
    await push_real_time(session, telephone_frames(["conf-locked"], Party.CUSTOMER, start_ms=3000),
                         speed=8.0)
    await asyncio.sleep(1.5)  # let the decoder finish the last utterance before hanging up
    await site.close_call(call_id)
    pool = site.app[RUNTIME].pool
    for _ in range(150):  # the CRM writer and the recorder finish asynchronously
        segments = await pool.fetchval("SELECT count(*) FROM transcript_segments WHERE call_id = $1",
                                       uuid.UUID(call_id))
        recording = await pool.fetchval("SELECT status FROM recordings WHERE call_id = $1",
                                        uuid.UUID(call_id))
        summarized = await pool.fetchval(
            "SELECT count(*) FROM activities WHERE call_id = $1 AND kind = 'call.completed'",
            uuid.UUID(call_id))
        prompts = await pool.fetchval("SELECT count(*) FROM call_prompts WHERE call_id = $1",
                                      uuid.UUID(call_id))
        if (segments >= 2 and recording not in (None, "recording") and summarized
                and (published is None or (published and prompts >= 1))):
            if watcher is not None:
                await sub.close()
                watcher.cancel()
            return call_id
        await asyncio.sleep(0.2)
    raise AssertionError(f"call not persisted: {segments} segments, recording {recording}, "
                         f"summary {summarized}")


async def test_manager_plays_the_recording_seeks_by_transcript_and_sees_the_listen(site, browser_context,
                                                                                  tmp_path):
    published = []
    call_id = await _finished_call(site, published)
    # every prompt the rep saw is stored once, even when its event comes twice.
    await site.app[RUNTIME].bus.publish(published[0])
    stored = await _stored_prompts(site, call_id, len({e.payload["prompt"]["id"] for e in published}))
    assert sorted(r["at_ms"] for r in stored) == sorted(e.payload["prompt"]["at_ms"] for e in published)
    page = await sign_in(browser_context, site, site.org.manager_email, "/app/calls")
    ranged: list[int] = []
    page.on("response", lambda r: ranged.append(r.status) if "/recording?" in r.url else None)

    # The calls list filters by rep and day (the API's rep_id / created_after / created_before).
    filters = page.get_by_role("search", name="Filter calls")
    await expect(page.get_by_role("row").filter(has_text="Rita Rep")).to_have_count(1)
    await filters.get_by_label("Rep").select_option(label="Walt West")
    await filters.get_by_role("button", name="Apply").click()
    await expect(page.get_by_role("link", name="Review")).to_have_count(0)
    await filters.get_by_label("Rep").select_option(label="Rita Rep")
    await filters.get_by_label("From").fill((date.today() - timedelta(days=1)).isoformat())
    await filters.get_by_role("button", name="Apply").click()
    await expect(page).to_have_url(re.compile(r"rep_id=.*from="))
    await expect(page.get_by_role("link", name="Review")).to_have_count(1)
    await page.get_by_role("link", name="Review").first.click()
    await page.wait_for_url(f"**/app/calls/{call_id}")
    lines = page.locator(".transcript .line")
    await expect(lines.filter(has_text="locked")).to_be_visible()
    await page.wait_for_function("() => document.querySelector('audio').readyState >= 1")

    target = lines.filter(has_text="locked").first
    start_s = int(await target.get_attribute("data-start")) / 1000
    await target.get_by_role("button").click()
    await page.wait_for_function(
        "(t) => Math.abs(document.querySelector('audio').currentTime - t) < 1.0", arg=start_s)
    assert 206 in ranged, ranged  # the <audio> element read the WAV through HTTP Range
    # Playback moves the highlight: the line being heard is the current one.
    await expect(lines.filter(has_text="locked")).to_have_class(re.compile(r"\bcurrent\b"))

    # The summary the CRM stored when the call ended, and its coaching moments on the timeline:
    # the competitor mention, and the objection at its time in the call (click to seek there).
    await expect(page.locator("main")).to_contain_text("Competitors mentioned: conference")
    moment = page.locator(".timeline li").filter(has_text="Objection")
    await expect(moment).to_contain_text("locked")
    await moment.get_by_role("button").click()
    at_s = await target.get_attribute("data-start")
    await page.wait_for_function(
        "(t) => Math.abs(document.querySelector('audio').currentTime - t) < 1.5", arg=int(at_s) / 1000)

    # The prompts the rep saw: a mark per prompt along the recording (click to seek to its time),
    # an entry on the timeline with what the rep said next, and the line that set it off marked.
    marks = page.get_by_role("group", name="Coaching prompts on the recording").get_by_role("button")
    await expect(marks).to_have_count(len(stored))
    competitor = next(r for r in stored if r["kind"] == "keyword")
    mark = page.locator(f".prompt-marks .mark[data-at='{competitor['at_ms']}']")
    await expect(mark).to_have_attribute("aria-label", re.compile(re.escape(competitor["title"])))
    await page.evaluate("() => document.querySelector('audio').pause()")
    await mark.click()
    await page.wait_for_function(
        "(t) => Math.abs(document.querySelector('audio').currentTime - t) < 1.0", arg=competitor["at_ms"] / 1000)
    entry = page.locator(".timeline li.prompt-moment").filter(has_text=competitor["title"])
    await expect(entry).to_contain_text(re.compile(r"Rep next said|did not speak"))
    assert competitor["segment_key"] and competitor["party"] == "customer", dict(competitor)
    await expect(page.locator(f".transcript .line[data-segment-key='{competitor['segment_key']}']")
                 ).to_have_class(re.compile(r"\bprompted\b"))

    trail = page.locator("table").filter(has=page.get_by_role("columnheader", name="User"))
    await expect(trail.locator("tr").filter(has_text="Maya Manager").filter(has_text="ok").first).to_be_visible()
    await screenshot(page, "manager-call-review", tmp_path)


async def _stored_prompts(site, call_id: str, expected: int):
    """The call's stored prompts once ``expected`` are there and a redelivery has had time to land."""
    pool = site.app[RUNTIME].pool
    rows = []
    for _ in range(100):
        rows = await pool.fetch("SELECT * FROM call_prompts WHERE call_id = $1 ORDER BY at_ms",
                                uuid.UUID(call_id))
        if len(rows) >= expected:
            break
        await asyncio.sleep(0.2)
    await asyncio.sleep(1.0)  # the duplicate delivered above is consumed by now
    rows = await pool.fetch("SELECT * FROM call_prompts WHERE call_id = $1 ORDER BY at_ms", uuid.UUID(call_id))
    assert len(rows) == expected, [dict(r) for r in rows]
    return rows


async def test_a_rep_cannot_open_another_teams_call(site, browser_context, page_health):
    # the refusals this test provokes and asserts
    page_health.allow(r"status of 404 .*/api/v1/calls/")
    page_health.allow(r"WebSocket connection to .*/ws/calls/.* failed")
    call_id = await site.new_call(site.org.rep)  # team A's call
    page = await sign_in(browser_context, site, site.org.other_rep_email, f"/app/calls/{call_id}")
    await expect(page.get_by_role("heading", name="Call not found")).to_be_visible()
    statuses = await page.evaluate("""async (callId) => {
        const csrf = decodeURIComponent(document.cookie.match(/coachline_csrf=([^;]+)/)[1]);
        const t = await (await fetch('/auth/token', {method: 'POST', headers: {'X-CSRF-Token': csrf}})).json();
        const api = await fetch(`/api/v1/calls/${callId}`, {headers: {Authorization: 'Bearer ' + t.token}});
        const ws = await new Promise((resolve) => {
            const s = new WebSocket(`ws://${location.host}/ws/calls/${callId}?access_token=${t.token}`);
            s.onopen = () => resolve('open');
            s.onerror = () => resolve('refused');
        });
        return {api: api.status, ws};
    }""", call_id)
    assert statuses == {"api": 404, "ws": "refused"}
