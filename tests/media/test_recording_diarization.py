"""Diarization of a whole recording after the call, on the pyannote-audio sample."""

from __future__ import annotations

import logging

import numpy as np
import pytest

from media.eval.der import diarization_error_rate, read_rttm
from media.recording_diarization import RecordingDiarizationOptions, diarize_recording
from media.speakers.encoder import SpeakerAudioError
from tests.media.diarization_sample import DATA, RATE, cut, hypothesis

# Recordings get a second pass over the final voices: measured 0.141.
RECORDING_DER_BOUND = 0.20


def test_recording_falls_back_to_live_method_and_says_so(encoder, sample, caplog):
    caplog.set_level(logging.INFO, logger="media.recording_diarization")
    turns = diarize_recording(sample, RATE, encoder)
    assert "no pyannote checkpoint configured" in caplog.text
    der = diarization_error_rate(read_rttm(DATA / "sample.rttm"), hypothesis(turns)).der
    assert der < RECORDING_DER_BOUND


def test_recording_with_missing_checkpoint_warns_and_falls_back(encoder, sample, tmp_path, caplog):
    options = RecordingDiarizationOptions(pyannote_checkpoint=tmp_path / "nowhere")
    turns = diarize_recording(cut(sample, 8.0, 18.0), RATE, encoder, options)
    assert "does not exist" in caplog.text and turns


def test_recording_rejects_garbage(encoder):
    with pytest.raises(SpeakerAudioError):
        diarize_recording(np.zeros(100, np.float64), RATE, encoder)
