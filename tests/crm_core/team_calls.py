"""Scripted calls for the team analytics tests, stored through the live path's own steps.

Each call is created as the carriers create calls, its segments are coached by a real
``CallCoach`` and its summary is stored by ``store_call_summary`` (which materialises the
call's ``call_metrics`` row), exactly as the event writer does at the end of a live call.
The figures the tests expect are worked out by hand in the comments below.
"""

from __future__ import annotations

from datetime import datetime

from coaching.call_coach import CallCoach
from coaching.records import SegmentInput, SentimentScore
from crm_core.calls.records import NewCall, SegmentRow, add_final_segments, create_call
from crm_core.calls.summaries import store_call_summary
from voice_server.live_stages import summary_event

# (party, start_ms, end_ms, text)
# A: rep talk 4000+6000+4000 = 14000, customer 4500+5000 = 9500; the rep's longest turn 6000;
#    patience (10000-9000, 21000-20000) = 1000 over 2 answers; the customer interrupts once
#    (15000 inside the rep's 10000-16000); the rep asks 3 questions; prompts: incumbent,
#    competitor, price objection, all 3 followed (the rep says "Gong" and asks); checklist 2/2
#    (disclosure, next step); competitor Gong (2 mentions); objections: incumbent, price.
CALL_A = [
    ("rep", 0, 4000, "Hi, this call is recorded for quality. How are you today?"),
    ("customer", 4500, 9000, "Fine. We already use Gong and it is too expensive."),
    ("rep", 10000, 16000, "What do you like about Gong? What would you change?"),
    ("customer", 15000, 20000, "Honestly the reporting is slow for us."),
    ("rep", 21000, 25000, "Let's schedule a demo next Tuesday."),
]
# B: rep 8000+3000 = 11000, customer 1500; longest 8000; patience 1000 over 1; no question;
#    the brush-off prompt is not followed (nothing on its topic, no question); checklist 0/2;
#    objection: brush-off.
CALL_B = [
    ("rep", 0, 8000, "Let me tell you about our product, it has dashboards and reports."),
    ("customer", 8500, 10000, "Okay, send me an email."),
    ("rep", 11000, 14000, "Sure, I will do that today."),
]
# C: rep 2500+2500 = 5000, customer 3000+2800 = 5800; longest 2500; patience 500 over 2;
#    1 rep question; the competitor prompt is followed ("Chorus"); checklist 1/2 (disclosure);
#    competitor Chorus (2 mentions).
CALL_C = [
    ("customer", 0, 3000, "Hi, who is this?"),
    ("rep", 3500, 6000, "This call is being recorded. I am Sam from Coachline."),
    ("customer", 6200, 9000, "We are looking at Chorus as well."),
    ("rep", 9500, 12000, "Chorus is fine, what matters most to you?"),
]


async def store_scripted_call(
    pool, org_id: str, rep_id: str, started_at: datetime, script: list[tuple[str, int, int, str]]
) -> tuple[str, dict[str, float]]:
    """Create, coach and summarise one call; returns its id and the customer's segment scores' mean."""
    coach = CallCoach()
    scores: list[float] = []
    rows = []
    for i, (party, start, end, text) in enumerate(script):
        segment = SegmentInput(f"s{i}", party, text, start, end)
        for insight in coach.feed(segment):
            if isinstance(insight, SentimentScore) and insight.party == "customer":
                scores.append(insight.score)
        rows.append(
            SegmentRow(
                segment_key=f"s{i}",
                party=party,
                start_ms=start,
                end_ms=end,
                text=text,
                words=[],
                speaker=None,
                text_raw=None,
                sentiment=None,
            )
        )
    payload = summary_event(coach.finish(), abnormal=False).to_payload()
    async with pool.acquire() as conn:
        call = await create_call(
            conn,
            NewCall(
                org_id=org_id,
                carrier="simulator",
                direction="outbound",
                rep_id=rep_id,
                status="in-progress",
            ),
        )
        call_id = str(call["id"])
        await conn.execute("UPDATE calls SET started_at = $2 WHERE id = $1", call["id"], started_at)
        await add_final_segments(conn, org_id, call_id, rows)
        assert await store_call_summary(conn, org_id, call_id, payload) is not None
    return call_id, {"customer_sentiment": sum(scores) / len(scores)}
