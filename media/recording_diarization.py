"""Who spoke when in a whole recording, after the call (uploaded or mixed recordings).

pyannote-audio's pipeline is the stronger method, but it needs torch and
weights that normally come from a model hub, so it runs only when a local
checkpoint directory is configured *and* the optional ``diarization`` extra
(pyannote.audio + torch) is installed. Otherwise — the default — this logs
why and runs the live method (``OnlineDiarizer``) over the recording, which
needs nothing beyond the speaker encoder. Either way turns are labelled
``rep`` / ``customer`` when the rep's voiceprint is given.

The pyannote branch is not exercised by the test suite
(torch is not installed there); it was written against pyannote.audio 4.0.7's
``Pipeline.from_pretrained(<local dir>)`` API.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from media.frames import Party
from media.speakers.diarizer import DiarizerOptions, OnlineDiarizer, SpeakerTurn
from media.speakers.encoder import SpeakerEncoder, check_pcm, cosine
from media.voiceprints import Voiceprint

__all__ = ["RecordingDiarizationOptions", "diarize_recording"]

log = logging.getLogger(__name__)

# Feeding a recording in 2 s pieces lets the diarizer embed several windows per
# network pass instead of one per 20 ms frame; the result is the same.
_CHUNK_MS = 2000


@dataclass(frozen=True, slots=True)
class RecordingDiarizationOptions:
    #: Local pyannote speaker-diarization pipeline directory (config.yaml + weights). None: unset.
    pyannote_checkpoint: Path | None = None
    online: DiarizerOptions = field(default_factory=DiarizerOptions)


def diarize_recording(
    pcm: np.ndarray,
    sample_rate: int,
    encoder: SpeakerEncoder,
    options: RecordingDiarizationOptions | None = None,
    rep: Voiceprint | None = None,
) -> list[SpeakerTurn]:
    """Speaker turns of a mono PCM16 recording, in time order."""
    options = options or RecordingDiarizationOptions()
    check_pcm(pcm, sample_rate)
    if options.pyannote_checkpoint is not None:
        turns = _pyannote(pcm, sample_rate, encoder, options.pyannote_checkpoint, rep)
        if turns is not None:
            return turns
    else:
        log.info("no pyannote checkpoint configured; diarizing the recording with the live method")
    diarizer = OnlineDiarizer(encoder, options.online, keep_windows=True)
    if rep is not None:
        diarizer.enrol(rep.embedding)
    step = sample_rate * _CHUNK_MS // 1000
    for start in range(0, len(pcm), step):
        diarizer.push_pcm(pcm[start : start + step], sample_rate, 1000 * start // sample_rate)
    diarizer.flush()
    # The whole recording is known: label every window with the final voices.
    return diarizer.second_pass()


def _pyannote(pcm, sample_rate, encoder, checkpoint: Path, rep) -> list[SpeakerTurn] | None:
    if not Path(checkpoint).exists():
        log.warning("pyannote checkpoint %s does not exist; using the live method", checkpoint)
        return None
    try:
        import torch
        from pyannote.audio import Pipeline
    except ImportError as exc:
        log.warning(
            "pyannote checkpoint set but pyannote.audio is not installed (%s); "
            "install the 'diarization' extra. Using the live method",
            exc,
        )
        return None
    pipeline = Pipeline.from_pretrained(str(checkpoint))
    wav = encoder.to_float(pcm, sample_rate)
    result = pipeline({"waveform": torch.from_numpy(wav)[None, :], "sample_rate": 16000})
    annotation = getattr(result, "speaker_diarization", result)
    raw = [
        (round(seg.start * 1000), round(seg.end * 1000), str(label))
        for seg, _, label in annotation.itertracks(yield_label=True)
    ]
    rep_label = None
    if rep is not None and raw:
        sims = {}
        for label in {r[2] for r in raw}:
            speech = np.concatenate([wav[a * 16 : b * 16] for a, b, lab in raw if lab == label])
            if len(speech) >= 16000:
                sims[label] = cosine(encoder.embed_wav(encoder.normalise(speech)), rep.embedding)
        rep_label = max(sims, key=sims.get) if sims else None
    turns = []
    for a, b, label in sorted(raw):
        if rep is None:
            turns.append(SpeakerTurn(a, b, label, Party.MIXED, 0.0))
        elif label == rep_label:
            turns.append(SpeakerTurn(a, b, "rep", Party.REP, 0.0))
        else:
            turns.append(SpeakerTurn(a, b, "customer", Party.CUSTOMER, 0.0))
    return turns
