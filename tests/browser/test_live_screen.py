"""The rep's live-call screen in a real browser, fed by a real call through the speech model."""

from __future__ import annotations

import asyncio

from playwright.async_api import expect

from media.frames import Party
from tests.browser.world import (
    OUR_NUMBER,
    PUBLIC_URL,
    TWILIO_TOKEN,
    push_real_time,
    screenshot,
    sign_in,
    telephone_frames,
)
from tests.media.speech_corpus import requires_corpus
from voice_server.simulator.carrier.call import SimulatedCall, simulate_call
from voice_server.simulator.carrier.wav import sound

pytestmark = requires_corpus


async def test_rep_sees_the_live_transcript_and_a_coaching_prompt(site, browser_context, tmp_path):
    page = await sign_in(browser_context, site, site.org.rep_email, "/app/live")
    await expect(page.get_by_role("heading", name="Live call")).to_be_visible()
    await expect(page.locator(".status").first).to_have_text("Waiting for your next call…")

    lead_id = await site.new_lead(site.org.rep)
    call_id = await site.new_call(site.org.rep, lead_id=lead_id)
    session = await site.open_call(call_id, site.org.rep, lead_id=lead_id)
    # Both parties speak, as on a real call: the rep greets, the customer names a competitor.
    pushing = asyncio.gather(
        push_real_time(session, telephone_frames(["dir-welcome"], Party.REP), speed=2.0),
        push_real_time(session, telephone_frames(["conf-full", "conf-locked"], Party.CUSTOMER,
                                                 start_ms=2500), speed=2.0))
    try:
        # The call appears by itself; the customer's words and the org's prompt follow.
        # ...with its lead, score and grade, linked to the CRM record.
        lead_link = page.locator(".call-info").get_by_role("link", name="Dana Diaz")
        await expect(lead_link).to_have_attribute("href", f"/app/leads/{lead_id}")
        await expect(page.locator(".call-info")).to_contain_text("Score 87 · A")
        line = page.locator(".transcript .line.customer").filter(has_text="conference").first
        await expect(line).to_be_visible()
        card = page.locator(".prompts .prompt").filter(has_text="onference").first
        await expect(card).to_be_visible()
        await pushing
        await expect(page.locator(".transcript .line.customer:not(.partial)").filter(
            has_text="locked")).to_be_visible()
        rep_line = page.locator(".transcript .line.rep:not(.partial)").filter(has_text="irectory")
        await expect(rep_line).to_be_visible()
        await expect(rep_line.locator(".who")).to_contain_text("You")
        await screenshot(page, "rep-live-call", tmp_path)
    finally:
        pushing.cancel()
        await site.close_call(call_id)
    await expect(page.locator(".status").first).to_have_text("Call ended")

    # Why is this lead an A? The lead's page says.
    await lead_link.click()
    await expect(page.get_by_role("heading", name="Why this grade")).to_be_visible()
    await expect(page.locator("main")).to_contain_text("Replied within a day")


async def test_a_twilio_call_from_the_carrier_simulator_shows_up_on_the_reps_screen(site, browser_context):
    """The whole edge: Twilio webhook + media stream (voice_server/simulator/carrier) → speech → the page."""
    page = await sign_in(browser_context, site, site.org.rep_email, "/app/live")
    await expect(page.locator(".status").first).to_have_text("Waiting for your next call…")
    call = asyncio.create_task(simulate_call(SimulatedCall(
        carrier="twilio", server=site.url, public_url=PUBLIC_URL, to_number=OUR_NUMBER,
        rep_wav=sound("dir-welcome"), customer_wav=sound("conf-full"),
        twilio_auth_token=TWILIO_TOKEN, rep_starts_ms=0, realtime=True)))
    try:
        customer = page.locator(".transcript .line.customer").filter(has_text="conference")
        await expect(customer.first).to_be_visible()
        await expect(page.locator(".prompts .prompt").filter(has_text="onference").first).to_be_visible()
        await expect(page.locator(".transcript .line.rep").filter(has_text="irectory").first).to_be_visible()
        await call  # the simulator hangs up when both WAVs have played
        await expect(page.locator(".status").first).to_have_text("Call ended")
        await expect(page.locator(".call-info")).to_contain_text("inbound call")
    finally:
        if not call.done():
            call.cancel()
