import numpy as np
import pytest

from media.speakers.encoder import SpeakerEncoder
from tests.media.diarization_sample import load_sample


@pytest.fixture(scope="session")
def sample() -> np.ndarray:
    """The pyannote-audio two-voice sample (see tests/media/diarization_sample.py)."""
    return load_sample()


@pytest.fixture(scope="session")
def encoder() -> SpeakerEncoder:
    return SpeakerEncoder()
