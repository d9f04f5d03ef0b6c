"""The speaker encoder on real speech: the pyannote-audio sample (two voices)."""

from __future__ import annotations

import pickle

import numpy as np
import pytest

from media.resample import resample
from media.speakers.encoder import (
    SpeakerAudioError,
    SpeakerEncoder,
    SpeakerModelError,
    _default_weights_path,
    cosine,
)
from media.torch_weights import CheckpointFormatError, load_checkpoint
from tests.media.diarization_sample import DATA, RATE, cut

# -- weights without torch ----------------------------------------------------


def test_checkpoint_loads_as_numpy(encoder):
    state = load_checkpoint(_default_weights_path())["model_state"]
    assert state["lstm.weight_ih_l0"].shape == (1024, 40)
    assert state["linear.weight"].shape == (256, 256)
    assert all(isinstance(v, np.ndarray) for v in state.values())


def test_checkpoint_refuses_code(tmp_path):
    class Evil:
        def __reduce__(self):
            import os

            return (os.system, ("echo pwned",))

    path = tmp_path / "evil.pt"
    with path.open("wb") as f:
        for header in (0x1950A86A20F9469CFC6C, 1001, {"little_endian": True}):
            pickle.dump(header, f, protocol=2)
        pickle.dump({"model_state": Evil()}, f, protocol=2)
    with pytest.raises(CheckpointFormatError, match="not allowed"):
        load_checkpoint(path)


def test_garbage_weights_are_a_model_error(tmp_path):
    junk = tmp_path / "junk.pt"
    junk.write_bytes(b"\x00not a checkpoint" * 10)
    with pytest.raises(SpeakerModelError):
        SpeakerEncoder(junk)
    with pytest.raises(SpeakerModelError):
        SpeakerEncoder(tmp_path / "missing.pt")


# -- embeddings ---------------------------------------------------------------


def test_embedding_matches_reference_implementation(encoder, sample):
    """resemblyzer + torch gave this vector once; the numpy port must reproduce it."""
    reference = np.load(DATA / "resemblyzer_10.6-14.4s.npy")
    ours = encoder.embed(cut(sample, 10.6, 14.4))
    assert ours.shape == (256,) and ours.dtype == np.float32
    assert np.abs(ours - reference).max() < 1e-4
    assert abs(float(np.linalg.norm(ours)) - 1.0) < 1e-5


def test_same_speaker_is_closer_than_different_speaker(encoder, sample):
    a1 = encoder.embed(cut(sample, 10.6, 14.4))  # speaker90
    a2 = encoder.embed(cut(sample, 18.6, 21.4))  # speaker90
    b1 = encoder.embed(cut(sample, 14.8, 17.9))  # speaker91
    b2 = encoder.embed(cut(sample, 22.0, 27.8))  # speaker91
    same = min(cosine(a1, a2), cosine(b1, b2))
    different = max(cosine(a1, b1), cosine(a1, b2), cosine(a2, b1), cosine(a2, b2))
    assert same > different + 0.03, (same, different)


def test_telephone_band_audio_still_embeds_close(encoder, sample):
    """8 kHz (as carriers send it) keeps the voice recognisably the same."""
    clip = cut(sample, 10.6, 14.4)
    narrow = resample(clip, RATE, 8000)
    assert cosine(encoder.embed(clip), encoder.embed(narrow, 8000)) > 0.8


@pytest.mark.parametrize(
    ("pcm", "rate", "message"),
    [
        (np.zeros(16000, np.float32), RATE, "int16"),
        (np.zeros((2, 16000), np.int16), RATE, "mono"),
        (np.zeros(16000, np.int16), 11025, "sample rate"),
        (np.ones(800, np.int16), RATE, "at least"),
        (np.zeros(16000, np.int16), RATE, "silence"),
    ],
)


def test_unusable_audio_is_rejected(encoder, pcm, rate, message):
    with pytest.raises(SpeakerAudioError, match=message):
        encoder.embed(pcm, rate)
