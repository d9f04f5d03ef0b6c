"""The speech engine with the real tiny.en model on real 8 kHz telephone speech."""

import asyncio
import itertools

import numpy as np
import pytest

from media.eval.wer import word_errors
from media.frames import AudioFormatError, AudioFrame, Party
from media.stt import (
    DecodeRequest,
    ModelChecksumError,
    ModelNotInstalledError,
    PoolClosedError,
    SpeechModelPool,
    StreamingOptions,
    StreamingTranscriber,
    TranscriberClosedError,
    locate_model,
)
from media.stt.models import verify_files
from tests.media.speech_corpus import load_clip, reference_texts, requires_corpus

pytestmark = requires_corpus

CALL_START_MS = 61_000  # frames start mid-call, so word times must be on the call clock


@pytest.fixture(scope="module")
async def pool():
    pool = SpeechModelPool.from_model("tiny.en")
    yield pool
    await pool.close()


def _float16k(name):
    pcm = load_clip(name)
    return np.repeat(pcm, 2).astype(np.float32) / 32768.0


def _frames(pcm, party=Party.CUSTOMER, rate=8000, start_ms=CALL_START_MS, frame_ms=20):
    step = rate * frame_ms // 1000
    for i in range(0, len(pcm), step):
        yield AudioFrame(pcm[i : i + step], rate, party, start_ms + i * 1000 // rate)


async def _stream(transcriber, pcm, *, pace_every_ms=200, pause_s=0.03, **kw):
    """Push audio faster than real time but yielding often, so partials get decoded."""
    segments = []

    async def collect():
        async for segment in transcriber:
            segments.append(segment)

    reader = asyncio.create_task(collect())
    for n, frame in enumerate(_frames(pcm, **kw)):
        transcriber.push(frame)
        if n % (pace_every_ms // 20) == 0:
            await asyncio.sleep(pause_s)
    await transcriber.close()
    await reader
    return segments


def test_packaged_model_is_found_and_verified(tmp_path):
    path = locate_model("tiny.en")
    assert (path / "model.bin").is_file()
    with pytest.raises(ModelNotInstalledError):
        locate_model(str(tmp_path / "nothing-here"))
    (tmp_path / "config.json").write_text("{}")
    with pytest.raises(ModelChecksumError, match="SHA-256"):
        verify_files(tmp_path, {"config.json": "0" * 64})
    with pytest.raises(ModelChecksumError, match="missing"):
        verify_files(tmp_path, {"model.bin": "0" * 64})


async def test_batched_short_window_decode_is_accurate_with_word_times(pool):
    texts = reference_texts()
    names = ["vm-forward", "demo-nomatch", "conf-getpin", "vm-prev", "hours", "vm-messages"]
    requests = [DecodeRequest(_float16k(n)) for n in names]
    results = pool.decoder.decode(requests)
    total = sum((word_errors(texts[n], r.text) for n, r in zip(names, results)), start=word_errors("", ""))
    assert total.wer <= 0.15, [r.text for r in results]
    for request, result in zip(requests, results):
        duration = len(request.audio) / 16000
        assert result.words, result
        starts = [w.start_s for w in result.words]
        assert starts == sorted(starts)
        assert all(0 <= w.start_s <= w.end_s <= duration for w in result.words)


async def test_partials_then_finals_on_the_call_clock(pool):
    texts = reference_texts()
    names = ["conf-adminmenu-162", "vm-forward"]
    gap = np.zeros(8000, np.int16)
    pcm = np.concatenate([gap, load_clip(names[0]), gap, load_clip(names[1]), gap])
    segments = await _stream(StreamingTranscriber(Party.CUSTOMER, pool), pcm)

    finals = [s for s in segments if s.is_final]
    partials = [s for s in segments if not s.is_final]
    assert partials, "long utterances must show partial hypotheses"
    assert len(finals) >= 2
    # every partial precedes the final of its segment, with rising revisions and a fixed stable prefix
    for final in finals:
        mine = [s for s in segments if s.segment_id == final.segment_id]
        assert mine[-1] is final
        assert [s.revision for s in mine] == sorted({s.revision for s in mine})
        for earlier, later in itertools.pairwise(mine[:-1]):
            kept = earlier.stable_words
            assert [w.text for w in later.words[:kept]] == [w.text for w in earlier.words[:kept]]
            assert later.stable_words >= kept
            assert later.stable_text.startswith(earlier.stable_text)
    hypothesis = " ".join(f.text for f in finals)
    assert word_errors(" ".join(texts[n] for n in names), hypothesis).wer <= 0.15, hypothesis
    end_ms = CALL_START_MS + len(pcm) // 8
    for final in finals:
        assert final.party == "customer"
        assert CALL_START_MS <= final.start_ms <= final.end_ms <= end_ms
        times = [w.start_ms for w in final.words]
        assert times == sorted(times)
        assert all(final.start_ms <= w.start_ms <= w.end_ms <= final.end_ms for w in final.words)
        assert all(0.0 < w.probability <= 1.0 for w in final.words)
    # the second prompt starts after 1 s + the first prompt + 1 s of silence
    second_start = CALL_START_MS + (2 * 8000 + len(load_clip(names[0]))) // 8
    assert abs(finals[-1].start_ms - second_start) < 700


@pytest.mark.parametrize("holdback", [0, 2])
async def test_stable_prefix_follows_agreement_or_holdback(pool, holdback):
    """With a hold-back of K, every partial shows all but its last K words as stable; with 0,
    only words two successive hypotheses agreed on are stable (never the hypothesis' last word)."""
    pcm = np.concatenate([np.zeros(4000, np.int16), load_clip("conf-adminmenu-162"), np.zeros(8000, np.int16)])
    options = StreamingOptions(stable_holdback_words=holdback)
    # at about real-time pace, so partials are not all superseded on a busy machine
    segments = await _stream(StreamingTranscriber(Party.CUSTOMER, pool, options=options), pcm, pause_s=0.15)
    partials = [s for s in segments if not s.is_final]
    assert len(partials) >= 3
    shown = [(p.text, p.stable_words) for p in partials]
    for partial in partials:
        assert partial.stable_words <= len(partial.words) - 1, shown  # the last word may still be cut
        if holdback:
            assert partial.stable_words >= len(partial.words) - holdback, shown
    if not holdback:
        # the first partial has nothing to agree with: nothing of it is stable
        assert partials[0].stable_words == 0, shown


def test_hallucinated_partial_hypotheses_are_recognised():
    from media.stt.streaming import plausible_hypothesis

    said = ["Press", "1", "to", "switch", "to", "playback", "mode"]
    assert plausible_hypothesis(said, 2400)
    # Whisper continuing its prompt over 1 s of audio: too many words, and a loop
    assert not plausible_hypothesis((said * 2)[:10], 1000)
    assert not plausible_hypothesis(["Press", "1", "to", "cancel", "the", "message.", "Press", "1", "to", "cancel", "the", "message."], 9000)
    assert plausible_hypothesis([], 0)


async def test_silence_and_line_noise_are_never_decoded(pool):
    rng = np.random.default_rng(3)
    seconds = 30
    t = np.arange(seconds * 8000) / 8000
    noise = rng.normal(0, 200, t.size) + 250 * np.sin(2 * np.pi * 60 * t)
    noise[: 10 * 8000] = 0  # ten seconds of digital silence first
    before = pool.stats()
    segments = await _stream(
        StreamingTranscriber(Party.REP, pool), noise.astype(np.int16), party=Party.REP,
        pace_every_ms=1000, pause_s=0,
    )
    after = pool.stats()
    assert segments == []
    assert after.finals_decoded == before.finals_decoded
    assert after.partials_decoded == before.partials_decoded


async def test_bad_input_gets_clear_errors_and_the_stream_survives(pool):
    transcriber = StreamingTranscriber(Party.REP, pool)
    transcriber.push(AudioFrame(np.zeros(0, np.int16), 8000, Party.REP, 0))  # empty: ignored
    transcriber.push(AudioFrame(np.zeros(160, np.int16), 8000, Party.REP, 0))
    with pytest.raises(AudioFormatError, match="sample rate changed"):
        transcriber.push(AudioFrame(np.zeros(320, np.int16), 16000, Party.REP, 20))
    with pytest.raises(AudioFormatError, match="party"):
        transcriber.push(AudioFrame(np.zeros(160, np.int16), 8000, Party.CUSTOMER, 20))
    with pytest.raises(AudioFormatError):
        AudioFrame(np.zeros(160, np.int16), 11025, Party.REP, 0)
    speech = load_clip("vm-prev")
    for frame in _frames(np.concatenate([speech, np.zeros(8000, np.int16)]), Party.REP, start_ms=20):
        transcriber.push(frame)
    segments = []

    async def collect():
        async for s in transcriber:
            segments.append(s)

    reader = asyncio.create_task(collect())
    await transcriber.close()
    await reader
    assert [s.text for s in segments if s.is_final] == ["Press 4 for the previous message."]
    with pytest.raises(TranscriberClosedError):
        transcriber.push(AudioFrame(np.zeros(160, np.int16), 8000, Party.REP, 5000))


async def test_16khz_input_and_hotword_prompt(pool):
    pcm = np.repeat(load_clip("demo-nomatch"), 2)
    transcriber = StreamingTranscriber(
        Party.REP, pool, hotwords="Coachline, Acme", initial_prompt="A sales call."
    )
    segments = await _stream(transcriber, np.concatenate([pcm, np.zeros(16000, np.int16)]),
                             party=Party.REP, rate=16000, start_ms=0)
    finals = [s for s in segments if s.is_final]
    assert len(finals) == 1
    assert word_errors("I'm sorry there are no matches for those keywords", finals[0].text).wer <= 0.2


async def test_pool_prefers_finals_and_replaces_stale_partials(pool):
    audio = _float16k("vm-forward")
    first = pool.submit("s1", DecodeRequest(audio, word_timestamps=False), final=False)
    second = pool.submit("s1", DecodeRequest(audio, word_timestamps=False), final=False)
    final = pool.submit("s2", DecodeRequest(audio), final=True)
    order = []
    for name, fut in (("first", first), ("second", second), ("final", final)):
        fut.add_done_callback(lambda f, name=name: order.append(name))
    results = await asyncio.gather(first, second, final)
    assert results[0] is None  # superseded by the newer partial of the same stream
    assert results[1].text and results[2].words
    assert order.index("final") < order.index("second")
    stats = pool.stats()
    assert stats.partials_superseded >= 1 and stats.finals_decoded >= 1
    assert stats.queue_lag_ms == 0.0


def test_decoder_needs_a_complete_local_model_and_leaves_the_environment_alone(tmp_path, monkeypatch):
    import os

    from media.stt import DecoderError, WhisperDecoder

    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    (tmp_path / "model.bin").write_bytes(b"")
    with pytest.raises(DecoderError, match="tokenizer.json"):
        WhisperDecoder(tmp_path)
    WhisperDecoder(locate_model("tiny.en"))
    assert "HF_HUB_OFFLINE" not in os.environ


async def test_closed_pool_refuses_work():
    from media.stt import WhisperDecoder

    closed = SpeechModelPool(WhisperDecoder(locate_model("tiny.en")))
    await closed.close()
    with pytest.raises(PoolClosedError):
        closed.submit("s", DecodeRequest(np.zeros(16000, np.float32)), final=True)


async def test_a_batch_mixing_prompts_of_different_lengths_decodes_every_item(pool):
    audio = _float16k("vm-prev")
    requests = [
        DecodeRequest(audio),
        DecodeRequest(audio, prompt="Thanks for calling."),
        DecodeRequest(audio, prompt="A much longer earlier turn of this call " * 8, hotwords="Acme"),
    ]
    results = pool.decoder.decode(requests)
    assert all(word_errors("Press 4 for the previous message", r.text).wer == 0 for r in results)


async def test_a_hole_in_the_stream_keeps_word_times_on_the_call_clock(pool):
    transcriber = StreamingTranscriber(Party.REP, pool)
    first = np.concatenate([load_clip("vm-prev"), np.zeros(8000, np.int16)])
    second = np.concatenate([load_clip("demo-nomatch"), np.zeros(8000, np.int16)])
    segments = []

    async def collect():
        async for s in transcriber:
            segments.append(s)

    reader = asyncio.create_task(collect())
    # 60 s of nothing between the two (a hold, or a carrier that stops sending on silence)
    for frame in list(_frames(first, Party.REP, start_ms=0)) + list(_frames(second, Party.REP, start_ms=60_000)):
        transcriber.push(frame)
        await asyncio.sleep(0)
    await transcriber.close()
    await reader
    finals = [s for s in segments if s.is_final]
    assert len(finals) == 2
    assert finals[0].end_ms < 5_000
    assert 60_000 <= finals[1].start_ms < 61_500
    assert all(60_000 <= w.start_ms for w in finals[1].words)


def test_cpu_parallelism_gives_each_core_a_single_threaded_worker_up_to_four():
    from media.stt import cpu_parallelism

    assert cpu_parallelism(1) == (1, 1)
    assert cpu_parallelism(2) == (2, 1)
    assert cpu_parallelism(16) == (4, 4)
    assert cpu_parallelism(2, workers=1) == (1, 2)  # one worker gets every core
    assert cpu_parallelism(8, workers=3, threads=5) == (3, 5)  # what the operator set stands
    assert cpu_parallelism(0) == (1, 1)
