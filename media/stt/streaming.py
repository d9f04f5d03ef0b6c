"""Live transcription of one party: VAD-gated utterances, revised partials, timed finals.

``push(frame)`` is synchronous and cheap (resampling plus a VAD score per
32 ms); decoding happens in the shared ``SpeechModelPool``.  While someone
speaks, a partial decode of the utterance so far is requested every
``partial_interval_ms`` of new speech; words that two successive
partials agree on (LocalAgreement-2) become the segment's stable prefix
and never change in later partials.  At the VAD end of the utterance, or
when it reaches ``max_utterance_ms`` (cut at the quietest point), the
whole utterance is decoded once more with word timestamps: the final.
Silence never reaches the decoder.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import numpy as np

from media.frames import AudioFormatError, AudioFrame
from media.resample import Resampler
from media.stt.decoder import is_loop
from media.stt.engine import DecodeRequest, DecodeResult
from media.stt.pool import SpeechModelPool, copy_outcome
from media.text_normalize import normalize_words, written_form
from media.transcript import TranscriptSegment, Word
from media.vad import SpeechEnd, SpeechPause, SpeechStart, VadOptions, VoiceActivityDetector

log = logging.getLogger(__name__)

RATE = 16000
_SAMPLES_PER_MS = RATE // 1000
_MAX_WORDS_PER_S = 4.0  # sustained speech rarely passes ~3 words a second; auctioneers aside


def plausible_hypothesis(words: list[str], duration_ms: float) -> bool:
    """False for more words than anyone says in ``duration_ms``, or for a repeated phrase: what
    Whisper produces when it continues its prompt on too little audio ("Press 1 to cancel the
    message. Press 1 to cancel the message.")."""
    return len(words) <= _MAX_WORDS_PER_S * duration_ms / 1000 + 3 and not is_loop(" ".join(words))


class TranscriberClosedError(RuntimeError):
    """Audio was pushed to a transcriber after ``close()``."""


@dataclass(frozen=True, slots=True)
class StreamingOptions:
    partial_interval_ms: int = 300  # new speech between partial decodes (the pool sheds them under load)
    # a word followed by this many words in the latest hypothesis is committed even without two
    # agreeing hypotheses: Whisper rarely changes a word once it has that much right context, and
    # it bounds how long a word flip-flopping between hypotheses ("At" / "And") stays unstable
    # (0 turns the rule off: LocalAgreement-2 only)
    stable_holdback_words: int = 3
    # one-pass stability: a partial's word that ends at least this long before the end of the
    # audio decoded, with at least this probability, is stable at once (with its predecessors);
    # needs word times on partials (0 turns the rule off)
    stable_margin_ms: int = 0
    stable_min_probability: float = 0.6
    max_utterance_ms: int = 9600  # longer speech is cut (fits the 10 s encoder window)
    max_gap_fill_ms: int = 2000  # a timestamp jump up to this is filled with silence
    context_chars: int = 400  # previous final text kept as the prompt (the decoder cuts it to tokens)
    vad: VadOptions = field(default_factory=VadOptions)


class StreamingTranscriber:
    """Transcribes one party of one call; iterate it (``async for``) to receive segments."""

    def __init__(
        self,
        party: str,
        pool: SpeechModelPool,
        *,
        stream_id: str | None = None,
        options: StreamingOptions | None = None,
        hotwords: str | None = None,
        initial_prompt: str | None = None,
    ):
        self.party = str(party)
        self.options = options or StreamingOptions()
        self._pool = pool
        self._stream_id = stream_id or f"{id(self):x}:{self.party}"
        self._hotwords = hotwords
        self._context = (initial_prompt or "").strip()
        self._vad = VoiceActivityDetector(pool.vad_model, self.options.vad)
        self._out: asyncio.Queue[TranscriptSegment | None] = asyncio.Queue()
        self._finals_pending: set[asyncio.Future] = set()
        self._closed = False
        self._input_rate: int | None = None
        self._resample = None
        self._origin_ms: float | None = None  # call-clock time of sample 0
        # 16 kHz audio kept from sample self._buf_start on, as the frames came (joined only to decode)
        self._chunks: deque[np.ndarray] = deque()
        self._buf_start = 0
        self._total = 0  # 16 kHz samples received so far
        self._utterance = 0
        self._utt_start: int | None = None
        self._probs: list[tuple[int, float]] = []  # (window end sample, speech probability)
        self._last_partial_at = 0
        self._revision = 0
        self._previous_hypothesis: list[str] = []
        self._stable: list[str] = []
        self._last_partial_shown: tuple[str, int] = ("", 0)  # text and stable words last emitted
        self._early: tuple[int, asyncio.Future] | None = None  # (end sample, decode) begun at a pause
        self._last_final: asyncio.Future | None = None  # the latest final decode asked for

    # -- input ---------------------------------------------------------------------------------

    def push(self, frame: AudioFrame) -> None:
        """Add one frame of this party's audio (any supported rate; 8 kHz telephone is typical)."""
        if self._closed:
            raise TranscriberClosedError("push() after close()")
        if str(frame.party) != self.party:
            raise AudioFormatError(f"frame of party {frame.party!s} pushed to the {self.party} transcriber")
        if self._input_rate is None:
            self._input_rate = frame.sample_rate
            if frame.sample_rate != RATE:
                self._resample = Resampler(frame.sample_rate, RATE).process
            self._origin_ms = float(frame.timestamp_ms)
        elif frame.sample_rate != self._input_rate:
            raise AudioFormatError(
                f"sample rate changed mid-stream from {self._input_rate} to {frame.sample_rate} Hz"
            )
        if len(frame.pcm) == 0:
            return  # carriers send empty keep-alive frames; they carry no time
        self._fill_gap(frame.timestamp_ms)
        pcm = self._resample(frame.pcm) if self._resample else frame.pcm
        self._append(pcm)

    def _fill_gap(self, timestamp_ms: int) -> None:
        expected_ms = self._origin_ms + self._total / _SAMPLES_PER_MS
        gap_ms = timestamp_ms - expected_ms
        if gap_ms <= 40:  # jitter and overlap: audio continuity matters more than the stamp
            return
        if gap_ms <= self.options.max_gap_fill_ms:
            self._append(np.zeros(int(gap_ms * _SAMPLES_PER_MS), np.int16))
            return
        # a long hole (hold, lost stream): close the utterance and move the clock past the hole
        if self._utt_start is not None:
            self._end_utterance(self._total)
        self._origin_ms += gap_ms

    def _append(self, pcm: np.ndarray) -> None:
        if len(pcm) == 0:
            return
        self._chunks.append(pcm)
        self._total += len(pcm)
        for event in self._vad.process(pcm):
            if isinstance(event, SpeechStart):
                self._utt_start = max(event.sample, self._buf_start)
                self._begin_utterance()
            elif isinstance(event, SpeechPause) and self._utt_start is not None:
                self._start_early_final(min(event.sample, self._total))
            elif isinstance(event, SpeechEnd) and self._utt_start is not None:
                self._end_utterance(min(event.sample, self._total))
        self._trim()
        if self._utt_start is None:
            return
        self._probs.append((self._total, self._vad.last_probability))
        length = self._total - self._utt_start
        if length >= self.options.max_utterance_ms * _SAMPLES_PER_MS:
            self._cut_long_utterance()
        elif (
            self._total - self._last_partial_at >= self.options.partial_interval_ms * _SAMPLES_PER_MS
            and not self._vad.in_pause  # nothing new is being said: a partial would repeat itself
        ):
            self._request_partial()

    def _trim(self) -> None:
        """Forget audio no decode can need: before the utterance, or beyond a future pre-roll."""
        if self._utt_start is not None:
            keep_from = self._utt_start
        else:
            vad = self.options.vad
            keep_from = self._total - (vad.pre_roll_ms + vad.min_speech_ms + 64) * _SAMPLES_PER_MS
        while self._chunks and self._buf_start + len(self._chunks[0]) <= keep_from:
            self._buf_start += len(self._chunks.popleft())

    # -- utterances ------------------------------------------------------------------------------

    def _begin_utterance(self) -> None:
        self._utterance += 1
        self._revision = 0
        self._probs = []
        self._previous_hypothesis = []
        self._stable = []
        self._last_partial_shown = ("", 0)
        self._last_partial_at = self._total
        if self._early is not None:
            self._early[1].cancel()
            self._early = None

    def _audio(self, start: int, end: int) -> np.ndarray:
        joined = np.concatenate(self._chunks) if self._chunks else np.zeros(0, np.int16)
        pcm = joined[start - self._buf_start : end - self._buf_start]
        return pcm.astype(np.float32) / 32768.0

    def _prompt(self) -> str | None:
        return self._context[-self.options.context_chars :] or None

    def _request(self, start: int, end: int, *, words: bool, prefix: str | None = None) -> DecodeRequest:
        return DecodeRequest(
            self._audio(start, end), self._prompt(), self._hotwords, prefix=prefix, word_timestamps=words
        )

    def _request_partial(self) -> None:
        self._last_partial_at = self._total
        start, end = self._utt_start, self._total
        # the stable words are forced as the decoder's prefix (as LocalAgreement streaming does):
        # the hypothesis cannot contradict what is already shown, and those tokens cost no search
        stable = list(self._stable)
        request = self._request(
            start, end, words=self.options.stable_margin_ms > 0, prefix=" ".join(stable) or None
        )
        future = self._pool.submit(self._stream_id, request, final=False)
        utterance = self._utterance
        # call-clock times are fixed now: a later hole in the stream moves the clock's origin
        span = (self._ms(start), self._ms(end))
        future.add_done_callback(lambda f: self._on_partial(f, utterance, span, stable))

    def _cut_long_utterance(self) -> None:
        # cut where the speech probability is lowest in the last 3 s: likely a pause between words
        horizon = self._total - 3000 * _SAMPLES_PER_MS
        candidates = [(p, s) for s, p in self._probs if s >= horizon] or [(0.0, self._total)]
        _, cut = min(candidates)
        self._end_utterance(cut)
        self._utt_start = cut
        self._begin_utterance()
        self._probs = [(s, p) for s, p in self._probs if s > cut]

    def _start_early_final(self, end: int) -> None:
        """Decode the utterance as it stands at a pause; used as the final if speech does not resume.

        The final's audio ends at the same sample as the pause's, so the result is the same, and the
        final shows up when the end-of-utterance silence is over instead of one decode later.
        """
        if self._early is not None:
            self._early[1].cancel()
        self._early = (end, self._submit_final(self._utt_start, end))

    def _submit_final(self, start: int, end: int) -> asyncio.Future:
        """Decode ``start..end`` as a final, prompted with the text of every earlier final.

        The prompt steers tiny.en a lot (the same 1.4 s of audio was heard as "Agent logged off"
        after the call's earlier sentences and as "Ladies, Lord Daph" without them), so it must
        not depend on how busy the pool is: while the previous final is still being decoded,
        this one waits for it and takes the prompt once its text is known. The same audio then
        gets the same transcript at any load and on every carrier.
        """
        audio = self._audio(start, end)  # now: the buffer is trimmed as the call goes on
        previous = self._last_final
        if previous is None or previous.done():
            future = self._pool.submit(self._stream_id, self._final_request(audio), final=True)
        else:
            future = asyncio.get_running_loop().create_future()
            # runs after the previous final's own callbacks, which added its text to the context
            previous.add_done_callback(lambda _: self._submit_when_due(audio, future))
        self._last_final = future
        return future

    def _final_request(self, audio: np.ndarray) -> DecodeRequest:
        return DecodeRequest(audio, self._prompt(), self._hotwords, word_timestamps=True)

    def _submit_when_due(self, audio: np.ndarray, future: asyncio.Future) -> None:
        if future.done():  # cancelled meanwhile (speech resumed after the pause)
            return
        if self._pool.closed:
            future.cancel()
            return
        decode = self._pool.submit(self._stream_id, self._final_request(audio), final=True)
        decode.add_done_callback(lambda d: copy_outcome(d, future))
        future.add_done_callback(lambda f: decode.cancel() if f.cancelled() else None)

    def _end_utterance(self, end: int) -> None:
        start, self._utt_start = self._utt_start, None
        shown_partial = self._revision > 0
        self._pool.forget(self._stream_id)
        early, self._early = self._early, None
        if early is not None and early[0] != end:
            early[1].cancel()  # speech went on after that pause: its decode is out of date
            early = None
        if end - start >= 100 * _SAMPLES_PER_MS:
            future = early[1] if early is not None else self._submit_final(start, end)
            self._finals_pending.add(future)
            utterance, revision = self._utterance, self._revision
            span = (self._ms(start), self._ms(end))
            future.add_done_callback(
                lambda f: self._on_final(f, utterance, revision, span, shown_partial)
            )

    # -- results ---------------------------------------------------------------------------------

    def _ms(self, sample: float) -> int:
        return round(self._origin_ms + sample / _SAMPLES_PER_MS)

    def _segment_id(self, utterance: int) -> str:
        return f"{self.party}-{utterance}"

    def _on_partial(
        self, future: asyncio.Future, utterance: int, span: tuple[int, int], prefix: list[str]
    ) -> None:
        if future.cancelled() or self._closed or utterance != self._utterance or self._utt_start is None:
            return
        if future.exception() is not None:
            log.warning("partial decode failed for %s: %s", self._stream_id, future.exception())
            return
        result: DecodeResult | None = future.result()
        if result is None:
            return
        words = prefix + result.text.split()
        if len(words) <= len(self._stable):
            # decoded against an older stable prefix that a newer hypothesis has since outgrown
            return
        start_ms, end_ms = span
        if not plausible_hypothesis(words, end_ms - start_ms):
            # shown or made stable, it would be forced into every later partial of the utterance
            log.debug("%s: implausible partial dropped: %r", self._stream_id, result.text)
            return
        aligned = result.words if len(result.words) == len(words) else ()
        self._extend_stable(words, self._settled(aligned, end_ms - start_ms))
        # the stable prefix stays as it was even when this hypothesis disagrees with it
        shown = self._stable + words[len(self._stable) :]
        text = " ".join(shown)
        # a hypothesis that only confirms words (same text, more of it stable) is news to the rep
        if (text, len(self._stable)) == self._last_partial_shown:
            return
        self._last_partial_shown = (text, len(self._stable))
        self._revision += 1
        if aligned and len(aligned) == len(shown):
            timed = tuple(
                Word(w, start_ms + round(a.start_s * 1000), start_ms + round(a.end_s * 1000),
                     round(a.probability, 4))
                for w, a in zip(shown, aligned, strict=True)
            )
        else:
            # without word times, spread the words over the audio so far; finals carry aligned times
            step = (end_ms - start_ms) / max(1, len(shown))
            timed = tuple(
                Word(w, int(start_ms + i * step), int(start_ms + (i + 1) * step), 0.0)
                for i, w in enumerate(shown)
            )
        self._out.put_nowait(
            TranscriptSegment(
                self._segment_id(utterance), self.party, text, start_ms, end_ms, timed,
                is_final=False, revision=self._revision, stable_words=len(self._stable),
            )
        )

    def _settled(self, aligned, duration_ms: int) -> int:
        """How many leading words of a partial are settled by their own times: each ends
        ``stable_margin_ms`` before the audio does (more speech after it was heard) and was
        heard with ``stable_min_probability``."""
        margin = self.options.stable_margin_ms
        if margin <= 0:
            return 0
        n = 0
        for word in aligned:
            if word.end_s * 1000 > duration_ms - margin or word.probability < self.options.stable_min_probability:
                break
            n += 1
        return n

    def _extend_stable(self, words: list[str], settled: int = 0) -> None:
        """Commit the words two successive hypotheses share beyond the stable part (LocalAgreement-2),
        and any word with ``stable_holdback_words`` words after it in the latest hypothesis.

        Both hypotheses began with the stable words (forced prefix), so they line up word by word.
        """
        previous, self._previous_hypothesis = self._previous_hypothesis, words
        n = len(self._stable)
        while (
            n < min(len(previous), len(words))
            and normalize_words(previous[n]) == normalize_words(words[n])
        ):
            n += 1
        # the last word of a hypothesis may be cut mid-way by the chunk edge: never commit it
        n = min(n, len(words) - 1)
        holdback = self.options.stable_holdback_words
        if holdback > 0:
            n = max(n, len(words) - holdback)
        n = max(n, settled)  # a word settled by its time may be the last: the margin covers the edge
        if n > len(self._stable):
            self._stable = self._stable + words[len(self._stable) : n]

    def _on_final(
        self, future: asyncio.Future, utterance: int, revision: int, span: tuple[int, int], shown: bool
    ) -> None:
        self._finals_pending.discard(future)
        if future.cancelled():
            return
        if future.exception() is not None:
            log.error("final decode failed for %s: %s", self._stream_id, future.exception())
            return
        result: DecodeResult = future.result()
        if not result.text and not shown:
            return  # nothing was said (or shown): no segment at all
        if result.text:
            self._context = (self._context + " " + result.text).strip()[-1000:]
        start_ms, end_ms = span
        words = written_form([
            Word(
                w.text,
                min(end_ms, start_ms + round(w.start_s * 1000)),
                min(end_ms, start_ms + round(w.end_s * 1000)),
                round(w.probability, 4),
            )
            for w in result.words
        ])
        # the text is its words, so everyone who rebuilds text from the words reads the same
        text = " ".join(w.text for w in words) if words else result.text
        if words:
            start_ms, end_ms = words[0].start_ms, max(words[-1].end_ms, words[0].start_ms)
        # an empty final retracts partials that turned out to be noise
        self._out.put_nowait(
            TranscriptSegment(
                self._segment_id(utterance), self.party, text, start_ms, end_ms, words,
                is_final=True, revision=revision + 1, stable_words=len(words),
            )
        )

    # -- output and shutdown ---------------------------------------------------------------------

    @property
    def speech_in_progress(self) -> bool:
        """An utterance is open, its final is being decoded, or segments await their reader."""
        return self._utt_start is not None or bool(self._finals_pending) or not self._out.empty()

    async def segments(self) -> AsyncIterator[TranscriptSegment]:
        """Partials and finals in the order they are ready; ends after ``close()``."""
        while True:
            segment = await self._out.get()
            if segment is None:
                return
            yield segment

    def __aiter__(self) -> AsyncIterator[TranscriptSegment]:
        return self.segments()

    async def close(self) -> None:
        """Finish the utterance in progress, wait for its final, then end the segment stream."""
        if self._closed:
            return
        if self._utt_start is not None:
            self._end_utterance(self._total)
        self._closed = True
        self._pool.forget(self._stream_id)
        if self._finals_pending:
            await asyncio.gather(*list(self._finals_pending), return_exceptions=True)
        self._out.put_nowait(None)
