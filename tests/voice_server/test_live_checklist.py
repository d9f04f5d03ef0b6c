"""The checklist on the live path: the first tick shows it, a deadline passing or an item heard
publishes it again, and the event reads back from the bus as it was sent."""

from coaching.call_coach import CoachingProfile
from coaching.records import SegmentInput
from crm_core.calls.live_events import ChecklistEvent, from_bus
from voice_server.live_stages import Coaching, checklist_event


def test_ticks_publish_the_checklist_once_per_change():
    coaching = Coaching(CoachingProfile.load(None))
    first = [e for e in coaching.tick(1_000, speech_active=False) if isinstance(e, ChecklistEvent)]
    assert [(i.id, i.status) for i in first[0].items] == [
        ("recording-disclosure", "pending"),
        ("next-step-agreed", "pending"),
    ]
    assert not [
        e for e in coaching.tick(2_000, speech_active=False) if isinstance(e, ChecklistEvent)
    ]
    late = [e for e in coaching.tick(30_000, speech_active=False) if isinstance(e, ChecklistEvent)]
    assert late[0].items[0].status == "missed"
    payload = late[0].to_payload()
    assert from_bus("insight.checklist", {**payload, "call_id": "c"}) == late[0]
    assert payload["items"][0] == {
        "id": "recording-disclosure",
        "label": "Recording disclosure",
        "status": "missed",
        "due_ms": 30_000,
        "done_at_ms": None,
    }


def test_the_event_mirrors_the_coach_state():
    from coaching import CallCoach

    coach = CallCoach()
    coach.feed(SegmentInput.build("a", "rep", "This call is recorded for quality.", 0, 3_000))
    event = checklist_event(coach.checklist())
    assert event.event_type == "insight.checklist"
    assert [(i.label, i.status) for i in event.items] == [
        ("Recording disclosure", "done"),
        ("Next step agreed", "pending"),
    ]
