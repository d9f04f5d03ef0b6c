"""The speaker labelling stage on its own."""

from __future__ import annotations

import numpy as np

from media.frames import AudioFrame, Party
from media.transcript import TranscriptSegment, Word
from voice_server.speaker_labels import SpeakerLabelling


def _segment(party: str) -> TranscriptSegment:
    return TranscriptSegment("1", party, "hello", 0, 400, (Word("hello", 0, 400, 0.9),),
                             is_final=True, revision=1)


def test_speaker_labelling_without_an_encoder_labels_by_track():
    stage = SpeakerLabelling(None)
    stage.push(AudioFrame(np.zeros(160, np.int16), 8000, Party.MIXED, 0))  # nothing to run it on
    labelled = stage.label(_segment("mixed"))
    assert labelled.speaker == "mixed" and not labelled.coached
    assert stage.label(_segment("rep")).coached
