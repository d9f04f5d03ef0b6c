"""Competitor detection on real speech: does hot-word biasing invent competitors?

    python scripts/bench/competitors.py [--quick]

Real 8 kHz telephone speech: the Asterisk prompts (Debian asterisk-core-sounds-en-wav, reference
texts in asterisk-core-sounds-en). The competitor list is the default rule set's (Gong, Chorus /
"ZoomInfo Chorus", Salesforce, HubSpot, ...) plus three names the prompts do say: Asterisk,
Digium, Waldo. A clip is a positive when its reference text names one of them, a negative
otherwise; a positive counts as found when a competitor it names is matched, a negative as a
false alarm when any competitor is matched. Every clip (single words such as
"digits/5", "letters/c" and "phonetic/g_p" too: short answers are where a biased decoder copies
its prompt; up to 28 s) is decoded once with tiny.en
as one final, with and without the competitor names as hot words, and scored three ways:

  * biased      — matcher on the biased decode (what every call did before);
  * plain       — matcher (exact, stem, fuzzy, phonetic) on the unbiased decode;
  * confirmed   — a biased hit kept only when the unbiased decode matches the same competitor.

The last line of output is one JSON object.
"""

from __future__ import annotations

import argparse
import json
import platform
import re
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))  # the repository's packages, not this folder's coaching.py

from coaching import KeywordMatcher, hotwords, load_rule_set
from coaching.records import SegmentInput
from media.resample import resample
from media.stt.decoder import DecoderOptions, WhisperDecoder
from media.stt.engine import DecodeRequest
from media.stt.models import locate_model
from tests.media.speech_corpus import SOUNDS, load_clip, reference_texts

EXTRA = ("Asterisk", "Digium", "Waldo")
MAX_S = 28.0


def rule_set():
    default = load_rule_set()
    phrases = [
        {"phrase": p.text, "aliases": list(p.aliases)}
        for p in default.category("competitor").phrases
    ] + [{"phrase": name} for name in EXTRA]
    return load_rule_set({"keywords": {"competitor": {
        "fuzzy": True, "phonetic": True, "hotword": True, "phrases": phrases}}})


def clips(quick: bool) -> list[tuple[str, str, bool]]:
    texts = reference_texts()
    names = re.compile(r"\b(" + "|".join(EXTRA) + r")", re.IGNORECASE)
    out = []
    for name, text in sorted(texts.items()):
        if not (SOUNDS / f"{name}.wav").is_file() or "[" in text or "<" in text:
            continue
        seconds = (SOUNDS / f"{name}.wav").stat().st_size / 16000
        if seconds > MAX_S:
            continue
        out.append((name, text, bool(names.search(text))))
    if quick:
        positives = [c for c in out if c[2]]
        out = positives + [c for c in out if not c[2]][::4]
    return out


def competitors(matcher, text: str) -> set[str]:
    segment = SegmentInput.build("s", "customer", text, 0, 1000)
    return {h.keyword.lower() for h in matcher.match(segment) if h.category == "competitor"}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true", help="every 4th negative clip")
    args = parser.parse_args()
    rules = rule_set()
    matcher = KeywordMatcher(rules)
    hot = hotwords(rules)
    decoder = WhisperDecoder(locate_model("tiny.en"), DecoderOptions(cpu_threads=1))
    chosen = clips(args.quick)
    started = time.process_time()
    rows = []
    for name, reference, positive in chosen:
        audio = resample(load_clip(name), 8000, 16000).astype(np.float32) / 32768.0
        plain, biased = decoder.decode([DecodeRequest(audio), DecodeRequest(audio, hotwords=hot)])
        said = {n.lower() for n in EXTRA if re.search(rf"\b{n}", reference, re.IGNORECASE)}
        rows.append({
            "clip": name, "positive": positive, "said": sorted(said),
            "plain_text": plain.text, "biased_text": biased.text,
            "plain": sorted(competitors(matcher, plain.text)),
            "biased": sorted(competitors(matcher, biased.text)),
        })
    cpu_s = time.process_time() - started
    results = {}
    for strategy in ("biased", "plain", "confirmed"):
        tp = fp = fn = false_alarm_clips = 0
        for row in rows:
            found = set(row["biased"]) & set(row["plain"]) if strategy == "confirmed" else set(row[strategy])
            right = found & set(row["said"])
            wrong = found - set(row["said"])
            tp += bool(right) if row["positive"] else 0
            fn += (not right) if row["positive"] else 0
            fp += len(wrong)
            false_alarm_clips += (not row["positive"]) and bool(wrong)
        positives = sum(r["positive"] for r in rows)
        results[strategy] = {
            "recall": round(tp / positives, 3) if positives else None,
            "precision": round(tp / (tp + fp), 3) if tp + fp else None,
            "false_alarm_negatives": false_alarm_clips,
            "wrong_names": fp,
        }
        print(f"{strategy:10s} recall {tp}/{positives}  wrong names {fp}  "
              f"negatives with a false alarm {false_alarm_clips}/{len(rows) - positives}")
    for row in rows:
        if set(row["biased"]) - set(row["said"]) or set(row["plain"]) - set(row["said"]) or (
                row["positive"] and not set(row["plain"]) & set(row["said"])):
            print(f"  {row['clip']}: said {row['said']} plain {row['plain']} {row['plain_text']!r}"
                  f" | biased {row['biased']} {row['biased_text']!r}")
    print(json.dumps({
        "bench": "competitors", "quick": args.quick, "clips": len(rows),
        "positives": sum(r["positive"] for r in rows), "negatives": sum(not r["positive"] for r in rows),
        "results": results, "decode_cpu_s": round(cpu_s, 1), "machine": platform.machine(),
    }))


if __name__ == "__main__":
    main()
