import numpy as np
import pytest

from media.frames import AudioFrame, Party
from media.recording import ChannelLayout, RecordingAligner, RecordingOptions


def _frame(party, ts_ms, value, ms=20, rate=8000):
    return AudioFrame(np.full(rate * ms // 1000, value, np.int16), rate, party, ts_ms)


def _run(aligner, frames):
    out = bytearray()
    for f in frames:
        for block in aligner.push(f):
            assert len(block) == aligner.block_bytes
            out += block
    out += aligner.finish()
    return np.frombuffer(bytes(out), "<i2")


def test_stereo_interleaves_rep_left_customer_right():
    aligner = RecordingAligner(ChannelLayout.STEREO)
    frames = []
    for i in range(50):  # one second, both parties every 20 ms
        frames += [_frame(Party.REP, i * 20, 100), _frame(Party.CUSTOMER, i * 20, -200)]
    pcm = _run(aligner, frames)
    assert len(pcm) == 2 * 8000
    assert (pcm[0::2] == 100).all() and (pcm[1::2] == -200).all()


def test_blocks_come_out_while_frames_arrive_not_at_the_end():
    aligner = RecordingAligner(ChannelLayout.STEREO, RecordingOptions(block_ms=100))
    got = 0
    for i in range(100):
        got += len(aligner.push(_frame(Party.REP, i * 20, 1)))
        got += len(aligner.push(_frame(Party.CUSTOMER, i * 20, 2)))
    assert got == 20  # 2 s of audio, 100 ms blocks, nothing held back


def test_silence_where_a_party_sent_nothing_including_gaps():
    aligner = RecordingAligner(ChannelLayout.STEREO)
    frames = []
    for i in range(100):  # rep talks 0-2 s; customer only 1.0-1.4 s, then a gap, then 1.8-2.0 s
        frames.append(_frame(Party.REP, i * 20, 7))
        if 50 <= i < 70 or i >= 90:
            frames.append(_frame(Party.CUSTOMER, i * 20, 9))
    pcm = _run(aligner, frames)
    rep, cust = pcm[0::2], pcm[1::2]
    assert len(rep) == 16000 and (rep == 7).all()
    assert (cust[:8000] == 0).all() and (cust[8000:11200] == 9).all()
    assert (cust[11200:14400] == 0).all() and (cust[14400:] == 9).all()


def test_a_lagging_party_within_the_window_is_kept_beyond_it_is_dropped():
    aligner = RecordingAligner(ChannelLayout.STEREO, RecordingOptions(max_lag_ms=300))
    frames = [_frame(Party.REP, i * 20, 5) for i in range(50)]  # rep runs 1 s ahead
    frames += [_frame(Party.CUSTOMER, i * 20, 6) for i in range(50)]  # customer arrives late
    pcm = _run(aligner, frames)
    cust = pcm[1::2]
    assert (cust[:5600] == 0).all()  # older than the lag window when it arrived: silence
    assert (cust[5600:] == 6).all()
    assert aligner.stats.late_samples_dropped == 5600


def test_mixed_calls_are_mono_and_other_parties_are_counted_not_crashing():
    aligner = RecordingAligner(ChannelLayout.for_party(Party.MIXED))
    pcm = _run(
        aligner, [_frame(Party.MIXED, i * 20, 3) for i in range(25)] + [_frame(Party.REP, 0, 1)]
    )
    assert aligner.layout is ChannelLayout.MONO and len(pcm) == 4000 and (pcm == 3).all()
    assert aligner.stats.frames_of_wrong_party == 1


@pytest.mark.parametrize(
    "in_rate,out_rate", [(16000, 8000), (48000, 16000), (24000, 16000), (8000, 16000)]
)
def test_frames_at_other_rates_land_on_the_same_clock(in_rate, out_rate):
    aligner = RecordingAligner(ChannelLayout.MONO, RecordingOptions(sample_rate=out_rate))
    frames = [_frame(Party.MIXED, i * 20, 1000, rate=in_rate) for i in range(50)]
    pcm = _run(aligner, frames)
    assert (
        abs(len(pcm) - out_rate) <= out_rate // 200
    )  # one second (give or take the filter's delay)
    interior = pcm[out_rate // 50 : -out_rate // 50]  # away from the filter's start-up and tail
    assert (np.abs(interior.astype(int) - 1000) <= 2).all()  # no clicks at frame edges


def test_a_resampled_party_keeps_a_tone_and_its_place_after_a_gap():
    rate_in = 16000
    t = np.arange(rate_in) / rate_in
    tone = (8000 * np.sin(2 * np.pi * 440 * t)).astype(np.int16)
    aligner = RecordingAligner(ChannelLayout.MONO, RecordingOptions(sample_rate=8000))
    frames = [
        AudioFrame(tone[i * 320 : (i + 1) * 320], rate_in, Party.MIXED, i * 20) for i in range(25)
    ]
    frames += [
        AudioFrame(tone[i * 320 : (i + 1) * 320], rate_in, Party.MIXED, 1000 + i * 20)
        for i in range(25, 50)
    ]
    pcm = _run(aligner, frames).astype(float)
    expected = 8000 * np.sin(2 * np.pi * 440 * np.arange(8000) / 8000)
    assert np.abs(pcm[400:3600] - expected[400:3600]).max() < 400  # clean 440 Hz at 8 kHz
    assert np.abs(pcm[4200:5000]).max() < 50  # the gap (0.5-1.0 s) is silence
    assert np.abs(pcm[12400:15600] - expected[4400:7600]).max() < 400  # back on the call clock


def test_a_clock_jump_emits_shared_silence_without_growing_memory():
    aligner = RecordingAligner(ChannelLayout.STEREO)
    aligner.push(_frame(Party.REP, 0, 1))
    blocks = aligner.push(_frame(Party.REP, 3_600_000, 1))  # one hour later
    assert len(blocks) >= 35990
    assert len({id(b) for b in blocks}) <= 3  # the silent block is one shared object
    assert max(len(buf) for buf in aligner._pending) < 8000


def test_silence_before_and_after_emission():
    aligner = RecordingAligner(ChannelLayout.STEREO, RecordingOptions(block_ms=100, max_lag_ms=200))
    out = bytearray()
    for i in range(50):
        for party in (Party.REP, Party.CUSTOMER):
            out += b"".join(aligner.push(_frame(party, i * 20, 10)))
    # 0.2-0.3 s is already out: the caller gets its byte range to silence there.
    assert aligner.silence(200, 300) == (200 * 8 * 4, 300 * 8 * 4)
    # 0.9-1.5 s: the part already out comes back to the caller; the rest is silenced here.
    assert aligner.emitted_ms == 1000
    lo, hi = aligner.silence(900, 1500)
    assert (lo, hi) == (900 * 32, 1000 * 32)
    out[lo:hi] = bytes(hi - lo)
    for i in range(50, 100):
        for party in (Party.REP, Party.CUSTOMER):
            out += b"".join(aligner.push(_frame(party, i * 20, 10)))
    out += aligner.finish()
    pcm = np.frombuffer(bytes(out), "<i2")
    assert (pcm[900 * 16 : 1500 * 16] == 0).all()
    assert (pcm[1500 * 16 :] == 10).all() and (pcm[: 200 * 16] == 10).all()


def test_options_are_checked():
    with pytest.raises(ValueError):
        RecordingOptions(sample_rate=44100)


def test_advance_to_writes_silence_for_a_stall_and_later_audio_follows():
    aligner = RecordingAligner(ChannelLayout.STEREO, RecordingOptions(block_ms=100, max_lag_ms=500))
    out = bytearray()
    for i in range(10):  # 200 ms of the rep only: held back by the lag window
        out += b"".join(aligner.push(_frame(Party.REP, i * 20, 4)))
    assert not out
    out += b"".join(aligner.advance_to(1000))  # nothing came for a while: 0-1 s is final
    assert aligner.emitted_ms == 1000
    for i in range(50, 60):
        out += b"".join(aligner.push(_frame(Party.REP, i * 20, 5)))
    out += aligner.finish()
    rep = np.frombuffer(bytes(out), "<i2")[0::2]
    assert (rep[:1600] == 4).all() and (rep[1600:8000] == 0).all() and (rep[8000:] == 5).all()
