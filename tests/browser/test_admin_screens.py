"""The admin screens in a real browser: add a rep, route a number to them, edit the coaching
rules and see the new rule fire on the next call (a Twilio call from the carrier simulator to that
number), and revoke an API token. At 1280 and 360 px, with no console error or CSP violation."""

from __future__ import annotations

import asyncio
import uuid

from playwright.async_api import expect

from crm_core.auth.passwords import hash_password
from tests.browser.world import (
    PASSWORD,
    PUBLIC_URL,
    TWILIO_TOKEN,
    UI_TIMEOUT_MS,
    screenshot,
    sign_in,
)
from tests.media.speech_corpus import requires_corpus
from voice_server.app_keys import RUNTIME
from voice_server.simulator.carrier.call import SimulatedCall, simulate_call
from voice_server.simulator.carrier.wav import sound

pytestmark = requires_corpus


async def _admin(site) -> str:
    email = f"ada-{uuid.uuid4().hex[:6]}@acme.test"
    await site.app[RUNTIME].pool.execute(
        "INSERT INTO users (org_id, email, name, role, password_hash) VALUES ($1, $2, 'Ada Admin', 'admin', $3)",
        uuid.UUID(site.org.org_id),
        email,
        await asyncio.to_thread(hash_password, PASSWORD),
    )
    return email


async def test_an_admin_adds_a_rep_routes_a_number_edits_a_rule_and_revokes_a_token(
    site, browser_context, chromium, page_health, tmp_path
):
    page = await sign_in(browser_context, site, await _admin(site), "/app")
    await page.get_by_role("navigation", name="Main").get_by_role("link", name="Admin").click()
    await expect(page.get_by_role("heading", name="Admin")).to_be_visible()

    # a new rep, with the phone their calls ring at
    nora = f"nora-{uuid.uuid4().hex[:6]}@acme.test"
    form = page.locator("#new-user")
    await form.get_by_label("Name").fill("Nora New")
    await form.get_by_label("Email").fill(nora)
    await form.get_by_label("Team").select_option(label="East")
    await form.get_by_label("Phone (routing)").fill(f"+1555{uuid.uuid4().int % 10**7:07d}")
    await form.get_by_label("Password (optional)").fill(PASSWORD)
    await form.get_by_role("button", name="Add user").click()
    await expect(page.locator("tbody tr").filter(has_text="Nora New")).to_be_visible()
    await page.set_viewport_size({"width": 360, "height": 800})
    assert await page.evaluate("document.documentElement.scrollWidth") <= 360
    await screenshot(page, "admin-360", tmp_path)
    await page.set_viewport_size({"width": 1280, "height": 800})

    # a number of our own that rings her
    number = f"+1555{uuid.uuid4().int % 10**7:07d}"
    await page.get_by_role("link", name="Carrier numbers").click()
    mapping = page.locator("#map-number")
    await mapping.get_by_label("Number").fill(number)
    await mapping.get_by_label("Rings").select_option(label="Nora New (rep)")
    await mapping.get_by_role("button", name="Map number").click()
    await expect(page.locator("#numbers tr").filter(has_text=number)).to_contain_text("Nora New")

    # a battle card for a word the customer says, tried on a sentence, then saved
    await page.get_by_role("link", name="Coaching rules").click()
    card = page.locator("#battle-card")
    await card.get_by_label("Competitor").fill("full")
    await card.get_by_label("Card title").fill("Room full card")
    await card.get_by_label("What to say").fill("Offer the overflow room.")
    await card.get_by_role("button", name="Add to the rule set").click()
    await page.locator("#preview-text").fill("I am sorry but this conference is full")
    await page.get_by_role("button", name="Preview").click()
    await expect(page.locator("#preview-results")).to_contain_text("Room full card")
    # a broken edit is refused, pointing at the field (the browser logs the 422 it provokes)
    page_health.allow(r"422 \(Unprocessable Entity\).*/api/v1/coaching-rules")
    editor = page.locator("#rules-json")
    good = await editor.input_value()
    await editor.fill('{"rules": [{"id": "x", "trigger": "silence", "title": "t", "body": "b"}]}')
    await page.locator("#save-rules").click()
    await expect(page.get_by_role("alert")).to_contain_text("rules.rules.0.seconds")
    await editor.fill(good)
    await page.locator("#save-rules").click()
    await expect(page.get_by_role("status")).to_contain_text("Saved as version")
    await screenshot(page, "admin-1280", tmp_path)

    # the next call to her number rings Nora, and the new rule fires on it
    rep_context = await chromium.new_context(viewport={"width": 1280, "height": 800})
    rep_context.set_default_timeout(UI_TIMEOUT_MS)
    await page_health.watch(rep_context)
    rep_page = await sign_in(rep_context, site, nora, "/app/live")
    await expect(rep_page.locator(".status").first).to_have_text("Waiting for your next call…")
    call = asyncio.create_task(
        simulate_call(
            SimulatedCall(
                carrier="twilio",
                server=site.url,
                public_url=PUBLIC_URL,
                to_number=number,
                rep_wav=sound("dir-welcome"),
                customer_wav=sound("conf-full"),
                twilio_auth_token=TWILIO_TOKEN,
                rep_starts_ms=0,
                realtime=True,
            )
        )
    )
    try:
        await expect(
            rep_page.locator(".prompts .prompt").filter(has_text="Room full card").first
        ).to_be_visible()
        await call
    finally:
        if not call.done():
            call.cancel()
    await rep_context.close()

    # an API token, created and revoked: it opens nothing afterwards
    await page.get_by_role("link", name="API tokens").click()
    token_form = page.locator("#new-token")
    await token_form.get_by_label("Name").fill("ci-export")
    await token_form.get_by_role("button", name="Create token").click()
    secret = await page.locator(".token-secret code").text_content()
    me = await page.request.get(
        f"{site.url}/api/v1/me", headers={"Authorization": f"Bearer {secret}"}
    )
    assert me.status == 200
    row = page.locator("tr[data-token='ci-export']")
    await row.get_by_role("button", name="Revoke").click()
    await expect(page.locator("tr[data-token='ci-export']")).to_contain_text("revoked")
    me = await page.request.get(
        f"{site.url}/api/v1/me", headers={"Authorization": f"Bearer {secret}"}
    )
    assert me.status == 401
