"""The rep's live screen end to end: caller card, timer, checklist, prompts, talk and sentiment,
the end-of-call summary with its review link, as a 360 px side panel and at 1280x800."""

from __future__ import annotations

import asyncio
import re
import uuid
import wave

import numpy as np
from playwright.async_api import expect

from media.frames import Party
from tests.browser.world import (
    ORG_RULES,
    OUR_NUMBER,
    PUBLIC_URL,
    TWILIO_TOKEN,
    push_real_time,
    screenshot,
    sign_in,
    telephone_frames,
)
from tests.media.speech_corpus import load_clip, requires_corpus
from voice_server.simulator.carrier.call import SimulatedCall, simulate_call

CALLER = "+15557770000"  # the simulator's caller id
# The organization's disclosure is what its reps say: "... is now being recorded".
RULES = {
    **ORG_RULES,
    "keywords": {
        **ORG_RULES["keywords"],
        "compliance_disclosure": {
            "parties": ["rep"],
            "phrases": [{"phrase": "now being recorded"}],
        },
    },
}


def _wav(path, parts: list[tuple[str | None, int]]):
    """A mono 8 kHz WAV of clips (None: silence) each followed by the given ms of silence."""
    pcm = []
    for name, gap_ms in parts:
        if name:
            pcm.append(load_clip(name))
        pcm.append(np.zeros(gap_ms * 8, dtype=np.int16))
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(8000)
        w.writeframes(np.concatenate(pcm).tobytes())
    return path


def _pool(site):
    from voice_server.app_keys import RUNTIME

    return site.app[RUNTIME].pool


async def _set_org(site, **settings) -> None:
    await _pool(site).execute(
        "UPDATE organizations SET settings = settings || $2 WHERE id = $1",
        uuid.UUID(site.org.org_id),
        settings,
    )


async def _history(site, lead_id: str) -> None:
    """The lead's open deal and an earlier call, as the CRM would hold them."""
    pool = _pool(site)
    org, rep = uuid.UUID(site.org.org_id), uuid.UUID(site.org.rep)
    await pool.execute(
        "INSERT INTO deals (org_id, lead_id, owner_id, name, stage, value) "
        "VALUES ($1, $2, $3, 'Globex pilot', 'proposal', 12000)",
        org,
        uuid.UUID(lead_id),
        rep,
    )
    await pool.execute(
        "INSERT INTO calls (org_id, carrier, direction, external_id, rep_id, lead_id, "
        "status, started_at, duration_s) VALUES ($1, 'twilio', 'inbound', $2, $3, $4, "
        "'completed', now() - interval '2 days', 245)",
        org,
        uuid.uuid4().hex,
        rep,
        uuid.UUID(lead_id),
    )


OVERFLOW_JS = """() => {
    const width = document.documentElement.clientWidth;
    const bad = [...document.querySelectorAll('body *')].filter((n) => {
        const r = n.getBoundingClientRect();
        return r.width > 0 && (r.right > width + 0.5 || r.left < -0.5);
    }).map((n) => `${n.tagName}.${n.className} ${Math.round(n.getBoundingClientRect().right)}`);
    return {width, scroll: document.documentElement.scrollWidth, bad};
}"""


@requires_corpus
async def test_a_reps_whole_call_from_the_caller_card_to_the_summary(
    site, browser_context, tmp_path
):
    """Twilio (the carrier simulator) → speech → coaching → the rep's screen, then the review."""
    await _set_org(site, coaching_rules=RULES)
    lead_id = await site.new_lead(site.org.rep, phone=CALLER)
    await _history(site, lead_id)
    page = await sign_in(browser_context, site, site.org.rep_email, "/app/live")
    await expect(page.locator(".status").first).to_have_text("Waiting for your next call…")
    rep_wav = _wav(tmp_path / "rep.wav", [("dir-welcome", 700), ("conf-now-recording", 5000)])
    customer_wav = _wav(
        tmp_path / "customer.wav", [(None, 5500), ("conf-full", 600), ("conf-locked", 3000)]
    )
    call = asyncio.create_task(
        simulate_call(
            SimulatedCall(
                carrier="twilio",
                server=site.url,
                public_url=PUBLIC_URL,
                to_number=OUR_NUMBER,
                from_number=CALLER,
                rep_wav=rep_wav,
                customer_wav=customer_wav,
                twilio_auth_token=TWILIO_TOKEN,
                realtime=True,
            )
        )
    )
    try:
        # who is calling: the lead matched by number, its grade, open deal and last call
        card = page.locator(".caller-card")
        await expect(card.get_by_role("link", name="Dana Diaz")).to_have_attribute(
            "href", f"/app/leads/{lead_id}"
        )
        await expect(card).to_contain_text("Globex")
        await expect(card).to_contain_text("Score 87 · A")
        await expect(card).to_contain_text("Deal: Globex pilot · proposal")
        await expect(card.locator(".last-call")).to_contain_text("4:05 (you)")
        await expect(page.locator(".call-timer")).not_to_have_text("0:00")
        # the checklist: listed at once, the disclosure ticked when the rep says it
        disclosure = page.locator(".checklist li[data-item='recording-disclosure']")
        await expect(disclosure).to_have_class(re.compile(r"\bdone\b"))
        await expect(disclosure).to_contain_text("✓Recording disclosure")
        await expect(page.locator(".checklist li[data-item='next-step-agreed']")).to_have_class(
            re.compile(r"\bpending\b")
        )
        # the customer names a competitor: a prompt; sentiment and talk figures are readable
        await expect(
            page.locator(".prompts .prompt").filter(has_text="onference").first
        ).to_be_visible()
        await expect(
            page.locator(".transcript .line.customer").filter(has_text="locked").first
        ).to_be_visible()
        customer = page.locator(".gauge[data-party='customer']")
        await expect(customer.locator(".gauge-value")).to_have_text(
            re.compile(r"^[+-]?\d\.\d\d (positive|neutral|negative)$")
        )
        await expect(customer.get_by_role("meter", name="Customer sentiment")).to_have_attribute(
            "aria-valuetext", re.compile(r"(positive|neutral|negative)")
        )
        stats = page.locator(".talk-stats")
        await expect(stats).to_contain_text(re.compile(r"Interruptions\s*You \d+ · Customer \d+"))
        await expect(stats).to_contain_text(
            re.compile(r"Talk speed\s*You \d+ wpm · Customer \d+ wpm")
        )
        await expect(stats).to_contain_text(re.compile(r"Patience\s*\d+\.\d s"))
        # mid-call, as a rep sees it (docs/screenshots/rep-live-1280.png)
        if not call.done():
            await screenshot(page, "rep-live-1280", tmp_path)
        report = await call  # the simulator hangs up when both WAVs have played
    finally:
        if not call.done():
            call.cancel()
    await expect(page.locator(".status").first).to_have_text("Call ended")
    end = page.locator(".call-end")
    await expect(end.get_by_role("heading", name="Call summary")).to_be_visible()
    await expect(end.get_by_role("heading", name="Action items")).to_be_visible()
    await expect(end.get_by_role("heading", name="Next steps")).to_be_visible()
    await expect(end.locator(".summary-text")).not_to_be_empty()
    review = end.get_by_role("link", name="Review this call")
    await expect(review).to_have_attribute("href", f"/app/calls/{report.call_id}")
    frozen = await page.locator(".call-timer").text_content()
    # the rep reviews their own call; the player says why there is no audio for them
    await review.click()
    await expect(page.get_by_role("heading", name=re.compile("Call review"))).to_be_visible()
    note = page.locator(".no-audio")
    await expect(note).to_have_attribute("data-reason", "not_permitted")
    await expect(note).to_contain_text("does not let reps review their own recordings")
    await expect(page.get_by_label("Call recording")).to_be_hidden()
    assert re.fullmatch(r"0:\d\d", frozen or ""), frozen


def _prompt(rule_id: str, at_ms: int, title: str, severity: str = "info") -> dict:
    return {
        "prompt": {
            "rule_id": rule_id,
            "kind": "keyword",
            "severity": severity,
            "title": title,
            "body": f"{title}: what to do now.",
            "at_ms": at_ms,
            "party": "customer",
            "evidence": [],
            "link": None,
            "id": f"{rule_id}@{at_ms}",
            "segment_key": None,
        }
    }


def _checklist(at_ms: int, disclosure: str, next_step: str = "pending") -> dict:
    return {
        "at_ms": at_ms,
        "items": [
            {
                "id": "recording-disclosure",
                "label": "Recording disclosure",
                "status": disclosure,
                "due_ms": 30_000,
                "done_at_ms": at_ms if disclosure == "done" else None,
            },
            {
                "id": "next-step-agreed",
                "label": "Next step agreed",
                "status": next_step,
                "due_ms": 900_000,
                "done_at_ms": None,
            },
        ],
    }


async def test_prompts_stack_at_most_three_expire_and_collapse_once_handled(site, browser_context):
    page = await sign_in(browser_context, site, site.org.rep_email, "/app/live")
    await expect(page.locator(".status").first).to_have_text("Waiting for your next call…")
    call_id = await site.new_call(site.org.rep)
    session = await site.open_call(call_id, site.org.rep)
    try:
        await expect(page.locator(".call-info")).to_contain_text("inbound call")
        await session.publish("insight.checklist", _checklist(1_000, "pending"))
        pending = page.locator(".checklist li[data-item='recording-disclosure']")
        await expect(pending).to_have_class(re.compile(r"\bpending\b"))
        await expect(pending).to_have_attribute(
            "aria-label", "Recording disclosure: pending by 0:30"
        )
        await session.publish(
            "coaching.prompt",
            _prompt("recording-disclosure", 2_000, "Recording disclosure missing", "critical"),
        )
        for i, title in enumerate(
            ["Competitor: Gong", "Price objection", "Long silence", "Brush-off"]
        ):
            await session.publish(
                "coaching.prompt",
                _prompt(f"rule-{i}", 3_000 + i * 1_000, title, "warning" if i == 1 else "info"),
            )
        cards = page.locator(".prompts .prompt")
        await expect(cards).to_have_count(5)
        await expect(page.locator(".prompts .prompt:visible")).to_have_count(3)
        await expect(page.locator(".more-prompts")).to_have_text("+2 more prompts")
        # the talk panel stays on a 1280x800 screen however many prompts came
        talk = page.get_by_role("heading", name="Talk", exact=True)
        box = await page.locator(".live-talk").bounding_box()
        assert box is not None and box["y"] + 60 <= 800, box
        await expect(talk).to_be_in_viewport()

        # the rep says the disclosure: the item ticks, and its prompt collapses to one line
        await session.publish("insight.checklist", _checklist(9_000, "done"))
        await expect(pending).to_have_class(re.compile(r"\bdone\b"))
        await expect(pending).to_have_attribute("aria-label", "Recording disclosure: done at 0:09")
        handled = cards.filter(has_text="Recording disclosure missing")
        await expect(handled).to_have_class(re.compile(r"\bhandled\b"))
        await expect(handled.locator("h3")).to_have_text("✓ Recording disclosure missing")
        await expect(handled.locator("p")).to_be_hidden()
        # a minute later on the call clock the info cards have expired; the warning stays
        await session.publish("insight.metrics", _metrics(66_500))
        await expect(cards).to_have_count(2)
        await expect(page.locator(".more-prompts")).to_be_hidden()
        await expect(cards.first).to_contain_text("Price objection")
        await page.get_by_role("button", name="Dismiss: Price objection").click()
        await expect(cards).to_have_count(1)
        # the deadline passes without a next step: missed
        await session.publish("insight.checklist", _checklist(900_000, "done", "missed"))
        await expect(page.locator(".checklist li[data-item='next-step-agreed']")).to_contain_text(
            "✗Next step agreed"
        )
    finally:
        await site.close_call(call_id)


def _metrics(at_ms: int) -> dict:
    return {
        "at_ms": at_ms,
        "talk_ratio": {"rep": 0.62, "customer": 0.38},
        "talk_ms": {"rep": 31_000, "customer": 19_000},
        "longest_monologue_ms": {"rep": 14_000, "customer": 9_000},
        "current_monologue": {"party": None, "ms": 0},
        "interruptions": {"rep": 2, "customer": 1},
        "wpm": {"rep": 151.2, "customer": 128.0},
        "fillers": {"rep": 3, "customer": 1},
        "silence_ms": 4_000,
        "longest_silence_ms": 2_100,
        "patience_ms": 820.0,
    }


@requires_corpus
async def test_the_side_panel_at_360_px_cuts_nothing_off(site, chromium, page_health, tmp_path):
    context = await chromium.new_context(viewport={"width": 360, "height": 740})
    await page_health.watch(context)
    try:
        page = await sign_in(context, site, site.org.rep_email, "/app/live")
        lead_id = await site.new_lead(site.org.rep)
        await _history(site, lead_id)
        call_id = await site.new_call(site.org.rep, lead_id=lead_id)
        session = await site.open_call(call_id, site.org.rep, lead_id=lead_id)
        pushing = asyncio.gather(
            push_real_time(session, telephone_frames(["dir-welcome"], Party.REP), speed=2.0),
            push_real_time(
                session, telephone_frames(["conf-full"], Party.CUSTOMER, start_ms=2500), speed=2.0
            ),
        )
        try:
            await expect(page.locator(".caller-card")).to_contain_text(
                "Deal: Globex pilot · proposal"
            )
            await expect(
                page.locator(".transcript .line.customer").filter(has_text="conference").first
            ).to_be_visible()
            await session.publish("insight.checklist", _checklist(4_000, "done"))
            for i, title in enumerate(
                ["Price objection", "Long silence", "Brush-off", "You're doing most of the talking"]
            ):
                await session.publish("coaching.prompt", _prompt(f"narrow-{i}", 4_000 + i, title))
            await session.publish("insight.metrics", _metrics(5_000))
            await session.publish(
                "insight.sentiment",
                {
                    "segment_id": "x",
                    "party": "customer",
                    "score": -0.4,
                    "label": "negative",
                    "trend": -0.31,
                    "at_ms": 5_000,
                    "model": "vader",
                },
            )
            await expect(page.locator(".more-prompts")).to_have_text(
                re.compile(r"^\+\d more prompts?$")
            )
            await expect(page.locator(".prompts .prompt:visible")).to_have_count(3)
            await expect(page.locator(".gauge[data-party='customer'] .gauge-value")).to_have_text(
                "-0.31 negative"
            )
            await pushing
            layout = await page.evaluate(OVERFLOW_JS)
            assert layout["width"] == 360 and layout["scroll"] <= 360, layout
            assert layout["bad"] == [], layout["bad"]
            # the prompts come first in the narrow column, the transcript right after them
            coach = await page.locator(".live-coach").bounding_box()
            words = await page.locator(".live-transcript").bounding_box()
            assert coach["y"] < words["y"] and coach["width"] <= 360
            await screenshot(page, "rep-live-360", tmp_path)
        finally:
            pushing.cancel()
            await site.close_call(call_id)
        # the summary fits the side panel too
        await expect(
            page.locator(".call-end").get_by_role("link", name="Review this call")
        ).to_be_visible()
        layout = await page.evaluate(OVERFLOW_JS)
        assert layout["bad"] == [] and layout["scroll"] <= 360, layout
    finally:
        await context.close()
    page_health.assert_clean()


async def test_the_summary_lists_action_items_and_the_org_may_keep_reps_from_review(
    site, browser_context
):
    await _set_org(site, reps_review_own_calls=False)
    page = await sign_in(browser_context, site, site.org.rep_email, "/app/live")
    await expect(page.locator(".status").first).to_have_text("Waiting for your next call…")
    call_id = await site.new_call(site.org.rep)
    session = await site.open_call(call_id, site.org.rep)
    await expect(page.locator(".call-info")).to_contain_text("inbound call")
    await site.close_call(call_id)
    await expect(page.locator(".status").first).to_have_text("Call ended")
    # the coach's own summary came before the call ended; this one, with items, replaces it
    await session.publish(
        "insight.summary",
        {
            "text": "Dana is comparing us with the conference tool.",
            "key_points": [],
            "action_items": [
                {"owner": "rep", "text": "Send the pricing sheet", "at_ms": 12_000, "due": "Friday"}
            ],
            "next_steps": [
                {"owner": "both", "text": "Demo with the team", "at_ms": 30_000, "due": None}
            ],
            "objections": [],
            "competitors": [],
            "keyword_counts": {},
            "metrics": None,
            "sentiment_trend": {},
            "checklist_missed": ["next-step-agreed"],
            "duration_ms": 40_000,
            "signals": {},
            "abnormal": False,
        },
    )
    end = page.locator(".call-end")
    await expect(end.locator("ul.actions li")).to_have_text(["Send the pricing sheet (Friday)"])
    await expect(end.locator("ul.next-steps li")).to_have_text(["Demo with the team"])
    await expect(end).to_contain_text("Your organization does not let reps review their calls.")
    await expect(end.get_by_role("link", name="Review this call")).to_have_count(0)
    await expect(page.locator(".status").first).to_have_text("Call ended")
