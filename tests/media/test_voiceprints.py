"""Voiceprints built with the speaker encoder from the pyannote-audio sample."""

from __future__ import annotations

import numpy as np
import pytest

from media.speakers.encoder import cosine
from media.voiceprints import Voiceprint, VoiceprintError, build_voiceprint
from tests.media.diarization_sample import RATE, cut


def test_voiceprint_round_trips_and_merges(encoder, sample):
    a = build_voiceprint(encoder, [(cut(sample, 10.6, 14.4), RATE)])
    again = Voiceprint.from_array(a.to_array().tobytes(), a.speech_ms, a.utterances)
    assert np.allclose(again.embedding, a.embedding) and again.model == a.model
    b = build_voiceprint(encoder, [(cut(sample, 18.6, 21.4), RATE)])
    both = a.merged(b)
    assert both.speech_ms == a.speech_ms + b.speech_ms and both.utterances == 2
    assert cosine(both.embedding, a.embedding) > cosine(b.embedding, a.embedding)


def test_voiceprint_needs_usable_speech(encoder):
    with pytest.raises(VoiceprintError):
        build_voiceprint(
            encoder, [(np.zeros(RATE * 2, np.int16), RATE), (np.ones(100, np.int16), RATE)]
        )
    with pytest.raises(VoiceprintError):
        Voiceprint.from_array(b"\x00" * 12, 0, 0)
    with pytest.raises(VoiceprintError):
        Voiceprint(np.ones(256, np.float32), 0, 0)  # not unit length
