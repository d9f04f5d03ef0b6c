"""Streaming speech-to-text: one shared speech engine (Whisper), one transcriber per party."""

from media.stt.decoder import DecoderError, DecoderOptions, WhisperDecoder
from media.stt.engine import DecodedWord, DecodeRequest, DecodeResult, SpeechDecoder
from media.stt.models import DEFAULT_MODEL, ModelChecksumError, ModelNotInstalledError, locate_model
from media.stt.pool import PoolClosedError, PoolOptions, PoolStats, SpeechModelPool, cpu_parallelism
from media.stt.streaming import StreamingOptions, StreamingTranscriber, TranscriberClosedError

__all__ = [
    "DEFAULT_MODEL",
    "DecodeRequest",
    "DecodeResult",
    "DecodedWord",
    "DecoderError",
    "DecoderOptions",
    "ModelChecksumError",
    "ModelNotInstalledError",
    "PoolClosedError",
    "PoolOptions",
    "PoolStats",
    "SpeechDecoder",
    "SpeechModelPool",
    "StreamingOptions",
    "StreamingTranscriber",
    "TranscriberClosedError",
    "WhisperDecoder",
    "cpu_parallelism",
    "locate_model",
]
