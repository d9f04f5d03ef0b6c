"""G.711 codecs: bit-exact on every input, against audioop and G.711 anchor values."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

from media.frames import AudioFormatError
from media.g711 import alaw_decode, alaw_encode, ulaw_decode, ulaw_encode

with warnings.catch_warnings():
    warnings.simplefilter("ignore", DeprecationWarning)
    # audioop is the reference coder here only; it is gone in Python 3.13.
    audioop = pytest.importorskip("audioop", reason="audioop (reference coder) needs Python < 3.13")

ALL_PCM = np.arange(-32768, 32768, dtype=np.int16)
ALL_CODES = bytes(range(256))


@pytest.mark.parametrize(
    ("encode", "reference"), [(ulaw_encode, "lin2ulaw"), (alaw_encode, "lin2alaw")]
)
def test_encode_matches_reference_on_all_65536_values(encode, reference):
    expected = getattr(audioop, reference)(ALL_PCM.astype("<i2").tobytes(), 2)
    assert encode(ALL_PCM) == expected


@pytest.mark.parametrize(
    ("decode", "reference"), [(ulaw_decode, "ulaw2lin"), (alaw_decode, "alaw2lin")]
)
def test_decode_matches_reference_on_all_256_codes(decode, reference):
    expected = np.frombuffer(getattr(audioop, reference)(ALL_CODES, 2), dtype="<i2")
    decoded = decode(ALL_CODES)
    assert decoded.dtype == np.int16
    np.testing.assert_array_equal(decoded, expected)


def test_g711_anchor_values():
    # µ-law: both zeros, and the extremes of the 14-bit range scaled to 16 bits.
    np.testing.assert_array_equal(ulaw_decode(b"\xff\x7f\x80\x00"), [0, 0, 32124, -32124])
    # A-law: the smallest levels (±1 half step) and the extremes.
    np.testing.assert_array_equal(alaw_decode(b"\xd5\x55\xaa\x2a"), [8, -8, 32256, -32256])
    assert ulaw_encode(np.array([0, 32767, -32768], np.int16)) == b"\xff\x80\x00"
    assert alaw_encode(np.array([0, 32767, -32768], np.int16)) == b"\xd5\xaa\x2a"


@pytest.mark.parametrize(
    ("encode", "decode"), [(ulaw_encode, ulaw_decode), (alaw_encode, alaw_decode)]
)
def test_every_code_survives_decode_then_encode(encode, decode):
    # Each code's reconstruction level sits inside its own decision interval.
    # µ-law has two zero codes (0x7f and 0xff); both decode to 0, which encodes as 0xff.
    round_trip = encode(decode(ALL_CODES))
    differing = [c for c in range(256) if round_trip[c] != c]
    assert differing in ([], [0x7F])


@pytest.mark.parametrize(
    ("encode", "decode"), [(ulaw_encode, ulaw_decode), (alaw_encode, alaw_decode)]
)
def test_quantisation_error_is_bounded_relative_to_level(encode, decode):
    pcm = np.arange(-32000, 32000, 7, dtype=np.int16)
    error = np.abs(decode(encode(pcm)).astype(np.int32) - pcm)
    # Logarithmic companding: error grows with level, roughly <= 1/32 of it plus one small step.
    assert np.all(error <= np.abs(pcm.astype(np.int32)) / 30 + 16)


def test_encode_accepts_little_endian_bytes():
    pcm = np.array([1000, -1000, 0, 12345], dtype=np.int16)
    assert ulaw_encode(pcm.astype("<i2").tobytes()) == ulaw_encode(pcm)
    assert alaw_encode(bytearray(pcm.astype("<i2").tobytes())) == alaw_encode(pcm)


def test_empty_input_gives_empty_output():
    assert ulaw_encode(np.zeros(0, np.int16)) == b""
    assert alaw_decode(b"").shape == (0,)


@pytest.mark.parametrize("encode", [ulaw_encode, alaw_encode])
def test_encode_rejects_bad_input(encode):
    with pytest.raises(AudioFormatError, match="int16"):
        encode(np.zeros(4, dtype=np.float32))
    with pytest.raises(AudioFormatError, match="mono"):
        encode(np.zeros((2, 4), dtype=np.int16))
    with pytest.raises(AudioFormatError, match="even length"):
        encode(b"\x00\x01\x02")
    with pytest.raises(AudioFormatError, match="int16 array"):
        encode([1, 2, 3])


@pytest.mark.parametrize("decode", [ulaw_decode, alaw_decode])
def test_decode_rejects_non_bytes(decode):
    with pytest.raises(AudioFormatError, match="bytes"):
        decode(np.zeros(4, dtype=np.int16))
    with pytest.raises(AudioFormatError, match="bytes"):
        decode("abc")
