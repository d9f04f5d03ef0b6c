"""Rep naming on mixed-channel calls, replayed from real voices.

Shared by tests/voice_server/test_rep_naming.py and scripts/bench/rep_naming.py.

The rep is one voice across all calls: the English Asterisk prompts (Allison,
Debian asterisk-core-sounds-en-wav). Customers are other real voices: the
Asterisk prompts in other languages (Debian asterisk-core-sounds-{es,fr,it,ru}-wav
and asterisk-prompt-it-menardi-wav: five more speakers) and the two speakers of
the pyannote sample (tests/data/diarization).

* ``enrol`` plays the rep's side of N earlier two-track calls through
  ``RepVoiceLearner`` (the server's consumer for a rep track) and builds and
  merges their prints as ``RepVoiceprints.learn`` does.
* ``mixed_call`` builds a call of alternating rep and customer turns at
  telephone quality (8 kHz G.711 µ-law, then 16 kHz as Vonage delivers it).
* ``label_call`` replays it in 20 ms frames through the server's
  ``SpeakerLabeller`` (the diarizer with the enrolled print), in the server's
  400 ms batches, and names each turn's transcript segment when its final
  would be published (``final_delay_ms`` after it ends).
"""

from __future__ import annotations

import asyncio
import wave
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from media.frames import AudioFrame, Party
from media.g711 import ulaw_decode, ulaw_encode
from media.resample import resample
from media.speakers.encoder import SpeakerEncoder
from media.voiceprints import Voiceprint, build_voiceprint
from voice_server.rep_voiceprints import RepVoiceLearner
from voice_server.speaker_labels import BATCH_S, SpeakerLabeller

SOUNDS = Path("/usr/share/asterisk/sounds")
REP_VOICE = "en_US_f_Allison"
#: Customer voices: directory under SOUNDS (8 kHz WAV prompts), or pyannote sample speakers.
PROMPT_VOICES = (
    "fr_CA_f_June",
    "it_IT_m_Carlo",
    "it_IT_f_Menardi",
    "ru_RU_f_IvrvoiceRU",
    "es_MX_f_Allison",
)
SAMPLE = Path(__file__).resolve().parents[1] / "data" / "diarization" / "sample.wav"
#: Single-speaker stretches of the pyannote sample (seconds; from its RTTM, overlaps left out).
SAMPLE_VOICES = {
    "speaker90": ((8.32, 9.90), (10.60, 14.45), (18.60, 21.45), (27.90, 29.95)),
    "speaker91": ((14.80, 17.90), (22.00, 24.90), (24.90, 27.80)),
}
CUSTOMER_VOICES = PROMPT_VOICES + tuple(SAMPLE_VOICES)

_MAX_CLIP_S = 6.0


def available() -> bool:
    return (SOUNDS / REP_VOICE).is_dir() and all((SOUNDS / v).is_dir() for v in PROMPT_VOICES)


def _read(path: Path) -> np.ndarray:
    with wave.open(str(path)) as w:
        pcm = np.frombuffer(w.readframes(w.getnframes()), np.int16).copy()
        return pcm if w.getframerate() == 8000 else resample(pcm, w.getframerate(), 8000)


def _trim(pcm: np.ndarray) -> np.ndarray:
    """Leading/trailing silence off: a turn is the words, the call adds its own pauses."""
    if not len(pcm):
        return pcm
    level = np.abs(pcm.astype(np.int32))
    loud = np.flatnonzero(level > 0.05 * max(1, int(level.max())))
    return pcm[max(0, loud[0] - 400) : loud[-1] + 400] if len(loud) else pcm[:0]


def voice_clips(voice: str, min_clip_s: float = 1.0) -> list[np.ndarray]:
    """A voice's clips (8 kHz int16, silence trimmed, ``min_clip_s``-6 s), in a fixed order."""
    if voice in SAMPLE_VOICES:
        with wave.open(str(SAMPLE)) as w:
            pcm = np.frombuffer(w.readframes(w.getnframes()), np.int16)
        cuts = [pcm[int(a * 16000) : int(b * 16000)] for a, b in SAMPLE_VOICES[voice]]
        return [resample(c, 16000, 8000) for c in cuts]
    clips = []
    for path in sorted((SOUNDS / voice).glob("*.wav")):
        pcm = _trim(_read(path))
        if min_clip_s * 8000 <= len(pcm) <= _MAX_CLIP_S * 8000:
            clips.append(pcm)
    return clips


def telephone(pcm8k: np.ndarray) -> np.ndarray:
    """Through a G.711 µ-law leg, then to 16 kHz (a Vonage mixed stream)."""
    return resample(ulaw_decode(ulaw_encode(pcm8k)), 8000, 16000)


def enrol(encoder: SpeakerEncoder, calls: list[list[np.ndarray]]) -> Voiceprint:
    """The rep's print after ``calls`` two-track calls (each a list of 8 kHz rep turns)."""
    printed: Voiceprint | None = None
    for turns in calls:
        kept: list = []
        learner = RepVoiceLearner(kept.append)
        pause = np.zeros(4000, np.int16)  # the customer's turn: silence on the rep's track
        track = ulaw_decode(ulaw_encode(np.concatenate([x for t in turns for x in (t, pause)])))
        for i in range(0, len(track) - 159, 160):
            learner.on_audio(AudioFrame(track[i : i + 160].copy(), 8000, Party.REP, i // 8))
        asyncio.run(learner.close(False))
        if not kept:
            continue
        fresh = build_voiceprint(encoder, kept[0])
        printed = fresh if printed is None else printed.merged(fresh)
    if printed is None:
        raise ValueError("no rep speech to enrol")
    return printed


@dataclass(frozen=True, slots=True)
class Turn:
    start_ms: int
    end_ms: int
    who: str  # "rep" or "customer"


def mixed_call(
    rep_turns: list[np.ndarray],
    customer_turns: list[np.ndarray],
    rng: np.random.Generator,
    rep_first: bool,
    gaps_s: tuple[float, float] = (0.4, 1.2),
) -> tuple[np.ndarray, list[Turn]]:
    """Alternating turns (8 kHz clips) with pauses drawn from ``gaps_s``; 16 kHz telephone audio."""
    order = [("rep", rep_turns), ("customer", customer_turns)]
    if not rep_first:
        order.reverse()
    pieces, turns, t = [np.zeros(8000, np.int16)], [], 1000
    for pair in zip(order[0][1], order[1][1], strict=False):
        for (who, _), clip in zip(order, pair, strict=True):
            turns.append(Turn(t, t + len(clip) // 8, who))
            gap = int(rng.uniform(*gaps_s) * 8000)
            pieces += [clip, np.zeros(gap, np.int16)]
            t += (len(clip) + gap) // 8
    pieces.append(np.zeros(16000, np.int16))  # the last final is published before hang-up
    return telephone(np.concatenate(pieces)), turns


def label_call(
    encoder: SpeakerEncoder,
    rep_print: np.ndarray | None,
    pcm16k: np.ndarray,
    turns: list[Turn],
    final_delay_ms: int = 800,
) -> list[str | None]:
    """The speaker each turn's final segment is published with (None: left unnamed)."""
    labeller = SpeakerLabeller(encoder, rep_print)
    frame, per_batch = 320, int(BATCH_S * 1000) // 20
    due = sorted(range(len(turns)), key=lambda j: turns[j].end_ms)
    named: list[str | None] = [None] * len(turns)
    batch: list[AudioFrame] = []
    for n, i in enumerate(range(0, len(pcm16k) - frame + 1, frame)):
        batch.append(AudioFrame(pcm16k[i : i + frame].copy(), 16000, Party.MIXED, i // 16))
        if len(batch) == per_batch:
            labeller.feed_now(batch)
            batch = []
        now_ms = (n + 1) * 20
        while due and turns[due[0]].end_ms + final_delay_ms <= now_ms:
            j = due.pop(0)
            named[j] = labeller.speaker_for(turns[j].start_ms, turns[j].end_ms)
    for j in due:
        named[j] = labeller.speaker_for(turns[j].start_ms, turns[j].end_ms)
    return named


@dataclass(frozen=True, slots=True)
class Score:
    segments: int
    correct: int
    unnamed: int
    speech_ms: int
    correct_ms: int

    @property
    def rate(self) -> float:
        return self.correct / self.segments if self.segments else 0.0

    @property
    def time_rate(self) -> float:
        return self.correct_ms / self.speech_ms if self.speech_ms else 0.0

    def __add__(self, other: Score) -> Score:
        return Score(*(a + b for a, b in zip(self._tuple(), other._tuple(), strict=True)))

    def _tuple(self) -> tuple[int, ...]:
        return (self.segments, self.correct, self.unnamed, self.speech_ms, self.correct_ms)


def score(turns: list[Turn], named: list[str | None]) -> Score:
    correct = [t.who == n for t, n in zip(turns, named, strict=True)]
    return Score(
        len(turns),
        sum(correct),
        sum(n not in ("rep", "customer") for n in named),
        sum(t.end_ms - t.start_ms for t in turns),
        sum(t.end_ms - t.start_ms for t, ok in zip(turns, correct, strict=True) if ok),
    )


@dataclass
class World:
    """The fixed split of the rep's clips: enrolment calls first, mixed calls after."""

    rep_clips: list[np.ndarray]
    customers: dict[str, list[np.ndarray]]

    @classmethod
    def load(cls, min_clip_s: float = 1.0, voices: tuple[str, ...] = CUSTOMER_VOICES) -> World:
        return cls(voice_clips(REP_VOICE), {v: voice_clips(v, min_clip_s) for v in voices})

    def enrolment_calls(self, n: int, turns_per_call: int = 10) -> list[list[np.ndarray]]:
        """N earlier calls, ``turns_per_call`` rep turns each (the rep's half of a short call)."""
        return [self.rep_clips[c * turns_per_call : (c + 1) * turns_per_call] for c in range(n)]

    def mixed_calls(
        self,
        per_voice: int,
        turns: int,
        seed: int = 7,
        voices: tuple[str, ...] = CUSTOMER_VOICES,
        gaps_s: tuple[float, float] = (0.4, 1.2),
    ):
        """(voice, pcm16k, turns) per call; rep clips from the back of the list, never enrolled."""
        rng = np.random.default_rng(seed)
        rep_pool = self.rep_clips[::-1]
        used = 0
        for voice in voices:
            clips = self.customers[voice]
            for c in range(per_voice):
                rep = rep_pool[used : used + turns]
                used += turns
                cust = [clips[(c * turns + k) % len(clips)] for k in range(turns)]
                pcm, ref = mixed_call(rep, cust, rng, rep_first=bool(c % 2), gaps_s=gaps_s)
                yield voice, pcm, ref
