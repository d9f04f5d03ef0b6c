"""Speaker attribution benchmark: diarization error rate and cost on real two-speaker audio.

    python scripts/bench/diarization.py [--quick] [--models DIR]

Audio: the 30 s two-speaker sample with reference RTTM that ships in the
pyannote-audio wheel (tests/data/diarization/, MIT). Scored:
  * online: ``OnlineDiarizer`` fed 20 ms frames as a live call would (16 kHz),
  * recording: ``diarize_recording`` with the encoder method (after the
    call: online pass, then a second pass over the final voices),
  * recording_onnx: ``diarize_recording`` with the ONNX method (pyannote
    segmentation-3.0 + CAM++ + agglomerative clustering on onnxruntime), from
    the models in --models (exported by scripts/build_diarization_models.py),
  * calls_*: both recording methods on mixed calls built from real 8 kHz
    telephone speech (media/eval/mixed_calls.py: the English asterisk voice
    alternating with an Italian, French or Russian one, through G.711 µ-law),
    DER pooled over the calls (total error time / total reference time),
  * telephone: the same audio through 8 kHz G.711 µ-law first (what a
    carrier's mixed stream carries), fed in 20 ms frames,
  * enrolled: online, 16 kHz, with speaker90's voiceprint enrolled as the rep
    (built from 18.6-21.4 s and 8.3-9.9 s of the same recording), scored with
    rep -> speaker90 / customer -> speaker91 fixed (no optimal relabelling).
DER is scored with no collar and overlapped speech included (the strict
pyannote.metrics default); ``der_collar_250ms`` forgives 250 ms around each
reference boundary. ``ms_per_audio_s`` is single-threaded CPU time per
second of audio (best of N). The last line of output is one JSON object.
"""

from __future__ import annotations

import os

# One BLAS thread: the encoder's matrices are small, and on a shared 2-core
# machine a multi-threaded BLAS spends more time spinning than computing.
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
os.environ.setdefault("OMP_NUM_THREADS", "1")

import argparse
import json
import platform
import time
import wave
from dataclasses import replace
from pathlib import Path

import numpy as np

from media.eval.der import LabelledSegment, diarization_error_rate, read_rttm
from media.eval.mixed_calls import OTHER_VOICES, build_call, voice_available
from media.frames import AudioFrame, Party
from media.g711 import ulaw_decode, ulaw_encode
from media.recording_diarization import (
    RecordingDiarizationOptions,
    diarize_recording,
    onnx_diarizer,
)
from media.resample import resample
from media.speakers.diarizer import DiarizerOptions, OnlineDiarizer
from media.speakers.encoder import SpeakerEncoder
from media.speakers.onnx_diarization import DiarizationModelError, OnnxDiarizationOptions
from media.voiceprints import build_voiceprint

DATA = Path(__file__).resolve().parents[2] / "tests" / "data" / "diarization"


def load_sample() -> np.ndarray:
    with wave.open(str(DATA / "sample.wav")) as w:
        return np.frombuffer(w.readframes(w.getnframes()), np.int16)


def stream(encoder, pcm, rate, rep=None, options=None):
    diarizer = OnlineDiarizer(encoder, options)
    if rep is not None:
        diarizer.enrol(rep)
    frame = rate // 50
    turns = []
    start = time.process_time()
    for i in range(0, len(pcm), frame):
        turns += diarizer.push(AudioFrame(pcm[i : i + frame], rate, Party.MIXED, 1000 * i // rate))
    turns += diarizer.flush()
    return turns, time.process_time() - start


def score(reference, turns) -> dict:
    hyp = [LabelledSegment(t.start_ms, t.end_ms, t.speaker) for t in turns]
    strict = diarization_error_rate(reference, hyp)
    forgiving = diarization_error_rate(reference, hyp, collar_ms=250)
    return {
        "der": round(strict.der, 4),
        "missed": round(strict.missed, 4),
        "false_alarm": round(strict.false_alarm, 4),
        "confusion": round(strict.confusion, 4),
        "der_collar_250ms": round(forgiving.der, 4),
    }


def pooled(scores: list) -> dict:
    """DER over several calls: error time over reference time, strict and with the collar."""
    out = {}
    for key, collar in (("der", 0), ("der_collar_250ms", 250)):
        err = sum(s[collar].der * s[collar].reference_ms for s in scores)
        out[key] = round(err / sum(s[collar].reference_ms for s in scores), 4)
    return out


def calls_bench(encoder, methods: dict, seeds: int) -> dict:
    """Both recording methods on mixed telephone calls of real speech (8 kHz µ-law)."""
    result: dict = {}
    scores: dict = {name: [] for name in methods}
    calls = 0
    for voice in OTHER_VOICES:
        if not voice_available(voice):
            continue
        for seed in range(seeds):
            call = build_call(voice, seed)
            phone = ulaw_decode(ulaw_encode(call.pcm))
            calls += 1
            for name, options in methods.items():
                turns = diarize_recording(phone, 8000, encoder, options)
                hyp = [LabelledSegment(t.start_ms, t.end_ms, t.speaker) for t in turns]
                scores[name].append(
                    {c: diarization_error_rate(call.reference, hyp, collar_ms=c) for c in (0, 250)}
                )
    result["calls"] = calls
    for name, got in scores.items():
        if got:
            result |= {f"calls_{name}_{k}": v for k, v in pooled(got).items()}
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="one timing run (< 1 minute)")
    parser.add_argument(
        "--models",
        type=Path,
        default=Path(".data/models/diarization"),
        help="directory of the ONNX diarization models (scripts/build_diarization_models.py)",
    )
    parser.add_argument("--threshold", type=float, default=None, help="ONNX clustering threshold")
    parser.add_argument("--seeds", type=int, default=2, help="mixed calls per second voice")
    args = parser.parse_args()
    repeat = 1 if args.quick else 3
    pcm = load_sample()
    reference = read_rttm(DATA / "sample.rttm")
    audio_s = len(pcm) / 16000
    encoder = SpeakerEncoder()
    options = DiarizerOptions()

    result: dict = {"bench": "diarization", "quick": args.quick, "audio_s": audio_s}
    best = float("inf")
    for _ in range(repeat):
        turns, cpu = stream(encoder, pcm, 16000, options=options)
        best = min(best, cpu)
    result |= score(reference, turns)
    result["ms_per_audio_s"] = round(1000 * best / audio_s, 1)
    result["label_lag_ms"] = options.window_ms // 2 + options.hop_ms

    start = time.process_time()
    encoder_method = RecordingDiarizationOptions(method="encoder")
    turns = diarize_recording(pcm, 16000, encoder, encoder_method)
    cpu = time.process_time() - start
    result |= {f"recording_{k}": v for k, v in score(reference, turns).items()}
    result["recording_ms_per_audio_s"] = round(1000 * cpu / audio_s, 1)

    onnx_options = RecordingDiarizationOptions(method="onnx", model_dir=args.models)
    if args.threshold is not None:
        onnx_options = replace(onnx_options, onnx=OnnxDiarizationOptions(threshold=args.threshold))
    methods = {"encoder": encoder_method}
    try:
        onnx_diarizer(args.models, onnx_options.onnx)
    except DiarizationModelError as exc:
        print(f"ONNX method skipped: {exc}")
    else:
        methods["onnx"] = onnx_options
        diarize_recording(pcm, 16000, encoder, onnx_options)  # warm-up
        best = float("inf")
        for _ in range(repeat):
            start = time.process_time()
            turns = diarize_recording(pcm, 16000, encoder, onnx_options)
            best = min(best, time.process_time() - start)
        result |= {f"recording_onnx_{k}": v for k, v in score(reference, turns).items()}
        result["recording_onnx_ms_per_audio_s"] = round(1000 * best / audio_s, 1)
    result |= calls_bench(encoder, methods, 1 if args.quick else args.seeds)

    phone = ulaw_decode(ulaw_encode(resample(pcm, 16000, 8000)))
    turns, _ = stream(encoder, phone, 8000, options=options)
    result |= {f"telephone_{k}": v for k, v in score(reference, turns).items()}

    cut = lambda a, b: pcm[int(a * 16000) : int(b * 16000)]
    rep = build_voiceprint(encoder, [(cut(18.6, 21.4), 16000), (cut(8.3, 9.9), 16000)])
    turns, _ = stream(encoder, pcm, 16000, rep=rep.embedding, options=options)
    fixed = {"rep": "speaker90", "customer": "speaker91"}
    hyp = [LabelledSegment(t.start_ms, t.end_ms, fixed[t.speaker]) for t in turns]
    strict = diarization_error_rate(reference, hyp)
    # Share of reference speech whose turn carries the right name (rep = speaker90):
    # 1 - der would be the same only if enrolment named the voices the right way round.
    named = sum(
        max(0, min(h.end_ms, r.end_ms) - max(h.start_ms, r.start_ms))
        for h in hyp
        for r in reference
        if h.speaker == r.speaker
    )
    result["enrolled_der"] = round(strict.der, 4)
    result["enrolled_named_correctly_share"] = round(named / strict.reference_ms, 4)

    for key, value in result.items():
        print(f"{key:40s} {value}")
    result["python"] = platform.python_version()
    result["machine"] = platform.machine()
    print(json.dumps(result))


if __name__ == "__main__":
    main()
