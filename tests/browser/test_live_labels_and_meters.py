"""The live screen's meters start empty, and a mixed-track line shows who the server says spoke it."""

from __future__ import annotations

from playwright.async_api import expect

from tests.browser.world import sign_in


async def _on_a_call(site, browser_context):
    page = await sign_in(browser_context, site, site.org.rep_email, "/app/live")
    await expect(page.locator(".status").first).to_have_text("Waiting for your next call…")
    call_id = await site.new_call(site.org.rep)
    session = await site.open_call(call_id, site.org.rep)
    await expect(page.locator(".call-info")).to_contain_text("inbound call")
    return page, call_id, session


def _fill_width(page, meter_label: str):
    return page.evaluate("""(label) => {
        const meter = [...document.querySelectorAll('.meter')].find((m) => m.textContent.includes(label));
        const fill = meter.querySelector('.bar > span');
        return fill.getBoundingClientRect().width / meter.querySelector('.bar').getBoundingClientRect().width;
    }""", meter_label)


async def test_idle_meters_are_empty_and_fill_as_the_call_goes(site, browser_context):
    page, call_id, session = await _on_a_call(site, browser_context)
    try:
        # Nothing said yet: both bars are empty (not full, as when the CSP dropped their style).
        assert await _fill_width(page, "Your talk share") == 0
        assert await _fill_width(page, "Longest monologue") == 0
        await session.publish("insight.metrics", {"talk_ratio": {"rep": 0.25, "customer": 0.75},
                                                  "longest_monologue_ms": {"rep": 30_000, "customer": 0}})
        await expect(page.locator(".meter").filter(has_text="Your talk share")).to_contain_text("25 %")
        share = await _fill_width(page, "Your talk share")
        mono = await _fill_width(page, "Longest monologue")
        assert abs(share - 0.25) < 0.02 and abs(mono - 0.25) < 0.02, (share, mono)
        await expect(page.get_by_role("meter").first).to_have_attribute("aria-valuenow", "25")
    finally:
        await site.close_call(call_id)


def _mixed(segment_id: str, speaker: str, text: str, start_ms: int = 1000) -> dict:
    """A segment of a mixed-channel (Vonage) call, as the live path publishes it."""
    return {"segment_id": segment_id, "party": "mixed", "speaker": speaker, "start_ms": start_ms,
            "end_ms": start_ms + 1500, "text": text, "revision": 0, "words": []}


async def test_a_mixed_track_line_follows_the_speaker_the_server_settles_on(site, browser_context):
    page, call_id, session = await _on_a_call(site, browser_context)
    try:
        # The first partial comes before speaker attribution has decided: "Speaker".
        await session.publish("transcript.partial", _mixed("m1", "mixed", "we are looking"))
        line = page.locator(".transcript .line").filter(has_text="we are looking")
        await expect(line.locator(".who")).to_contain_text("Speaker")
        await expect(line).to_have_class("line mixed partial")
        # A later partial names the customer; the final settles it.
        await session.publish("transcript.partial", _mixed("m1", "customer", "we are looking at"))
        await expect(line.locator(".who")).to_contain_text("Customer")
        await session.publish("transcript.partial", _mixed("m1", "mixed", "we are looking at other"))
        await expect(line).to_contain_text("we are looking at other")
        await expect(line.locator(".who")).to_contain_text("Customer")  # no label never erases one
        await session.publish("transcript.final", {**_mixed("m1", "customer", "We are looking at other vendors."),
                                                   "revision": 1})
        final = page.locator(".transcript .line").filter(has_text="other vendors")
        await expect(final).to_have_class("line customer")
        await expect(final.locator(".who")).to_have_text("Customer0:01")
        await expect(final).to_have_attribute("aria-label", "Customer: We are looking at other vendors.")

        # A line first guessed as the customer is moved to the rep when the final says so.
        await session.publish("transcript.partial", _mixed("m2", "customer", "let me check", 4000))
        line = page.locator(".transcript .line").filter(has_text="let me check")
        await expect(line.locator(".who")).to_contain_text("Customer")
        await session.publish("transcript.final", {**_mixed("m2", "rep", "Let me check that for you.", 4000),
                                                   "revision": 1})
        mine = page.locator(".transcript .line").filter(has_text="Let me check that")
        await expect(mine).to_have_class("line rep")
        await expect(mine.locator(".who")).to_have_text("You0:04")
        # A diarized voice without an enrolled print is "Speaker N".
        await session.publish("transcript.final", _mixed("m3", "speaker_2", "Hi, I joined late.", 6000))
        await expect(page.locator(".transcript .line.mixed").filter(has_text="joined late").locator(".who")
                     ).to_have_text("Speaker 20:06")
        await expect(page.locator(".transcript .line")).to_have_count(3)
    finally:
        await site.close_call(call_id)
