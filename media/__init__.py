"""Audio in, words out: frames, codecs, resampling, RTP, VAD, speech-to-text.

Pure: no sockets, no database, no global state.
"""

from media.frames import AudioFormatError, AudioFrame, Party

__all__ = ["AudioFormatError", "AudioFrame", "Party"]
