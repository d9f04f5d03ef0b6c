"""Word pieces the real tiny.en decoder produced on real telephone speech, kept as a fixture.

The clips are Asterisk prompts (Debian ``asterisk-core-sounds-en-wav``): whole prompts, a
window of one (``name@start@end`` in seconds), or prompts joined with 80 ms gaps
(``a+b+c``, each trimmed of its leading and trailing silence). Regenerate the fixture with
``PYTHONPATH=$PWD python -m tests.media.stt.word_pieces`` (a few seconds of CPU per clip).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from media.resample import resample
from tests.media.speech_corpus import load_clip

FIXTURE = Path(__file__).resolve().parents[2] / "data" / "stt" / "word_pieces.json"

EMAIL_CLIP = "+".join(
    f"letters/{c}" for c in ("j", "o", "e", "at", "x", "y", "z", "dot", "c", "o", "m")
)
CLIPS = (
    "demo-abouttotry",  # "Inter-Asterisk" comes as " Inter" "-Astrisk"
    "demo-moreinfo",  # "www.asterisk.org." as " www" ".astarisk" ".org" "."
    "demo-instruct@0@28",  # "inter- asterisk", "dial 502"
    "demo-instruct@28@56",  # "extension 1234 and password 4242"
    "digits/5+digits/hundred+digits/dollars",  # "$500 dollars."
    "digits/4+digits/1+digits/1+digits/1",  # "Four, one, one, one."
    EMAIL_CLIP,  # "J O E at X Y Z dot C O M"
)


def _trimmed(pcm: np.ndarray) -> np.ndarray:
    loud = np.nonzero(np.abs(pcm.astype(np.int32)) > 300)[0]
    return pcm[max(0, loud[0] - 400) : loud[-1] + 400] if len(loud) else pcm


def clip_audio(spec: str) -> np.ndarray:
    """The clip ``spec`` names, as int16 samples at 8 kHz."""
    if "@" in spec:
        name, start, end = spec.split("@")
        return load_clip(name)[int(float(start) * 8000) : int(float(end) * 8000)]
    gap = np.zeros(640, np.int16)
    return np.concatenate(
        [part for name in spec.split("+") for part in (_trimmed(load_clip(name)), gap)]
    )


def load() -> list[dict]:
    return json.loads(FIXTURE.read_text(encoding="utf-8"))


def main() -> None:
    from media.stt import decoder as whisper
    from media.stt.engine import DecodeRequest
    from media.stt.models import locate_model

    model = whisper.WhisperDecoder(locate_model("tiny.en"), whisper.DecoderOptions(cpu_threads=1))
    pieces: list[list[dict]] = []
    align = model._whisper.find_alignment

    def capture(*args, **kwargs):
        result = align(*args, **kwargs)
        pieces.append(result[0])
        return result

    model._whisper.find_alignment = capture
    entries = []
    for spec in CLIPS:
        pieces.clear()
        audio = resample(clip_audio(spec), 8000, 16000).astype(np.float32) / 32768.0
        result = model.decode([DecodeRequest(audio)])[0]
        entries.append(
            {
                "clip": spec,
                "text": result.text,
                "pieces": [
                    [
                        p["word"],
                        round(float(p["start"]), 2),
                        round(float(p["end"]), 2),
                        round(float(p["probability"]), 3),
                    ]
                    for p in pieces[0]
                ],
            }
        )
    FIXTURE.write_text(json.dumps(entries, indent=1) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
