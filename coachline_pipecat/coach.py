"""Coachline's live coaching as a pipecat frame processor."""

from __future__ import annotations

import asyncio
import itertools
from dataclasses import dataclass

from pipecat.frames.frames import (
    DataFrame,
    EndFrame,
    Frame,
    InterimTranscriptionFrame,
    TranscriptionFrame,
)
from pipecat.processors.frame_processor import FrameDirection, FrameProcessor

from coaching.call_coach import CallCoach, CoachingProfile
from coaching.records import CallSummary, CoachingPrompt, SegmentInput
from media.transcript import TranscriptSegment


@dataclass
class CoachingPromptFrame(DataFrame):
    """A coaching prompt for the agent: ``prompt.title``/``prompt.body``, its severity and rule."""

    prompt: CoachingPrompt

    def __str__(self) -> str:
        return f"{self.name}(rule: {self.prompt.rule_id}, title: [{self.prompt.title}])"


class CoachlineCoachProcessor(FrameProcessor):
    """Transcription frames in (passed on unchanged); a ``CoachingPromptFrame`` after each
    frame that fires a prompt. Keyword prompts fire on partials already, so a competitor named
    mid-sentence is coached before the sentence ends; each prompt fires once per cooldown.

    Frames from ``CoachlineSTTService`` carry their segment (party, timing, words); other
    services' transcription frames are coached as ``default_party`` with no timing. At the
    pipeline's end ``summary`` holds the call summary (next steps, objections, metrics).
    """

    def __init__(
        self, profile: CoachingProfile | None = None, *, default_party: str = "customer", **kwargs
    ) -> None:
        super().__init__(**kwargs)
        self._coach = CallCoach(profile)
        self._default_party = default_party
        self._ids = itertools.count(1)
        self._last_ms = 0
        self.summary: CallSummary | None = None

    async def process_frame(self, frame: Frame, direction: FrameDirection) -> None:
        await super().process_frame(frame, direction)
        prompts: list[CoachingPrompt] = []
        if (
            isinstance(frame, TranscriptionFrame | InterimTranscriptionFrame)
            and not self._coach.finished
        ):
            segment = self._segment_of(frame)
            # a final runs the sentiment model, which may be a neural network: off the loop
            insights = (
                await asyncio.to_thread(self._coach.feed, segment)
                if segment.is_final
                else self._coach.feed(segment)
            )
            prompts = [i for i in insights if isinstance(i, CoachingPrompt)]
        elif isinstance(frame, EndFrame) and not self._coach.finished:
            self.summary = self._coach.finish(self._last_ms)
        await self.push_frame(frame, direction)
        for prompt in prompts:
            await self.push_frame(CoachingPromptFrame(prompt=prompt), direction)

    def _segment_of(self, frame: TranscriptionFrame | InterimTranscriptionFrame) -> SegmentInput:
        final = isinstance(frame, TranscriptionFrame)
        if isinstance(frame.result, TranscriptSegment):
            segment = SegmentInput.from_transcript(frame.result)
        else:
            # another service's frame: one segment per final, its partials sharing the id
            number = next(self._ids) if final else 0
            segment = SegmentInput.build(
                f"pipecat-{number}" if final else "pipecat-partial",
                self._default_party,
                frame.text,
                self._last_ms,
                self._last_ms,
                (),
                final,
            )
        self._last_ms = max(self._last_ms, segment.end_ms)
        return segment
