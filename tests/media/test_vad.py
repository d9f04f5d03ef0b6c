import numpy as np
import pytest

from media.vad import (
    SileroVadModel,
    SpeechEnd,
    SpeechPause,
    SpeechStart,
    VadError,
    VadOptions,
    VoiceActivityDetector,
)
from tests.media.speech_corpus import load_clip, requires_corpus


@pytest.fixture(scope="module")
def model():
    return SileroVadModel()


def _events(detector, pcm, frame):
    events = []
    for i in range(0, len(pcm), frame):
        events += detector.process(pcm[i : i + frame])
    return events


def _line_noise(seconds, rate):
    rng = np.random.default_rng(7)
    t = np.arange(int(seconds * rate)) / rate
    hiss = rng.normal(0, 250, t.size)
    hum = 300 * np.sin(2 * np.pi * 60 * t) + 80 * np.sin(2 * np.pi * 180 * t)
    return (hiss + hum).astype(np.int16)


@requires_corpus
@pytest.mark.parametrize("rate", [8000, 16000])
def test_real_speech_between_silences_gives_one_start_and_end_each(model, rate):
    speech = load_clip("vm-forward")  # ~4.9 s: "Press 1 to enter an extension, press 2 ..."
    if rate == 16000:
        speech = np.repeat(speech, 2)  # crude upsampling is enough for a detector test
    gap = np.zeros(2 * rate, np.int16)
    pcm = np.concatenate([gap, speech, gap, speech, gap])
    events = _events(VoiceActivityDetector(model, sample_rate=rate), pcm, rate // 50)
    # a pause always precedes an end, at the same sample (callers may start decoding at the pause)
    for i, event in enumerate(events):
        if isinstance(event, SpeechEnd):
            assert isinstance(events[i - 1], SpeechPause) and events[i - 1].sample == event.sample
    events = [e for e in events if not isinstance(e, SpeechPause)]
    kinds = [type(e) for e in events]
    assert kinds == [SpeechStart, SpeechEnd, SpeechStart, SpeechEnd]
    starts = [e.sample / 16000 for e in events[0::2]]
    ends = [e.sample / 16000 for e in events[1::2]]
    clip_s = len(speech) / rate
    for k, (start, end) in enumerate(zip(starts, ends)):
        clip_start = 2 + k * (clip_s + 2)
        assert clip_start - 0.3 <= start <= clip_start + 1.0
        assert clip_start + clip_s - 1.0 <= end <= clip_start + clip_s + 0.8


@pytest.mark.parametrize("rate", [8000, 16000])
def test_silence_and_line_noise_never_open_speech(model, rate):
    pcm = np.concatenate([np.zeros(5 * rate, np.int16), _line_noise(10, rate)])
    detector = VoiceActivityDetector(model, sample_rate=rate)
    assert _events(detector, pcm, rate // 50) == []
    assert not detector.speaking


def test_bad_input_is_rejected_clearly(model):
    with pytest.raises(VadError):
        VoiceActivityDetector(model, sample_rate=44100)
    with pytest.raises(VadError):
        VoiceActivityDetector(model).process(np.zeros(512, np.float64))
    with pytest.raises(ValueError):
        VadOptions(threshold=0.3, neg_threshold=0.5)
