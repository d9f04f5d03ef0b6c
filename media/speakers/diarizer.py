# Long module: one streaming diarizer (VAD, windowing, online clustering, enrolled naming, second pass) sharing one state
"""Online diarization: who speaks when on one live mixed-channel call.

``OnlineDiarizer`` embeds a sliding window over the speech of the call
every ``hop_ms`` (with ``media.speakers.encoder.SpeakerEncoder``) and
clusters the embeddings online (cosine to running centroids), so each
stretch of speech gets a speaker label about one window after it was
spoken. ``enrol()`` takes the rep's voiceprint (from earlier calls, see
``media.voiceprints``) and the diarizer then labels that voice ``rep`` and
every other voice ``customer``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from media.frames import AudioFrame, Party
from media.resample import Resampler
from media.speakers.clustering import farthest_first, kmeans, unit_rows
from media.speakers.encoder import (
    EMBEDDING_SIZE,
    ENCODER_RATE,
    SpeakerAudioError,
    SpeakerEncoder,
    check_pcm,
    cosine,
)

__all__ = ["DiarizerOptions", "OnlineDiarizer", "SpeakerTurn"]


@dataclass(frozen=True, slots=True)
class DiarizerOptions:
    """Tuning of ``OnlineDiarizer`` (defaults measured on the pyannote sample; see docs/speech.md)."""

    #: Speech embedded per decision; the encoder was trained on 1.6 s.
    window_ms: int = 1600
    #: One decision (and one embedding) per hop of speech; labels lag by window/2 + hop.
    hop_ms: int = 400
    #: How many voices the call has. A phone call has two parties, so by default the
    #: diarizer splits the call's speech into two voices as soon as it has
    #: ``min_split_windows`` windows. None: decide from ``split_threshold`` instead.
    expected_speakers: int | None = 2
    #: With ``expected_speakers=None``: split off a second voice only when the two halves'
    #: mean embeddings have a cosine below this (same voice measured 0.91, two voices 0.89
    #: on the pyannote sample: a thin margin, hence the default above).
    split_threshold: float = 0.90
    #: Windows of speech needed before the first split (about 2.5 s at the default hop).
    min_split_windows: int = 6
    #: Every this many windows the voices are re-estimated from all recent windows.
    refine_every: int = 4
    #: How many recent window embeddings the re-estimation keeps.
    history_windows: int = 600
    #: A voice is the rep's when its cosine to the enrolled voiceprint is at least this
    #: and it is the closest voice (or within ``rep_margin`` of it). At telephone quality
    #: the rep's held-out speech measured 0.87-0.91 to a print from one earlier call,
    #: six other real voices 0.61-0.86 (95th percentiles; scripts/bench/rep_naming.py).
    rep_threshold: float = 0.84
    #: How much less close than the closest voice a second voice may be and still be the rep.
    rep_margin: float = 0.03
    #: Once the rep is enrolled, each window is the rep's when its own cosine to the print
    #: is at least this, else a customer's: no wait for the call's voices to be told apart
    #: (1.6 s telephone windows: 99 % of the rep's above 0.80, 99 % of six other voices'
    #: below; scripts/bench/rep_naming.py). The clustering still runs, for second_pass.
    rep_window_threshold: float = 0.80
    #: Speech frames (10 ms) are those this many dB above the noise floor ...
    vad_margin_db: float = 12.0
    #: ... and above this absolute level (dBFS).
    vad_floor_dbfs: float = -55.0
    #: A hop is speech when at least this share of its frames is.
    min_speech_share: float = 0.25
    #: Windows with less speech than this are not embedded (noise, breaths, clicks); their
    #: speech goes to the voice of the turn in progress, if any.
    min_window_speech_ms: int = 700
    #: Pauses up to this long inside one speaker's turn do not split it.
    max_pause_ms: int = 500

    def __post_init__(self) -> None:
        if self.window_ms < 400 or self.window_ms > 1600:
            raise ValueError("window_ms must be within 400..1600")
        if not 50 <= self.hop_ms <= self.window_ms:
            raise ValueError("hop_ms must be within 50..window_ms")
        if self.hop_ms % 10:
            raise ValueError("hop_ms must be a multiple of 10 ms")
        if self.expected_speakers is not None and not 1 <= self.expected_speakers <= 8:
            raise ValueError("expected_speakers must be within 1..8 (or None)")
        if not 0.0 <= self.rep_margin < 1.0:
            raise ValueError("rep_margin must be within 0..1")
        cosines = (self.split_threshold, self.rep_threshold, self.rep_window_threshold)
        if not all(-1.0 < c < 1.0 for c in cosines):
            raise ValueError("split_threshold and the rep thresholds must be cosines in (-1, 1)")
        if self.min_split_windows < 2 or self.refine_every < 1:
            raise ValueError("min_split_windows must be >= 2 and refine_every >= 1")
        if self.history_windows < self.min_split_windows:
            raise ValueError("history_windows must be >= min_split_windows")


@dataclass(frozen=True, slots=True)
class SpeakerTurn:
    """One stretch of one voice on the call clock.

    ``speaker`` is ``rep`` / ``customer`` once the rep is enrolled, else
    ``speaker_1``, ``speaker_2``, ... in order of first appearance.
    ``similarity`` is the mean cosine of the turn's windows to the voice.
    """

    start_ms: int
    end_ms: int
    speaker: str
    party: Party
    similarity: float


_FRAME_MS = 10
_FRAME = ENCODER_RATE * _FRAME_MS // 1000
# Noise floor: a low percentile of the last 10 s of frame levels; long enough
# that a monologue does not become "noise", short enough to follow a line change.
_NOISE_HISTORY_FRAMES = 1000
_NOISE_PERCENTILE = 5
# Voice indices of windows decided by the enrolled print rather than the clustering.
_REP, _CUSTOMER = -1, -2


class OnlineDiarizer:
    """Incremental "who spoke when" for one mixed-channel call.

    Feed audio with ``push(frame)`` (any supported rate; resampled to 16 kHz)
    or whole VAD-bounded speech turns with ``add_turn``. ``push`` returns the
    turns that have closed since the last call; ``flush`` closes the rest at
    the end of the call. ``current`` says who is speaking right now (as far
    as decided). Not thread-safe; one instance per call, sharing one encoder.
    """

    def __init__(
        self,
        encoder: SpeakerEncoder,
        options: DiarizerOptions | None = None,
        keep_windows: bool = False,
    ) -> None:
        self.encoder = encoder
        # Every decided hop and its embedding, for ``second_pass`` (recordings only:
        # it grows with the call, about 2.5 kB per hop).
        self._blocks: list[tuple[int, np.ndarray, np.ndarray | None]] | None = (
            [] if keep_windows else None
        )
        self.options = options or DiarizerOptions()
        o = self.options
        self._hop = ENCODER_RATE * o.hop_ms // 1000
        self._window = ENCODER_RATE * o.window_ms // 1000
        self._raw: list[np.ndarray] = []  # per voice: unit mean of its window embeddings
        self._centred: np.ndarray | None = None  # per voice: unit centre after removing _mean
        self._mean = np.zeros(EMBEDDING_SIZE)
        self._history: list[np.ndarray] = []  # recent window embeddings
        self._since_refine = 0
        self._rep_print: np.ndarray | None = None
        # Stream state: 16 kHz float audio from sample index self._base on.
        self._origin_ms: int | None = None
        self._next_sample = 0  # absolute index of the next sample to arrive
        self._base = 0
        self._audio = np.zeros(0, np.float32)
        self._flags: list[bool] = []  # speech per 10 ms frame, absolute from frame self._frame_base
        self._frame_base = 0
        self._noise: list[float] = []
        self._next_block = 0
        self._resampler: Resampler | None = None
        self._input_rate = 0
        self._expected_ms = 0.0  # call-clock end of the audio received so far
        # The turn being built: [voice index, start frame, last speech frame, similarity sum, n].
        self._open: list | None = None
        self._closed: list[SpeakerTurn] = []

    # -- enrolment -----------------------------------------------------------

    def enrol(self, rep_embedding: np.ndarray) -> None:
        """Tell the diarizer what the rep sounds like; that voice becomes ``rep``, others ``customer``.

        May be called before or during the call; turns already returned keep their labels.
        """
        e = np.asarray(rep_embedding, dtype=np.float64)
        if e.shape != (EMBEDDING_SIZE,) or not np.all(np.isfinite(e)) or np.linalg.norm(e) == 0:
            raise ValueError(f"rep embedding must be a finite non-zero vector of {EMBEDDING_SIZE}")
        if self._rep_print is not None:
            raise ValueError("a rep voiceprint is already enrolled on this call")
        self._rep_print = e / np.linalg.norm(e)

    @property
    def enrolled(self) -> bool:
        return self._rep_print is not None

    @property
    def voices(self) -> int:
        """How many voices have been told apart so far."""
        return len(self._raw)

    def _rep_voices(self) -> set[int]:
        """The voices that are the rep's: the closest to the print, if it is close enough.

        A second voice is the rep's too when it is as close as the closest (within
        ``rep_margin``): early in a call the two-voice split can halve one voice,
        and both halves of the rep are the rep. Both halves of a customer who
        spoke first stay below ``rep_threshold``, so neither becomes the rep.
        """
        if self._rep_print is None or not self._raw:
            return set()
        sims = [cosine(c, self._rep_print) for c in self._raw]
        best = max(sims)
        if best < self.options.rep_threshold:
            return set()
        return {
            j
            for j, s in enumerate(sims)
            if s >= self.options.rep_threshold and best - s <= self.options.rep_margin
        }

    def _voice_of(self, e: np.ndarray) -> tuple[int, float]:
        """Voice index and cosine for one window; enrolled: ``_REP`` / ``_CUSTOMER`` by the print."""
        index, sim = self._assign(e)
        if self._rep_print is None:
            return index, sim
        to_print = cosine(self._rep_print, e)
        if to_print >= self.options.rep_window_threshold:
            return _REP, to_print
        return _CUSTOMER, sim

    def label(self, voice_index: int) -> tuple[str, Party]:
        """(speaker, party) for a voice: rep/customer once enrolled, else speaker_N."""
        if voice_index == _REP:
            return "rep", Party.REP
        if voice_index == _CUSTOMER:
            return "customer", Party.CUSTOMER
        if self._rep_print is not None:
            if voice_index in self._rep_voices():
                return "rep", Party.REP
            return "customer", Party.CUSTOMER
        return f"speaker_{voice_index + 1}", Party.MIXED

    # -- clustering ----------------------------------------------------------

    def _assign(self, e: np.ndarray) -> tuple[int, float]:
        """Voice index (and cosine to that voice) for one window embedding."""
        o = self.options
        self._history.append(np.asarray(e, np.float64))
        if len(self._history) > o.history_windows:
            del self._history[0]
        self._since_refine += 1
        if len(self._history) >= o.min_split_windows and self._since_refine >= o.refine_every:
            self._refine()
        if not self._raw:
            self._raw = [np.asarray(e, np.float64)]
            self._centred = None
        if len(self._raw) == 1:
            return 0, cosine(self._raw[0], e)
        # Speaker differences live in small deviations from what the whole call
        # sounds like (line, codec, room): compare after removing the call's mean.
        centred = unit_rows(np.asarray(e, np.float64) - self._mean)
        index = int(np.argmax(self._centred @ centred))
        return index, cosine(self._raw[index], e)

    def _refine(self) -> None:
        """Re-estimate the voices by k-means over recent windows (mean removed).

        Started from the current voices when there are as many as wanted, so
        voice numbers stay put; otherwise from the most dissimilar windows,
        then renumbered so the voice heard first stays ``speaker_1``.
        """
        o = self.options
        self._since_refine = 0
        raw = np.asarray(self._history)
        mean = raw.mean(axis=0)
        points = unit_rows(raw - mean)
        k = o.expected_speakers if o.expected_speakers is not None else min(2, len(self._raw) + 1)
        if k < 2:
            return
        if self._centred is not None and len(self._raw) == k:
            init = unit_rows(np.stack(self._raw) - mean)
        else:
            init = farthest_first(points, k)
        owner, centres = kmeans(points, init)
        counts = np.bincount(owner, minlength=k)
        if np.any(counts == 0):
            return
        means = [unit_rows(raw[owner == j].mean(axis=0)) for j in range(k)]
        if (
            o.expected_speakers is None
            and len(self._raw) < 2
            and cosine(means[0], means[1]) >= o.split_threshold
        ):
            return
        if len(self._raw) != k:
            # New voices: number them by first appearance in the kept history.
            order = sorted(range(k), key=lambda j: int(np.argmax(owner == j)))
        else:
            order = list(range(k))
        self._raw = [means[j] for j in order]
        self._centred = centres[order]
        self._mean = mean

    # -- streaming audio -----------------------------------------------------

    def push(self, frame: AudioFrame) -> list[SpeakerTurn]:
        """Add one frame of the mixed channel; returns turns closed since the last call."""
        if not isinstance(frame, AudioFrame):
            raise SpeakerAudioError("OnlineDiarizer.push expects an AudioFrame")
        if self._origin_ms is None:
            self._origin_ms = self._expected_ms = frame.timestamp_ms
            if frame.sample_rate != ENCODER_RATE:
                # Streaming (stateful) resampler: per-frame one-shot resampling
                # would put a filter edge every 20 ms.
                self._resampler = Resampler(frame.sample_rate, ENCODER_RATE)
            self._input_rate = frame.sample_rate
        elif frame.sample_rate != self._input_rate:
            raise SpeakerAudioError(
                f"sample rate changed mid-call ({self._input_rate} -> {frame.sample_rate} Hz)"
            )
        check_pcm(frame.pcm, frame.sample_rate)
        pcm = self._resampler.process(frame.pcm) if self._resampler else frame.pcm
        wav = pcm.astype(np.float32) / 32768.0
        # A gap on the call clock (lost packets, muted leg) is silence, so times stay aligned.
        gap_ms = frame.timestamp_ms - self._expected_ms
        if gap_ms > 2 * _FRAME_MS:
            wav = np.concatenate([np.zeros(gap_ms * ENCODER_RATE // 1000, np.float32), wav])
        self._expected_ms = max(self._expected_ms, frame.timestamp_ms) + frame.duration_ms
        self._append(wav)
        self._decide(final=False)
        return self._take_closed()

    def push_pcm(
        self, pcm: np.ndarray, sample_rate: int, timestamp_ms: int = 0
    ) -> list[SpeakerTurn]:
        """``push`` for raw PCM16 (e.g. a recording read in one piece)."""
        return self.push(AudioFrame(pcm, sample_rate, Party.MIXED, timestamp_ms))

    def flush(self) -> list[SpeakerTurn]:
        """End of call: decide what is left and close the open turn."""
        if self._resampler is not None:
            self._append(self._resampler.flush().astype(np.float32) / 32768.0)
        self._decide(final=True)
        self._close_open()
        return self._take_closed()

    @property
    def current(self) -> tuple[str, Party] | None:
        """The voice of the turn in progress, or None during silence / before a decision."""
        return self.label(self._open[0]) if self._open else None

    def add_turn(self, pcm: np.ndarray, sample_rate: int, start_ms: int) -> SpeakerTurn:
        """Attribute one VAD-bounded speech turn as a whole (no sliding window)."""
        e = self.encoder.embed(pcm, sample_rate)
        index, sim = self._voice_of(e)
        speaker, party = self.label(index)
        end_ms = start_ms + 1000 * len(pcm) // sample_rate
        return SpeakerTurn(start_ms, end_ms, speaker, party, round(sim, 4))

    # -- internals -----------------------------------------------------------

    def _append(self, wav: np.ndarray) -> None:
        self._audio = np.concatenate([self._audio, wav])
        self._next_sample += len(wav)
        # Speech flags for every complete 10 ms frame not yet measured.
        first, last = self._measured, self._next_sample // _FRAME
        if last > first:
            seg = self._audio[first * _FRAME - self._base : last * _FRAME - self._base]
            power = np.mean(np.square(seg.reshape(-1, _FRAME), dtype=np.float64), axis=1)
            self._flags.extend(self._classify(10 * np.log10(power + 1e-12)))

    @property
    def _measured(self) -> int:
        return self._frame_base + len(self._flags)

    def _classify(self, levels_db: np.ndarray) -> list[bool]:
        """Energy VAD: louder than an absolute floor and well above the recent noise floor."""
        o = self.options
        flags = []
        for db in levels_db.tolist():
            self._noise.append(db)
            if len(self._noise) > _NOISE_HISTORY_FRAMES:
                del self._noise[0]
            floor = float(np.percentile(self._noise, _NOISE_PERCENTILE))
            flags.append(db > o.vad_floor_dbfs and db > floor + o.vad_margin_db)
        return flags

    def _vad_levels(self, first: int, last: int) -> np.ndarray:
        return np.asarray(self._flags[first - self._frame_base : last - self._frame_base], bool)

    def _decide(self, final: bool) -> None:
        frames_per_block = self._hop // _FRAME
        half = self._window // 2
        ready: list[tuple[int, np.ndarray]] = []
        while True:
            k = self._next_block
            start, end = k * self._hop, (k + 1) * self._hop
            centre = (start + end) // 2
            if end > self._next_sample or (not final and centre + half > self._next_sample):
                break
            flags = self._vad_levels(start // _FRAME, start // _FRAME + frames_per_block)
            ready.append((k, flags))
            self._next_block += 1
        if not ready:
            return
        o = self.options
        speech, windows = [], []
        for k, flags in ready:
            if flags.mean() < o.min_speech_share:
                continue
            window = self._speech_window(k * self._hop + self._hop // 2)
            if len(window) * 1000 < o.min_window_speech_ms * ENCODER_RATE:
                continue
            speech.append((k, flags))
            windows.append(window)
        embeddings = self.encoder.embed_batch(windows)
        labels = {k: self._voice_of(e) for (k, _), e in zip(speech, embeddings)}
        by_block = {k: e for (k, _), e in zip(speech, embeddings)}
        for k, flags in ready:
            index, sim = labels.get(k, (None, 0.0))
            self._emit_block(k, flags, index, sim)
            if self._blocks is not None:
                self._blocks.append((k, flags, by_block.get(k)))
        self._trim()

    def _emit_block(self, k: int, flags: np.ndarray, index: int | None, sim: float) -> None:
        """Grow, switch or close the turn in progress with one decided hop."""
        frames_per_block = self._hop // _FRAME
        if index is None and self._open and flags.any():
            index = self._open[0]
        for j, is_speech in enumerate(flags):
            frame = k * frames_per_block + j
            if is_speech and index is not None:
                self._extend(index, frame)
            elif self._open and (frame - self._open[2]) * _FRAME_MS > self.options.max_pause_ms:
                self._close_open()
        if index is not None and self._open and self._open[0] == index:
            self._open[3] += sim
            self._open[4] += 1

    def second_pass(self) -> list[SpeakerTurn]:
        """After ``flush``: all turns again, every window re-assigned to the final voices.

        For recordings, where nothing has to be decided early: the voices are
        re-estimated from every window of the call and each hop is labelled
        with them, so the first seconds get the same quality as the rest.
        Needs ``keep_windows=True`` at construction.
        """
        if self._blocks is None:
            raise RuntimeError("second_pass needs OnlineDiarizer(..., keep_windows=True)")
        embedded = [e for _, _, e in self._blocks if e is not None]
        if len(embedded) >= self.options.min_split_windows:
            self._history = [np.asarray(e, np.float64) for e in embedded]
            self._refine()
        self._open = None
        decided: list[tuple[int | None, float]] = []
        for _, _, e in self._blocks:
            if e is None:
                decided.append((None, 0.0))
                continue
            index = 0
            if len(self._raw) > 1:
                centred = unit_rows(np.asarray(e, np.float64) - self._mean)
                index = int(np.argmax(self._centred @ centred))
            decided.append((index, cosine(self._raw[index], e)))
        # Speech too short to embed that starts a turn (e.g. the first word of the
        # call) takes the voice of the next decided hop, when that is near.
        reach = max(1, self.options.max_pause_ms // self.options.hop_ms)
        for i in range(len(decided) - 1, -1, -1):
            if decided[i][0] is None and i + 1 < len(decided) and self._blocks[i][1].any():
                ahead = next(
                    (
                        j
                        for j in range(i + 1, min(len(decided), i + 1 + reach))
                        if decided[j][0] is not None
                    ),
                    None,
                )
                if ahead is not None:
                    decided[i] = (decided[ahead][0], 0.0)
        for (k, flags, _), (index, sim) in zip(self._blocks, decided):
            self._emit_block(k, flags, index, sim)
        self._close_open()
        return self._take_closed()

    def _speech_window(self, centre: int) -> np.ndarray:
        """Up to one window of *speech* samples nearest ``centre`` (silence left out).

        Looks back up to a full window but ahead only half of one, so a
        decision never waits longer than window/2 for future audio.
        """
        first = max(self._frame_base, (centre - self._window) // _FRAME)
        last = min(self._measured, (centre + self._window // 2) // _FRAME)
        flags = self._vad_levels(first, last)
        frames = np.flatnonzero(flags) + first
        if len(frames) == 0:
            return np.zeros(0, np.float32)
        wanted = self._window // _FRAME
        if len(frames) > wanted:
            nearest = np.argsort(np.abs(frames * _FRAME + _FRAME // 2 - centre), kind="stable")
            frames = np.sort(frames[nearest[:wanted]])
        offsets = (frames * _FRAME - self._base)[:, None] + np.arange(_FRAME)[None, :]
        return self._audio[offsets.ravel()]

    def _extend(self, index: int, frame: int) -> None:
        if self._open and self._open[0] != index:
            self._close_open()
        if self._open is None:
            self._open = [index, frame, frame, 0.0, 0]
        self._open[2] = frame

    def _close_open(self) -> None:
        if self._open is None:
            return
        index, first, last, sim_sum, blocks = self._open
        speaker, party = self.label(index)
        origin = self._origin_ms or 0
        self._closed.append(
            SpeakerTurn(
                origin + first * _FRAME_MS,
                origin + (last + 1) * _FRAME_MS,
                speaker,
                party,
                round(sim_sum / blocks, 4) if blocks else 0.0,
            )
        )
        self._open = None

    def _take_closed(self) -> list[SpeakerTurn]:
        out, self._closed = self._closed, []
        return out

    def _trim(self) -> None:
        # Keep only the audio a future window can still reach.
        # A window reaches back one full window from its centre.
        keep_from = max(0, self._next_block * self._hop - self._window)
        if keep_from > self._base:
            self._audio = self._audio[keep_from - self._base :]
            self._base = keep_from
        frame_keep = keep_from // _FRAME
        if frame_keep > self._frame_base:
            del self._flags[: frame_keep - self._frame_base]
            self._frame_base = frame_keep
