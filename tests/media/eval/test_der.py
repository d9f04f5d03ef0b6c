"""DER scoring (media.eval.der) on hand-computed cases."""

from __future__ import annotations

import pytest

from media.eval.der import LabelledSegment as S
from media.eval.der import diarization_error_rate, read_rttm


def test_perfect_hypothesis_with_other_names_scores_zero():
    ref = [S(0, 1000, "a"), S(1000, 3000, "b")]
    hyp = [S(0, 1000, "x"), S(1000, 3000, "y")]
    assert diarization_error_rate(ref, hyp).der == 0.0


def test_components_are_hand_computable():
    ref = [S(0, 1000, "a"), S(1000, 2000, "b")]
    # 0-500 missed; "x" is mapped to "b" (1000 ms together vs 500 with "a"), so
    # 500-1000 is confusion and 1000-2000 right; 2000-2500 false alarm.
    hyp = [S(500, 1000, "x"), S(1000, 2000, "x"), S(2000, 2500, "y")]
    r = diarization_error_rate(ref, hyp)
    assert r.missed == pytest.approx(0.25)
    assert r.false_alarm == pytest.approx(0.25)
    assert r.confusion == pytest.approx(0.25)
    assert r.der == pytest.approx(0.75)
    assert r.reference_ms == 2000


def test_overlap_counts_per_speaker():
    ref = [S(0, 1000, "a"), S(0, 1000, "b")]
    r = diarization_error_rate(ref, [S(0, 1000, "x")])
    assert r.missed == pytest.approx(0.5) and r.confusion == 0.0


def test_collar_forgives_boundaries():
    ref = [S(0, 1000, "a"), S(1000, 2000, "b")]
    hyp = [S(0, 1200, "x"), S(1200, 2000, "y")]
    assert diarization_error_rate(ref, hyp).confusion == pytest.approx(0.1)
    assert diarization_error_rate(ref, hyp, collar_ms=250).der == 0.0


def test_rttm_parsing_and_errors(tmp_path):
    path = tmp_path / "x.rttm"
    path.write_text("SPEAKER f 1 1.5 0.25 <NA> <NA> alice <NA> <NA>\n\n")
    assert read_rttm(path) == [S(1500, 1750, "alice")]
    path.write_text("SPEAKER f 1 1.5\n")
    with pytest.raises(ValueError):
        read_rttm(path)
    with pytest.raises(ValueError):
        diarization_error_rate([], [S(0, 10, "x")])
