"""The live screen over a long call: bounded DOM, partials replaced by finals, reconnects, keyboard."""

from __future__ import annotations

from playwright.async_api import expect

from tests.browser.world import sign_in

# Test instrumentation, injected by the browser (not served by the app, so the CSP
# stays strict): remember every WebSocket the page opens so the test can cut one.
_TRACK_SOCKETS = """
(() => {
  const Native = window.WebSocket;
  window.__sockets = [];
  window.WebSocket = class extends Native {
    constructor(...args) { super(...args); window.__sockets.push(this); }
  };
})();
"""


def _segment(n: int, party: str = "customer", text: str | None = None) -> dict:
    return {"segment_id": f"s{n}", "party": party, "speaker": party, "start_ms": n * 1000,
            "end_ms": n * 1000 + 900, "text": text or f"segment number {n}", "revision": 1, "words": []}


async def _live_page(site, browser_context):
    await browser_context.add_init_script(_TRACK_SOCKETS)
    page = await sign_in(browser_context, site, site.org.rep_email, "/app/live")
    await expect(page.locator(".status").first).to_have_text("Waiting for your next call…")
    call_id = await site.new_call(site.org.rep)
    session = await site.open_call(call_id, site.org.rep)
    await expect(page.locator(".call-info")).to_contain_text("inbound call")
    return page, call_id, session


async def test_transcript_and_prompts_stay_bounded_and_partials_become_finals(site, browser_context):
    page, call_id, session = await _live_page(site, browser_context)
    try:
        await session.publish("transcript.partial", {**_segment(0, "rep", "hello thi"), "revision": 0})
        provisional = page.locator(".transcript .line.rep.partial")
        await expect(provisional).to_have_text("You0:00hello thi")
        await session.publish("transcript.final", _segment(0, "rep", "Hello, this is Rita."))
        await expect(page.locator(".transcript .line.rep")).to_have_count(1)
        await expect(page.locator(".transcript .line.rep")).not_to_have_class("partial")
        await expect(page.locator(".transcript .line.rep .text")).to_have_text("Hello, this is Rita.")

        for n in range(1, 451):  # a long call: far more lines than the screen keeps
            await session.publish("transcript.final", _segment(n))
        for n in range(30):
            await session.publish("coaching.prompt", {"prompt": {"id": f"p{n}", "title": f"Tip {n}",
                                                                  "body": "Ask an open question.",
                                                                  "severity": "info"}})
        await expect(page.locator(".transcript .line").last).to_contain_text("segment number 450")
        await expect(page.locator(".prompts .prompt").first).to_contain_text("Tip 29")
        lines = await page.locator(".transcript .line").count()
        cards = await page.locator(".prompts .prompt").count()
        assert 0 < lines <= 300 and 0 < cards <= 20, (lines, cards)
        # The oldest lines went, the newest stayed, in call-clock order.
        await expect(page.locator(".transcript .line").first).not_to_contain_text("Rita")
    finally:
        await site.close_call(call_id)


async def test_the_live_feed_reconnects_by_itself(site, browser_context):
    page, call_id, session = await _live_page(site, browser_context)
    try:
        await session.publish("transcript.final", _segment(1, text="before the drop"))
        await expect(page.locator(".transcript")).to_contain_text("before the drop")
        await page.evaluate("() => window.__sockets.at(-1).close()")  # the network drops it
        await page.wait_for_function(
            "() => window.__sockets.length >= 2 && window.__sockets.at(-1).readyState === WebSocket.OPEN")
        await session.publish("transcript.final", _segment(2, text="after the drop"))
        await expect(page.locator(".transcript")).to_contain_text("after the drop")
        # The snapshot replayed on reconnect does not duplicate lines already shown.
        await expect(page.locator(".transcript .line").filter(has_text="before the drop")).to_have_count(1)
    finally:
        await site.close_call(call_id)


async def test_prompt_dismiss_button_is_labelled_and_reachable_by_keyboard(site, browser_context):
    page, call_id, session = await _live_page(site, browser_context)
    try:
        await session.publish("coaching.prompt", {"prompt": {
            "id": "p-price", "title": "Pricing objection", "body": "Anchor on value before discounting.",
            "severity": "warning"}})
        card = page.locator(".prompts .prompt").filter(has_text="Pricing objection")
        await expect(card).to_be_visible()
        dismiss = card.get_by_role("button", name="Dismiss: Pricing objection")
        await expect(dismiss).to_have_attribute("aria-label", "Dismiss: Pricing objection")
        await page.locator("body").focus()
        for _ in range(40):  # Tab through the page until the dismiss button has focus
            await page.keyboard.press("Tab")
            if await dismiss.evaluate("(b) => b === document.activeElement"):
                break
        else:
            raise AssertionError("the dismiss button is not reachable with Tab")
        await page.keyboard.press("Enter")
        await expect(card).to_have_count(0)
    finally:
        await site.close_call(call_id)
