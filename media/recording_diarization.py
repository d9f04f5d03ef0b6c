"""Who spoke when in a whole recording, after the call (uploaded or mixed recordings).

Two methods, chosen by ``RecordingDiarizationOptions.method``:

* ``"encoder"`` (default): the live method (``OnlineDiarizer`` on our numpy
  speaker encoder) over the recording, then a second pass with the final
  voices. Needs no model files. Measured better on mixed telephone calls of
  real speech (docs/performance.md), which is what recordings are.
* ``"onnx"``: pyannote segmentation-3.0 + CAM++ embeddings + agglomerative
  clustering on onnxruntime (media/speakers/onnx_diarization.py), from model
  files exported once by scripts/build_diarization_models.py. Better on the
  16 kHz pyannote sample, worse on 8 kHz calls of two similar voices. If the
  model files are missing or unreadable it logs why, once per directory, and
  uses the encoder method.

Either way turns are labelled ``rep`` / ``customer`` when the rep's voiceprint
is given (the voiceprint is in the encoder's space, so each ONNX cluster is
embedded with the encoder once to compare).
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import numpy as np

from media.frames import Party
from media.speakers.diarizer import DiarizerOptions, OnlineDiarizer, SpeakerTurn
from media.speakers.encoder import ENCODER_RATE, SpeakerEncoder, check_pcm, cosine
from media.speakers.onnx_diarization import (
    DiarizationModelError,
    OnnxDiarizationOptions,
    OnnxDiarizer,
    RawTurn,
)
from media.voiceprints import Voiceprint

__all__ = ["RecordingDiarizationOptions", "diarize_recording", "onnx_diarizer"]

log = logging.getLogger(__name__)

# Feeding a recording in 2 s pieces lets the diarizer embed several windows per
# network pass instead of one per 20 ms frame; the result is the same.
_CHUNK_MS = 2000
# Least speech of one ONNX cluster worth comparing with the rep's voiceprint.
_MIN_NAMING_S = 1.0


@dataclass(frozen=True, slots=True)
class RecordingDiarizationOptions:
    method: Literal["encoder", "onnx"] = "encoder"
    #: Directory holding segmentation.onnx, embedding.onnx and their manifest.
    model_dir: Path | None = None
    onnx: OnnxDiarizationOptions = field(default_factory=OnnxDiarizationOptions)
    online: DiarizerOptions = field(default_factory=DiarizerOptions)


_loaded: dict[tuple[Path, OnnxDiarizationOptions], OnnxDiarizer | DiarizationModelError] = {}
_loaded_lock = threading.Lock()


def onnx_diarizer(model_dir: Path, options: OnnxDiarizationOptions) -> OnnxDiarizer:
    """The loaded models of ``model_dir`` (cached per process; a failure is cached too)."""
    key = (Path(model_dir).resolve(), options)
    with _loaded_lock:
        found = _loaded.get(key)
        if found is None:
            try:
                found = OnnxDiarizer(model_dir, options)
            except DiarizationModelError as exc:
                found = exc
                log.warning("recording diarization: %s; using the encoder method", exc)
            _loaded[key] = found
    if isinstance(found, DiarizationModelError):
        raise found
    return found


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
    if options.method == "onnx":
        if options.model_dir is None:
            log.warning("recording diarization: no model directory set; using the encoder method")
        else:
            try:
                diarizer = onnx_diarizer(options.model_dir, options.onnx)
            except DiarizationModelError:
                pass
            else:
                wav = encoder.to_float(pcm, sample_rate)
                return _named(diarizer(wav), wav, encoder, rep)
    return _encoder_method(pcm, sample_rate, encoder, options.online, rep)


def _encoder_method(pcm, sample_rate, encoder, online, rep) -> list[SpeakerTurn]:
    diarizer = OnlineDiarizer(encoder, online, keep_windows=True)
    if rep is not None:
        diarizer.enrol(rep.embedding)
    step = sample_rate * _CHUNK_MS // 1000
    for start in range(0, len(pcm), step):
        diarizer.push_pcm(pcm[start : start + step], sample_rate, 1000 * start // sample_rate)
    diarizer.flush()
    # The whole recording is known: label every window with the final voices.
    return diarizer.second_pass()


def _named(raw: list[RawTurn], wav, encoder: SpeakerEncoder, rep) -> list[SpeakerTurn]:
    if rep is None:
        return [
            SpeakerTurn(t.start_ms, t.end_ms, f"speaker_{t.cluster + 1}", Party.MIXED, 0.0)
            for t in raw
        ]
    rate = ENCODER_RATE // 1000
    sims = {}
    for cluster in {t.cluster for t in raw}:
        speech = np.concatenate(
            [wav[t.start_ms * rate : t.end_ms * rate] for t in raw if t.cluster == cluster]
        )
        if len(speech) >= _MIN_NAMING_S * ENCODER_RATE:
            sims[cluster] = cosine(encoder.embed_wav(encoder.normalise(speech)), rep.embedding)
    rep_cluster = max(sims, key=sims.get) if sims else None
    return [
        SpeakerTurn(t.start_ms, t.end_ms, "rep", Party.REP, sims[t.cluster])
        if t.cluster == rep_cluster
        else SpeakerTurn(t.start_ms, t.end_ms, "customer", Party.CUSTOMER, sims.get(t.cluster, 0.0))
        for t in raw
    ]
