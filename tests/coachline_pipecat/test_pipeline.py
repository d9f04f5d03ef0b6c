"""Coachline inside a real pipecat pipeline: recorded telephone speech in, streaming
transcription and coaching prompts out, offline (the ``coachline[pipecat]`` extra)."""

from __future__ import annotations

import asyncio
import re

import pytest

pipecat = pytest.importorskip(
    "pipecat", reason="the coachline[pipecat] extra (pipecat-ai) is not installed"
)

from pipecat.frames.frames import EndFrame, InterimTranscriptionFrame, TranscriptionFrame
from pipecat.pipeline.pipeline import Pipeline
from pipecat.pipeline.worker import PipelineWorker
from pipecat.workers.runner import WorkerRunner

from coaching.call_coach import CoachingProfile
from coachline_pipecat import CoachingPromptFrame, CoachlineCoachProcessor
from coachline_pipecat.example import _Collector, run_recording
from media.transcript import TranscriptSegment
from tests.media.speech_corpus import SOUNDS, reference_texts, requires_corpus

pytestmark = pytest.mark.timeout(300)

# "conference" is said in the recording; the organization names it as a competitor
RULES = {"keywords": {"competitor": {"phrases": [{"phrase": "conference"}]}}}
CLIP = "conf-getconfno"  # "Please enter your conference number followed by the pound key."


def _words(text: str) -> list[str]:
    return re.findall(r"[a-z']+", text.lower())


@requires_corpus
async def test_recorded_speech_through_a_pipecat_pipeline_gives_partials_finals_and_a_prompt():
    frames, summary = await run_recording(
        SOUNDS / f"{CLIP}.wav", profile=CoachingProfile.load(RULES)
    )

    finals = [f for f in frames if isinstance(f, TranscriptionFrame)]
    partials = [f for f in frames if isinstance(f, InterimTranscriptionFrame)]
    prompts = [f for f in frames if isinstance(f, CoachingPromptFrame)]
    assert len(finals) == 1, [str(f) for f in frames]
    final = finals[0]
    assert final.finalized and isinstance(final.result, TranscriptSegment)
    assert final.result.party == "customer" and final.result.is_final
    reference = _words(reference_texts()[CLIP])
    heard = _words(final.text)
    # tiny.en on this clip: every word right but, at worst, one
    assert sum(a == b for a, b in zip(heard, reference, strict=False)) >= len(reference) - 1, (
        final.text
    )

    # streaming: partials of the same utterance came before its final
    assert partials and frames.index(partials[0]) < frames.index(final)
    assert {p.result.segment_id for p in partials} == {final.result.segment_id}

    # the competitor prompt, once, for the customer's mention
    assert [p.prompt.rule_id for p in prompts] == ["competitor-battlecard"]
    assert prompts[0].prompt.party == "customer"
    assert "conference" in prompts[0].prompt.title.lower()
    assert summary is not None and summary.competitors == ("conference",)


async def test_transcription_from_another_speech_service_is_coached_too():
    # any pipecat STT service's frames: coached as the default party, one segment per final
    coach = CoachlineCoachProcessor(CoachingProfile.load(RULES), default_party="customer")
    collector = _Collector(None)
    worker = PipelineWorker(Pipeline([coach, collector]), cancel_on_idle_timeout=False)
    started = asyncio.Event()

    @worker.event_handler("on_pipeline_started")
    async def _started(_worker, _frame):
        started.set()

    async def feed():
        await started.wait()
        await worker.queue_frame(TranscriptionFrame("We looked at pricing.", "caller", "t0"))
        await worker.queue_frame(
            TranscriptionFrame("Conference came up in the review.", "caller", "t1")
        )
        await worker.queue_frame(TranscriptionFrame("Conference again, honestly.", "caller", "t2"))
        await worker.queue_frame(EndFrame())

    runner = WorkerRunner(handle_sigint=False)
    await runner.add_workers(worker)
    await asyncio.gather(runner.run(), feed())

    kinds = [type(f).__name__ for f in collector.frames]
    prompts = [f for f in collector.frames if isinstance(f, CoachingPromptFrame)]
    # the prompt follows the frame that fired it; the second mention is inside the cooldown
    assert kinds == [
        "TranscriptionFrame",
        "TranscriptionFrame",
        "CoachingPromptFrame",
        "TranscriptionFrame",
    ]
    assert [p.prompt.rule_id for p in prompts] == ["competitor-battlecard"]
    assert coach.summary is not None and coach.summary.competitors == ("conference",)
