"""G.711 µ-law and A-law companding (ITU-T G.711), table driven.

Carriers send telephone audio as one byte per sample: µ-law (PCMU, North
America/Japan) or A-law (PCMA, everywhere else). Both laws are computed
here once, at import, for every possible input — 256 codes to decode and
65 536 PCM16 values to encode — so a frame is converted with a single numpy
gather. That is bit-exact by construction (the tables come from the
segment/step definitions of G.711) and much faster than per-sample code.

Linear values are 16-bit: µ-law works on the top 14 bits and A-law on the
top 13 bits of each sample, the same convention as the classic reference
coders (and Python's old ``audioop``), so decoded values are the G.711
reconstruction levels scaled to the 16-bit range.

One known divergence between reference coders: for µ-law, the ITU-T G.191
software library turns negative two's-complement input into a magnitude by
ones' complement, which moves 508 of the 65 536 negative 16-bit inputs (those
sitting exactly on a step edge) one code towards zero. We keep the
sign-symmetric magnitude (|-x| == |x|) that ``audioop`` uses, so both
signs quantise identically; all 256 decoded levels are identical in both.
"""

from __future__ import annotations

import numpy as np

from media.frames import AudioFormatError

__all__ = ["alaw_decode", "alaw_encode", "ulaw_decode", "ulaw_encode"]

# µ-law: a bias of 33 (in 14-bit units) makes every segment's upper edge a
# power of two minus one, so the segment number is the bit length of the
# biased magnitude minus 6. Magnitudes above 8159 saturate to the top code.
_ULAW_BIAS = 33
_ULAW_CLIP = 8159
# A-law segment upper edges in 13-bit magnitude units (segment 0 and 1 share a step).
_ALAW_SEGMENT_END = np.array([0x1F, 0x3F, 0x7F, 0xFF, 0x1FF, 0x3FF, 0x7FF, 0xFFF])
_ULAW_SEGMENT_END = np.array([0x3F, 0x7F, 0xFF, 0x1FF, 0x3FF, 0x7FF, 0xFFF, 0x1FFF])

_ALL_PCM = np.arange(-32768, 32768, dtype=np.int32)
_ALL_CODES = np.arange(256, dtype=np.int32)


def _build_ulaw_encode_table() -> np.ndarray:
    value = _ALL_PCM >> 2  # 14-bit two's complement
    negative = value < 0
    magnitude = np.minimum(np.where(negative, -value, value), _ULAW_CLIP) + _ULAW_BIAS
    segment = np.searchsorted(_ULAW_SEGMENT_END, magnitude, side="left")
    step_bits = np.minimum(segment, 7) + 1
    code = (np.minimum(segment, 7) << 4) | ((magnitude >> step_bits) & 0x0F)
    # Past the last segment edge: saturate to the largest magnitude code.
    code = np.where(segment >= 8, 0x7F, code)
    # µ-law transmits the ones' complement; the sign bit is set for positive values.
    code = np.where(negative, code ^ 0x7F, code ^ 0xFF)
    return _indexed_by_uint16(code.astype(np.uint8))


def _build_alaw_encode_table() -> np.ndarray:
    value = _ALL_PCM >> 3  # 13-bit two's complement
    negative = value < 0
    # Negative values use ones' complement magnitudes (-1 -> 0), as G.711 does.
    magnitude = np.where(negative, -value - 1, value)
    segment = np.searchsorted(_ALAW_SEGMENT_END, magnitude, side="left")
    shift = np.where(segment < 2, 1, segment)
    code = (np.minimum(segment, 7) << 4) | ((magnitude >> np.minimum(shift, 7)) & 0x0F)
    code = np.where(segment >= 8, 0x7F, code)
    # Even bits are inverted on the line (0x55); the sign bit is set for positive values.
    code = np.where(negative, code ^ 0x55, code ^ 0xD5)
    return _indexed_by_uint16(code.astype(np.uint8))


def _indexed_by_uint16(table_from_min: np.ndarray) -> np.ndarray:
    """Reorder a table built for -32768..32767 so it is indexed by the int16 bit pattern."""
    return np.roll(table_from_min, -32768)


def _build_ulaw_decode_table() -> np.ndarray:
    code = ~_ALL_CODES & 0xFF
    segment = (code >> 4) & 0x07
    magnitude = ((((code & 0x0F) << 3) + 0x84) << segment) - 0x84
    return np.where(code & 0x80, -magnitude, magnitude).astype(np.int16)


def _build_alaw_decode_table() -> np.ndarray:
    code = _ALL_CODES ^ 0x55
    segment = (code >> 4) & 0x07
    # Reconstruct at the middle of the quantisation step (the "+ half step" terms).
    magnitude = ((code & 0x0F) << 4) + np.where(segment == 0, 8, 0x108)
    magnitude = np.where(segment > 1, magnitude << np.maximum(segment - 1, 0), magnitude)
    return np.where(code & 0x80, magnitude, -magnitude).astype(np.int16)


_ULAW_ENCODE = _build_ulaw_encode_table()
_ALAW_ENCODE = _build_alaw_encode_table()
_ULAW_DECODE = _build_ulaw_decode_table()
_ALAW_DECODE = _build_alaw_decode_table()
for _table in (_ULAW_ENCODE, _ALAW_ENCODE, _ULAW_DECODE, _ALAW_DECODE):
    _table.setflags(write=False)


def ulaw_decode(data: bytes | bytearray | memoryview) -> np.ndarray:
    """µ-law bytes (one per sample) -> mono PCM16."""
    return _ULAW_DECODE[_codes(data)]


def alaw_decode(data: bytes | bytearray | memoryview) -> np.ndarray:
    """A-law bytes (one per sample) -> mono PCM16."""
    return _ALAW_DECODE[_codes(data)]


def ulaw_encode(pcm: np.ndarray | bytes | bytearray | memoryview) -> bytes:
    """Mono PCM16 (int16 array, or little-endian bytes) -> µ-law bytes."""
    return _ULAW_ENCODE[_pcm_bits(pcm)].tobytes()


def alaw_encode(pcm: np.ndarray | bytes | bytearray | memoryview) -> bytes:
    """Mono PCM16 (int16 array, or little-endian bytes) -> A-law bytes."""
    return _ALAW_ENCODE[_pcm_bits(pcm)].tobytes()


def _codes(data: object) -> np.ndarray:
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise AudioFormatError(f"G.711 data must be bytes, got {type(data).__name__}")
    return np.frombuffer(data, dtype=np.uint8)


def _pcm_bits(pcm: object) -> np.ndarray:
    """The samples' 16-bit patterns as table indices."""
    if isinstance(pcm, (bytes, bytearray, memoryview)):
        if len(pcm) % 2:
            raise AudioFormatError(f"PCM16 bytes must have an even length, got {len(pcm)}")
        return np.frombuffer(pcm, dtype="<u2")
    if not isinstance(pcm, np.ndarray):
        raise AudioFormatError(f"PCM must be a numpy int16 array, got {type(pcm).__name__}")
    if pcm.dtype != np.int16:
        raise AudioFormatError(f"PCM must be int16, got dtype {pcm.dtype}")
    if pcm.ndim != 1:
        raise AudioFormatError(f"PCM must be mono (1-D), got shape {pcm.shape}")
    return pcm.view(np.uint16)
