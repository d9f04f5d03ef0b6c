"""Coachline inside any pipecat pipeline (the optional ``coachline[pipecat]`` extra).

    pipeline = Pipeline([
        transport.input(),
        CoachlineSTTService(party="customer"),  # audio in -> interim + final transcription frames
        CoachlineCoachProcessor(),              # transcription frames -> CoachingPromptFrame
        ...,
    ])

The speech service streams: it emits ``InterimTranscriptionFrame`` partials while someone is
still speaking (pipecat's own local Whisper service transcribes only whole VAD segments) and a
``TranscriptionFrame`` per final utterance. The coach runs Coachline's rules, sentiment and talk
metrics over the frames and pushes a ``CoachingPromptFrame`` for each prompt. Nothing here
opens a socket or a database: it is the pure speech and coaching rooms behind pipecat's
processor interface.
"""

from coachline_pipecat.coach import CoachingPromptFrame, CoachlineCoachProcessor
from coachline_pipecat.stt import CoachlineSTTService

__all__ = ["CoachingPromptFrame", "CoachlineCoachProcessor", "CoachlineSTTService"]
