"""One Whisper model (faster-whisper on CTranslate2) that decodes batches of short utterances.

faster-whisper's ``transcribe`` pads every chunk to 30 s of features, so a
2 s utterance costs as much encoder work as 30 s.  This decoder calls the
CTranslate2 model directly: the features of each batch are padded only to
the smallest *encoder window* that holds the longest utterance (the
windows are configurable; ``scripts/bench/stt.py`` measures their accuracy),
several utterances share one encoder and one greedy decoder call, and
word timestamps come from the same encoder output.
"""

from __future__ import annotations

import os
import string
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from media.stt.engine import SAMPLE_RATE, DecodedWord, DecodeRequest, DecodeResult

_FRAMES_PER_SECOND = 100  # Whisper's log-Mel hop is 10 ms
_MAX_FRAMES = 3000  # the encoder positional table holds 30 s


class DecoderError(RuntimeError):
    """The speech model could not be loaded or could not decode a request."""


@dataclass(frozen=True, slots=True)
class DecoderOptions:
    """How the model runs and decodes.

    ``encoder_windows_s`` are the encoder input lengths a batch may use;
    the shortest one that holds the batch's longest utterance is chosen.
    ``(30,)`` is Whisper's own behaviour (always pad to 30 s).
    """

    device: str = "cpu"
    compute_type: str = "int8"
    cpu_threads: int = 0  # 0: CTranslate2 picks (all cores)
    num_workers: int = 1  # decodes CTranslate2 runs at once (match the pool's workers)
    encoder_windows_s: tuple[int, ...] = (10, 20, 30)
    max_new_tokens: int = 120
    context_tokens: int = 48  # hot words + previous text given to the model, at most
    no_speech_threshold: float = 0.6
    log_prob_threshold: float = -1.0
    language: str = "en"


class WhisperDecoder:
    """Wraps ``faster_whisper.WhisperModel``; thread-safe for one caller at a time per batch.

    The speech pool's ``SpeechDecoder`` (``media.stt.engine``).
    """

    def __init__(self, model_dir: str | os.PathLike, options: DecoderOptions | None = None):
        from faster_whisper import WhisperModel
        from faster_whisper.tokenizer import Tokenizer

        self.options = options or DecoderOptions()
        path = Path(model_dir)
        # Nothing is downloaded: faster-whisper reads a model directory as it is
        # (local_files_only covers a hub name) and only fetches a tokenizer from the
        # hub when the directory lacks tokenizer.json, so both files are required here.
        for name in ("model.bin", "tokenizer.json"):
            if not (path / name).is_file():
                raise DecoderError(f"no CTranslate2 Whisper model in {path} ({name} missing)")
        try:
            self._whisper = WhisperModel(
                str(path),
                device=self.options.device,
                compute_type=self.options.compute_type,
                cpu_threads=self.options.cpu_threads,
                num_workers=self.options.num_workers,
                local_files_only=True,
            )
        except (RuntimeError, ValueError, OSError) as exc:
            raise DecoderError(f"cannot load the Whisper model in {path}: {exc}") from exc
        model = self._whisper.model
        language = self.options.language if model.is_multilingual else None
        self._tokenizer = Tokenizer(
            self._whisper.hf_tokenizer, model.is_multilingual, task="transcribe", language=language
        )
        self._suppress = list(self._tokenizer.non_speech_tokens) + [
            self._tokenizer.transcribe,
            self._tokenizer.translate,
            self._tokenizer.sot,
            self._tokenizer.sot_prev,
            self._tokenizer.sot_lm,
            self._tokenizer.no_timestamps,
        ]
        windows = sorted({int(w) for w in self.options.encoder_windows_s})
        if not windows or windows[0] <= 0 or windows[-1] > 30:
            raise DecoderError("encoder_windows_s must hold lengths between 1 and 30 seconds")
        self._windows_frames = [w * _FRAMES_PER_SECOND for w in windows]
        self.decodes = 0
        self.fallbacks = 0  # items re-decoded with the full window after a loop

    @property
    def max_audio_s(self) -> float:
        return self._windows_frames[-1] / _FRAMES_PER_SECOND

    def decode(self, requests: list[DecodeRequest]) -> list[DecodeResult]:
        """Decode a batch of utterances with greedy search (temperature 0).

        CTranslate2 needs the start-of-transcript token at the same position
        in every prompt of one generate call, so the batch is split into groups
        by context length (contexts are cut to ``context_tokens``, so a running
        call's prompts match).
        A short encoder window sometimes makes Whisper loop on a word
        ("Messages Messages Messages ..."); such items are decoded again
        alone with the full 30 s window, which does not loop.
        """
        if not requests:
            return []
        prompts = [self._prompt(r) for r in requests]
        groups: dict[int, list[int]] = {}
        sot = self._tokenizer.sot
        for i, prompt in enumerate(prompts):
            # only the start-of-transcript position must match; forced prefixes after it may differ
            groups.setdefault(prompt.index(sot), []).append(i)
        results: list[DecodeResult | None] = [None] * len(requests)
        full = [self._windows_frames[-1]]
        for members in groups.values():
            batch = [requests[i] for i in members]
            decoded, looped = self._decode(batch, [prompts[i] for i in members], self._windows_frames)
            for j in looped:
                self.fallbacks += 1
                decoded[j] = self._decode([batch[j]], [prompts[members[j]]], full)[0][0]
            for i, result in zip(members, decoded):
                results[i] = result
        self.decodes += len(requests)
        return results

    def _decode(
        self, requests: list[DecodeRequest], prompts: list[list[int]], windows: list[int]
    ) -> tuple[list[DecodeResult], list[int]]:
        features, num_frames = self._features(requests, windows)
        short_window = features.shape[-1] < _MAX_FRAMES
        encoder_output = self._whisper.encode(features)
        budgets = [_token_budget(len(r.audio) / SAMPLE_RATE) for r in requests]
        max_new = min(self.options.max_new_tokens, max(budgets))
        results = self._whisper.model.generate(
            encoder_output,
            prompts,
            beam_size=1,
            max_length=min(448, max(len(p) for p in prompts) + max_new),
            return_scores=True,
            return_no_speech_prob=True,
            suppress_blank=True,
            suppress_tokens=self._suppress,
            max_initial_timestamp_index=50,  # first segment starts within 1 s, as Whisper does
        )
        eot = self._tokenizer.eot
        token_lists: list[list[int]] = []
        decoded: list[DecodeResult] = []
        looped: list[int] = []
        sot_end = len(self._tokenizer.sot_sequence)
        for i, result in enumerate(results):
            # the result repeats a forced prefix (tokens after the SOT sequence): keep what follows
            forced = len(prompts[i]) - (prompts[i].index(self._tokenizer.sot) + sot_end)
            tokens = [t for t in result.sequences_ids[0][forced:] if t < eot]
            avg_logprob = result.scores[0] * len(tokens) / (len(tokens) + 1) if tokens else 0.0
            no_speech = float(result.no_speech_prob)
            text = self._tokenizer.decode(tokens).strip()
            if short_window and (len(tokens) >= budgets[i] or is_loop(text)):
                looped.append(i)
            # Whisper's own rule: a confident "no speech" with a weak transcript means silence
            if no_speech > self.options.no_speech_threshold and avg_logprob < self.options.log_prob_threshold:
                tokens, text = [], ""
            token_lists.append(tokens)
            decoded.append(DecodeResult(text, (), avg_logprob, no_speech))
        want_words = {
            i
            for i, r in enumerate(requests)
            if r.word_timestamps and i not in looped and (token_lists[i] or r.prefix)
        }
        if want_words:
            # a forced prefix is aligned with what follows it, so the words cover the whole
            # utterance; alignment takes the whole batch, items without text align an empty list
            aligned = [
                (self._tokenizer.encode(" " + r.prefix.strip()) if r.prefix else []) + token_lists[i]
                if i in want_words
                else []
                for i, r in enumerate(requests)
            ]
            alignments = self._whisper.find_alignment(
                self._tokenizer,
                aligned,
                encoder_output,
                num_frames,
            )
            for i in want_words:
                duration = len(requests[i].audio) / SAMPLE_RATE
                words = tuple(
                    DecodedWord(
                        w["word"].strip(),
                        min(float(w["start"]), duration),
                        min(float(w["end"]), duration),
                        float(w["probability"]),
                    )
                    for w in written_words(alignments[i])
                )
                decoded[i] = DecodeResult(
                    decoded[i].text, words, decoded[i].avg_logprob, decoded[i].no_speech_prob
                )
        return decoded, looped

    def _features(
        self, requests: list[DecodeRequest], windows: list[int]
    ) -> tuple[np.ndarray, list[int]]:
        feats = []
        for request in requests:
            audio = request.audio
            if audio.dtype != np.float32 or audio.ndim != 1:
                raise DecoderError("DecodeRequest.audio must be 1-D float32 at 16 kHz")
            if len(audio) > self.max_audio_s * SAMPLE_RATE:
                raise DecoderError(
                    f"utterance of {len(audio) / SAMPLE_RATE:.1f} s is longer than the "
                    f"{self.max_audio_s:.0f} s encoder window"
                )
            feats.append(len(audio) // 160 + 1)
        longest = max(feats)
        window = next((w for w in windows if w >= longest), windows[-1])
        feats = [self._padded_features(r.audio, window) for r in requests]
        batch = np.zeros((len(feats), feats[0].shape[0], window), dtype=np.float32)
        num_frames = []
        for i, f in enumerate(feats):
            n = min(f.shape[-1], window)
            batch[i, :, :n] = f[:, :n]
            num_frames.append(n)
        return batch, num_frames

    def _padded_features(self, audio: np.ndarray, window: int) -> np.ndarray:
        return self._whisper.feature_extractor(audio)[:, :window]

    def _prompt(self, request: DecodeRequest) -> list[int]:
        tok = self._tokenizer
        limit = self.options.context_tokens
        hotwords = tok.encode(" " + request.hotwords.strip())[: limit // 2] if request.hotwords else []
        previous = tok.encode(" " + request.prompt.strip()) if request.prompt else []
        # hot words first, then the most recent text, cut to exactly `limit` tokens when there is
        # enough: equal prompt lengths let a running call's requests share one batch
        context = hotwords + previous[-(limit - len(hotwords)) :] if limit > len(hotwords) else hotwords
        prompt = [tok.sot_prev] + context if context and limit else []
        # timestamp mode (no <|notimestamps|>): with an encoder window shorter than 30 s, text-only
        # decoding often ends after the first sentence; letting the model place segment
        # timestamps keeps it going to the end of the audio (measured: tests and the benchmark)
        prompt = prompt + list(tok.sot_sequence)
        if request.prefix:
            prompt += [tok.timestamp_begin] + tok.encode(" " + request.prefix.strip())
        return prompt


def written_words(pieces: list[dict]) -> list[dict]:
    """Join the aligner's word pieces into words as they are written.

    Whisper's alignment splits a word at punctuation: "ill-disposed" comes as
    " ill" and "-disposed", "www.asterisk.org." as " www", ".asterisk", ".org"
    and ".". A piece that does not begin with a space continues the word before
    it, so the words joined by spaces read exactly like the decoded text. The
    joined word spans its pieces' times and keeps the least sure piece's probability.
    """
    merged: list[dict] = []
    for piece in pieces:
        text = piece["word"]
        if not text.strip():
            continue
        if merged and not text[:1].isspace():
            prev = merged[-1]
            merged[-1] = {
                **prev,
                "word": prev["word"] + text,
                "end": piece["end"],
                "probability": min(prev["probability"], piece["probability"]),
            }
            continue
        merged.append(dict(piece))
    return merged


def _token_budget(duration_s: float) -> int:
    # fast speech is ~4 words (~5 tokens) a second; a hypothesis far longer than that is a loop
    return int(duration_s * 7) + 8


def is_loop(text: str) -> bool:
    """True when the text repeats itself the way Whisper's decoding loops do."""
    words = [w.strip(string.punctuation) for w in text.lower().split()]
    if len(words) >= 3 and len(set(words)) == 1:
        return True  # "Messages messages messages" for a one-word prompt
    # the same phrase of three or more words twice in a row at the end ("Press 9. Press 9.")
    for period in range(3, len(words) // 2 + 1):
        if words[-2 * period : -period] == words[-period:]:
            return True
    if len(words) < 6:
        return False
    # Whisper's own test is gzip compression ratio > 2.4; on short texts a repeated tail is clearer
    tail = words[-6:]
    return len(set(tail)) <= 2 or len(zlib.compress(text.encode())) * 2.4 < len(text.encode())
