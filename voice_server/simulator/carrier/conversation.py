"""A scripted two-party conversation built from real telephone prompts.

Each turn places one asterisk prompt (real 8 kHz speech with a known text)
on the rep's or the customer's track at a chosen time; the rest of both
tracks is digital silence. The turn table is the ground truth the end-to-end
tests and the coaching benchmark compare the server's transcript, prompts
and talk metrics against: every turn knows where its speech starts and ends
on the call clock (the clip's voiced part, found from its energy).
"""

from __future__ import annotations

import wave
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from voice_server.simulator.carrier.wav import read_wav, sound

RATE = 8000
_FRAME = 160  # 20 ms at 8 kHz
# A 20 ms frame is speech when its RMS is above 5% of the clip's loudest frame
# (and above a floor): the prompts are studio recordings with near-zero noise.
_VOICED_FRACTION = 0.05
_VOICED_FLOOR = 100.0


@dataclass(frozen=True)
class Turn:
    party: str  # rep | customer
    clip: str  # asterisk prompt name, e.g. "conf-full", or the path of a WAV file
    at_ms: int  # where the clip starts on the call clock
    text: str = ""  # what is said (for reading the script; the tests use their own words)


@dataclass(frozen=True)
class PlacedTurn:
    turn: Turn
    start_ms: int  # the clip's first voiced frame on the call clock
    end_ms: int  # the end of its last voiced frame
    clip_end_ms: int  # the end of the whole clip (trailing silence included)


@dataclass(frozen=True)
class Conversation:
    rep: np.ndarray
    customer: np.ndarray
    turns: tuple[PlacedTurn, ...]

    @property
    def duration_ms(self) -> int:
        return len(self.rep) * 1000 // RATE

    def write(self, directory: Path) -> tuple[Path, Path]:
        """rep.wav and customer.wav (8 kHz mono 16-bit) in ``directory``."""
        paths = directory / "rep.wav", directory / "customer.wav"
        for path, pcm in zip(paths, (self.rep, self.customer)):
            with wave.open(str(path), "wb") as w:
                w.setnchannels(1)
                w.setsampwidth(2)
                w.setframerate(RATE)
                w.writeframes(pcm.astype("<i2").tobytes())
        return paths


def voiced_span_ms(pcm: np.ndarray) -> tuple[int, int]:
    """First and last voiced millisecond of a clip, at 20 ms resolution."""
    frames = pcm[:len(pcm) // _FRAME * _FRAME].astype(np.float64).reshape(-1, _FRAME)
    rms = np.sqrt((frames ** 2).mean(axis=1))
    voiced = np.nonzero(rms > max(rms.max() * _VOICED_FRACTION, _VOICED_FLOOR))[0]
    if len(voiced) == 0:
        return 0, 0
    return int(voiced[0]) * 20, (int(voiced[-1]) + 1) * 20


def build(turns: list[Turn], tail_ms: int = 1500) -> Conversation:
    """Both tracks of the conversation, each turn's clip placed at its ``at_ms``."""
    clips = {}
    for t in turns:
        if t.party not in ("rep", "customer"):
            raise ValueError(f"turn party must be rep or customer, not {t.party!r}")
        pcm, rate = read_wav(t.clip if t.clip.endswith(".wav") else sound(t.clip))
        if rate != RATE:
            raise ValueError(f"{t.clip}: {rate} Hz, the conversation is built at {RATE} Hz")
        clips[t.clip] = pcm
    end_ms = max(t.at_ms + len(clips[t.clip]) * 1000 // RATE for t in turns) + tail_ms
    tracks = {"rep": np.zeros(end_ms * RATE // 1000, np.int32),
              "customer": np.zeros(end_ms * RATE // 1000, np.int32)}
    placed = []
    for t in turns:
        pcm = clips[t.clip]
        first = t.at_ms * RATE // 1000
        tracks[t.party][first:first + len(pcm)] += pcm
        a, b = voiced_span_ms(pcm)
        placed.append(PlacedTurn(t, t.at_ms + a, t.at_ms + b, t.at_ms + len(pcm) * 1000 // RATE))
    as_pcm = {k: np.clip(v, -32768, 32767).astype(np.int16) for k, v in tracks.items()}
    return Conversation(as_pcm["rep"], as_pcm["customer"], tuple(placed))


# The sales call the tests and the benchmark play: the customer names a
# competitor ("conference", in the test organization's rule set) first as the
# last word of a sentence (so the word's end is the clip's voiced end), twice within
# the rule's cooldown, the rep once (the rule coaches customer mentions only);
# the customer interrupts the rep once; the rep answers three customer turns.
SALES_CALL = [
    Turn("rep", "hello", 500, "Hello."),
    Turn("customer", "conf-leaderhasleft", 2000, "The leader has left the conference."),
    Turn("rep", "conf-onlyperson", 4500, "You are currently the only person in this conference."),
    Turn("customer", "conf-locked", 6600, "This conference is locked!"),
    Turn("rep", "agent-loginok", 9500, "Agent logged in."),
    Turn("customer", "demo-echodone", 12300, "The echo test has been completed."),
    Turn("rep", "agent-loggedoff", 16000, "Agent logged off."),
    Turn("customer", "vm-goodbye", 18500, "Goodbye."),
]
