"""Resampling: streaming equals one-shot, anti-aliasing works, lengths add up."""

from __future__ import annotations

import numpy as np
import pytest

from media.frames import AudioFormatError
from media.resample import ResampleQuality, Resampler, resample


def tone(freq_hz: float, rate: int, seconds: float = 1.0, amplitude: float = 10000) -> np.ndarray:
    t = np.arange(int(rate * seconds)) / rate
    return np.round(amplitude * np.sin(2 * np.pi * freq_hz * t)).astype(np.int16)


def level_db(pcm: np.ndarray, reference: np.ndarray) -> float:
    # Skip the filter's start/end transients.
    core = pcm[len(pcm) // 10 : -len(pcm) // 10].astype(np.float64)
    ref = reference.astype(np.float64)
    return 20 * np.log10(np.sqrt(np.mean(core**2)) / np.sqrt(np.mean(ref**2)) + 1e-12)


def speechlike(rate: int, seconds: float = 2.0) -> np.ndarray:
    """Noise band-limited to the telephone band, so 8 kHz can carry it exactly."""
    rng = np.random.default_rng(7)
    n = int(rate * seconds)
    spectrum = np.fft.rfft(rng.standard_normal(n))
    freqs = np.fft.rfftfreq(n, 1 / rate)
    spectrum[(freqs < 300) | (freqs > 3400)] = 0
    signal = np.fft.irfft(spectrum, n)
    return np.round(signal / np.abs(signal).max() * 12000).astype(np.int16)


def stream(resampler: Resampler, pcm: np.ndarray, frame: int) -> list[np.ndarray]:
    chunks = [resampler.process(pcm[i : i + frame]) for i in range(0, len(pcm), frame)]
    chunks.append(resampler.flush())
    return chunks


@pytest.mark.parametrize(("in_rate", "out_rate"), [(8000, 16000), (16000, 8000), (8000, 48000)])
def test_streaming_frame_by_frame_equals_one_shot(in_rate, out_rate):
    pcm = speechlike(in_rate)
    frame = in_rate // 50  # 20 ms
    streamed = np.concatenate(stream(Resampler(in_rate, out_rate), pcm, frame))
    whole = resample(pcm, in_rate, out_rate)
    assert streamed.dtype == whole.dtype == np.int16
    assert len(streamed) == len(whole) == round(len(pcm) * out_rate / in_rate)
    assert np.abs(streamed.astype(np.int32) - whole).max() <= 4


@pytest.mark.parametrize("frame", [1, 7, 160, 161, 999])
def test_output_lengths_add_up_for_any_frame_size(frame):
    pcm = speechlike(8000, seconds=0.5)
    chunks = stream(Resampler(8000, 16000), pcm, frame)
    assert sum(len(c) for c in chunks) == 2 * len(pcm)
    assert all(c.dtype == np.int16 and c.ndim == 1 for c in chunks)


def test_downsampling_keeps_a_3khz_tone_and_removes_a_6khz_tone():
    kept = tone(3000, 16000)
    aliased = tone(6000, 16000)  # would fold to 2 kHz without a filter
    kept_db = level_db(resample(kept, 16000, 8000), kept)
    removed_db = level_db(resample(aliased, 16000, 8000), aliased)
    assert -0.5 < kept_db < 0.5
    assert removed_db < -60


def test_streaming_downsampler_filters_too():
    resampler = Resampler(16000, 8000)
    out = np.concatenate(stream(resampler, tone(6000, 16000), 320))
    assert level_db(out, tone(6000, 16000)) < -60


def test_upsampling_keeps_the_tone_and_adds_no_images():
    source = tone(1000, 8000)
    up = resample(source, 8000, 16000)
    assert abs(level_db(up, source)) < 0.5
    spectrum = np.abs(np.fft.rfft(up[1600:-1600].astype(np.float64)))
    freqs = np.fft.rfftfreq(len(up) - 3200, 1 / 16000)
    image = spectrum[freqs > 4500].max()  # a naive upsampler mirrors 1 kHz to 7 kHz
    assert 20 * np.log10(image / spectrum.max()) < -60


def test_telephone_band_survives_a_round_trip():
    pcm = speechlike(8000)
    back = resample(resample(pcm, 8000, 16000), 16000, 8000)
    core = slice(400, -400)
    error = back[core].astype(np.float64) - pcm[core]
    snr = 10 * np.log10(np.mean(pcm[core].astype(np.float64) ** 2) / np.mean(error**2))
    assert snr > 40


def test_flush_resets_for_a_new_stream():
    resampler = Resampler(8000, 16000)
    pcm = speechlike(8000, seconds=0.3)
    first = np.concatenate(stream(resampler, pcm, 160))
    second = np.concatenate(stream(resampler, pcm, 160))
    # soxr rounds its float output to int16 with a little dither, so allow a couple of LSBs.
    assert len(first) == len(second)
    assert np.abs(first.astype(np.int32) - second).max() <= 4


def test_equal_rates_pass_samples_through_unchanged():
    pcm = speechlike(16000, seconds=0.1)
    resampler = Resampler(16000, 16000)
    out = resampler.process(pcm)
    np.testing.assert_array_equal(out, pcm)
    assert out is not pcm
    assert len(resampler.flush()) == 0
    np.testing.assert_array_equal(resample(pcm, 16000, 16000), pcm)


def test_empty_frames_are_fine():
    resampler = Resampler(8000, 16000)
    assert len(resampler.process(np.zeros(0, np.int16))) == 0
    assert len(resample(np.zeros(0, np.int16), 8000, 16000)) == 0


def test_loud_input_clips_instead_of_wrapping():
    square = np.tile(np.array([32767] * 20 + [-32768] * 20, np.int16), 100)
    out = resample(square, 8000, 16000)
    # Overshoot (Gibbs) must saturate, never wrap around to the other sign.
    assert out[200:-200].max() == 32767 and out[200:-200].min() == -32768
    assert np.all(np.abs(np.diff(out.astype(np.int32))) < 40000)


@pytest.mark.parametrize("quality", list(ResampleQuality))
def test_every_quality_works(quality):
    out = resample(tone(1000, 8000), 8000, 16000, quality=quality)
    assert len(out) == 16000


def test_bad_input_is_rejected_clearly():
    resampler = Resampler(8000, 16000)
    with pytest.raises(AudioFormatError, match="int16"):
        resampler.process(np.zeros(10, np.float32))
    with pytest.raises(AudioFormatError, match="mono"):
        resampler.process(np.zeros((10, 2), np.int16))
    with pytest.raises(AudioFormatError, match="int16"):
        resample([1, 2, 3], 8000, 16000)
    for bad_rate in (0, -8000, 8000.5, True, "8000"):
        with pytest.raises(AudioFormatError, match="sample rate"):
            Resampler(bad_rate, 16000)
    with pytest.raises(ValueError):
        Resampler(8000, 16000, quality="best")
