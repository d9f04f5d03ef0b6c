"""A pipecat pipeline that transcribes and coaches a recorded call side, as it would a live one.

    python -m coachline_pipecat.example customer.wav [--rules rules.json] [--party customer]

The WAV (16-bit mono, 8/16/24/48 kHz) is played into the pipeline at its own pace in 20 ms
frames, as a telephony transport would deliver it; partials, finals and prompts are printed as
they arrive. ``run_recording`` is the same pipeline as a function (the tests run it).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import wave
from collections.abc import Callable
from pathlib import Path

from pipecat.frames.frames import (
    EndFrame,
    Frame,
    InputAudioRawFrame,
    InterimTranscriptionFrame,
    TranscriptionFrame,
)
from pipecat.pipeline.pipeline import Pipeline
from pipecat.pipeline.worker import PipelineParams, PipelineWorker
from pipecat.processors.frame_processor import FrameDirection, FrameProcessor
from pipecat.workers.runner import WorkerRunner

from coaching.call_coach import CoachingProfile
from coaching.records import CallSummary
from coachline_pipecat.coach import CoachingPromptFrame, CoachlineCoachProcessor
from coachline_pipecat.stt import CoachlineSTTService
from media.stt.pool import SpeechModelPool

FRAME_MS = 20


class _Collector(FrameProcessor):
    """The pipeline's end: keeps (and optionally reports) what reaches it."""

    def __init__(self, on_frame: Callable[[Frame], None] | None) -> None:
        super().__init__()
        self.frames: list[Frame] = []
        self._on_frame = on_frame

    async def process_frame(self, frame: Frame, direction: FrameDirection) -> None:
        await super().process_frame(frame, direction)
        if isinstance(frame, TranscriptionFrame | InterimTranscriptionFrame | CoachingPromptFrame):
            self.frames.append(frame)
            if self._on_frame:
                self._on_frame(frame)
        await self.push_frame(frame, direction)


def _read_wav(path: Path) -> tuple[bytes, int]:
    with wave.open(str(path)) as w:
        if w.getnchannels() != 1 or w.getsampwidth() != 2:
            raise ValueError(f"{path}: expected 16-bit mono PCM")
        return w.readframes(w.getnframes()), w.getframerate()


async def run_recording(
    path: Path,
    *,
    profile: CoachingProfile | None = None,
    party: str = "customer",
    pool: SpeechModelPool | None = None,
    realtime: bool = True,
    on_frame: Callable[[Frame], None] | None = None,
) -> tuple[list[Frame], CallSummary | None]:
    """Play ``path`` through speech → coach → collector; the frames that came out, and the
    coach's summary."""
    audio, rate = _read_wav(path)
    stt = CoachlineSTTService(pool=pool, party=party)
    coach = CoachlineCoachProcessor(profile, default_party=party)
    collector = _Collector(on_frame)
    worker = PipelineWorker(
        Pipeline([stt, coach, collector]),
        params=PipelineParams(audio_in_sample_rate=rate),
        cancel_on_idle_timeout=False,
    )
    started = asyncio.Event()

    @worker.event_handler("on_pipeline_started")
    async def _started(_worker, _frame) -> None:
        started.set()

    async def play() -> None:
        await started.wait()
        step = rate * FRAME_MS // 1000 * 2
        for offset in range(0, len(audio), step):
            await worker.queue_frame(InputAudioRawFrame(audio[offset : offset + step], rate, 1))
            if realtime:
                await asyncio.sleep(FRAME_MS / 1000)
        await worker.queue_frame(EndFrame())

    runner = WorkerRunner(handle_sigint=False)
    await runner.add_workers(worker)
    await asyncio.gather(runner.run(), play())
    return collector.frames, coach.summary


def _print(frame: Frame) -> None:
    if isinstance(frame, CoachingPromptFrame):
        print(f"PROMPT  [{frame.prompt.severity}] {frame.prompt.title}: {frame.prompt.body}")
    elif isinstance(frame, TranscriptionFrame):
        print(f"FINAL   {frame.text}")
    else:
        print(f"partial {frame.text}")
    sys.stdout.flush()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("wav", type=Path)
    parser.add_argument("--rules", type=Path, help="an organization's coaching rule set (JSON)")
    parser.add_argument("--party", default="customer", help="who speaks in the WAV (rep|customer)")
    args = parser.parse_args(argv)
    profile = CoachingProfile.load(json.loads(args.rules.read_text())) if args.rules else None
    _frames, summary = asyncio.run(
        run_recording(args.wav, profile=profile, party=args.party, on_frame=_print)
    )
    if summary is not None:
        print(
            f"summary: {len(summary.next_steps)} next steps, {len(summary.objections)} objections"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
