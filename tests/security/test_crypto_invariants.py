"""Cryptographic invariants a mutant could break without any other test noticing.

- AES-GCM nonces of recording chunks are never reused: within a recording, across recordings,
  and when a chunk is re-encrypted (silencing). One nonce for every chunk would hand an attacker
  the XOR of two plaintexts and the means to forge tags.
- Known answers: a chunk's associated data is exactly the documented bytes (docs/recordings.md),
  so a fixed key, nonce and plaintext give fixed ciphertext; every field of it is bound, so a
  changed field fails to decrypt. The outgoing webhook signature is the documented HMAC.

The expected values are computed here from the documented layouts with ``struct``, ``hmac`` and
``hashlib`` (and, for the constants, once by hand), never by calling the code under test.
"""

from __future__ import annotations

import hashlib
import hmac
import struct
import uuid

import pytest
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from crm_core.webhooks.signing import (
    SIGNATURE_HEADER,
    SignatureError,
    signature,
    signature_header,
    verify_signature,
)
from storage.keys import MAX_KEY_ID_BYTES, new_master_key, parse_key_spec
from storage.recording_format import (
    HEADER_LEN,
    KEY_SLOT_OFFSET,
    AudioFormat,
    ChunkAuthenticationError,
    RangeNotSatisfiable,
    RecordingFormatError,
    RecordingHeader,
    RecordingReader,
    chunk_layout,
)
from storage.recording_store import LocalRecordingStore

STEREO_8K = AudioFormat(8000, 2)
CHUNK = 1024
KNOWN_ID = uuid.UUID("00112233-4455-6677-8899-aabbccddeeff")
KNOWN_KEY = bytes(range(32))
KNOWN_NONCE = bytes.fromhex("000102030405060708090a0b")


def documented_aad(
    recording_id: bytes,
    chunk_size: int,
    rate: int,
    channels: int,
    index: int,
    final: bool,
    magic: bytes = b"CLRC",
    version: int = 1,
) -> bytes:
    """docs/recordings.md: magic, version, recording id, chunk size, rate, channels, index, final."""
    return (
        magic
        + struct.pack(">H", version)
        + recording_id
        + struct.pack(">IIBQB", chunk_size, rate, channels, index, int(final))
    )


def chunks_of(path) -> list[tuple[bytes, bytes]]:
    """(nonce, ciphertext + tag) of every chunk in a recording file, parsed from its bytes."""
    raw = path.read_bytes()
    header = RecordingHeader.parse(raw[:HEADER_LEN])
    layout = chunk_layout(header, len(raw))
    out = []
    for index in range(layout.complete_chunks + (1 if layout.sealed else 0)):
        start = HEADER_LEN + index * header.stride
        chunk = raw[start : start + header.stride]
        out.append((chunk[:12], chunk[12:]))
    return out


@pytest.fixture
def keyring():
    return parse_key_spec(f"k1:{new_master_key()}")


@pytest.fixture
def store(tmp_path, keyring):
    return LocalRecordingStore(tmp_path / "rec", keyring)


def _record(store, chunks: int, tail: int = 100) -> uuid.UUID:
    rid = uuid.uuid4()
    writer = store.create(rid, STEREO_8K, chunk_size=CHUNK)
    for i in range(chunks):
        writer.append(bytes([i % 256]) * CHUNK)  # equal plaintexts: only the nonce may differ
    writer.append(b"\x01" * tail)
    writer.close()
    return rid


def test_nonces_are_distinct_within_and_across_recordings(store):
    seen: dict[bytes, tuple[uuid.UUID, int]] = {}
    for _ in range(3):
        rid = _record(store, chunks=40)
        chunks = chunks_of(store.path_of(rid))
        assert len(chunks) == 41
        for index, (nonce, _) in enumerate(chunks):
            assert nonce not in seen, f"chunk {index} of {rid} reuses the nonce of {seen[nonce]}"
            seen[nonce] = (rid, index)
    # the same plaintext twice under one key never gives the same bytes either
    rid = _record(store, chunks=4)
    bodies = [body for _, body in chunks_of(store.path_of(rid))[:4]]
    writer = store.create(uuid.uuid4(), STEREO_8K, chunk_size=CHUNK)
    writer.append(bytes(CHUNK * 2))
    writer.close()
    zeros = [body for _, body in chunks_of(writer.path)[:2]]
    assert zeros[0] != zeros[1] and len(set(bodies)) == 4


def test_silencing_re_encrypts_with_fresh_nonces(store):
    rid = _record(store, chunks=6)
    before = chunks_of(store.path_of(rid))
    assert store.silence(rid, 0, 3 * CHUNK + 10) == 4
    after = chunks_of(store.path_of(rid))
    nonces = [n for n, _ in before] + [n for n, _ in after[:4]]
    assert len(set(nonces)) == len(nonces), "a rewritten chunk reused a nonce"
    assert after[4:] == before[4:]


def test_sealing_a_cut_recording_writes_its_final_chunk_under_a_fresh_nonce(store):
    rid = uuid.uuid4()
    writer = store.create(rid, STEREO_8K, chunk_size=CHUNK)
    writer.append(bytes(CHUNK * 3))
    writer.abandon()
    store.seal(rid)
    nonces = [n for n, _ in chunks_of(store.path_of(rid))]
    assert len(nonces) == 4 and len(set(nonces)) == 4


def test_chunk_associated_data_is_the_documented_bytes():
    header = RecordingHeader(KNOWN_ID, 4096, STEREO_8K, "k1", bytes(60))
    expected = bytes.fromhex(
        "434c5243000100112233445566778899aabbccddeeff0000100000001f4002000000000000000300"
    )
    assert header.chunk_aad(3, False) == expected
    assert header.chunk_aad(3, False) == documented_aad(KNOWN_ID.bytes, 4096, 8000, 2, 3, False)
    sealed = AESGCM(KNOWN_KEY).encrypt(
        KNOWN_NONCE, b"coachline test audio", header.chunk_aad(3, False)
    )
    assert (
        sealed.hex() == "246db778ad89ab75e861e3eec29d580cf6b2ee5bc0830fdf1aa9a3db67909a4392ba9a33"
    )
    final = AESGCM(KNOWN_KEY).encrypt(KNOWN_NONCE, b"", header.chunk_aad(4, True))
    assert final.hex() == "ac02b2f3072edfa7122dba91b59e117e"


def _tampered_aads(rid: bytes, index: int, final: bool) -> dict[str, bytes]:
    base = {
        "recording_id": rid,
        "chunk_size": CHUNK,
        "rate": 8000,
        "channels": 2,
        "index": index,
        "final": final,
    }
    other = uuid.uuid4().bytes
    return {
        "magic": documented_aad(**base, magic=b"CLRD"),
        "version": documented_aad(**base, version=2),
        "recording id": documented_aad(**{**base, "recording_id": other}),
        "chunk size": documented_aad(**{**base, "chunk_size": CHUNK * 2}),
        "sample rate": documented_aad(**{**base, "rate": 16000}),
        "channels": documented_aad(**{**base, "channels": 1}),
        "index": documented_aad(**{**base, "index": index + 1}),
        "final flag": documented_aad(**{**base, "final": not final}),
    }


def test_written_chunks_open_with_the_documented_aad_and_no_other(store, keyring):
    rid = _record(store, chunks=2)
    header = RecordingHeader.parse(store.path_of(rid).read_bytes()[:HEADER_LEN])
    data_key = keyring.unwrap(header.key_id, header.wrapped_key, rid.bytes)
    aead = AESGCM(data_key)
    chunks = chunks_of(store.path_of(rid))
    for index, (nonce, body) in enumerate(chunks):
        final = index == len(chunks) - 1
        plain = aead.decrypt(nonce, body, documented_aad(rid.bytes, CHUNK, 8000, 2, index, final))
        assert plain == (b"\x01" * 100 if final else bytes([index]) * CHUNK)
        for field, aad in _tampered_aads(rid.bytes, index, final).items():
            with pytest.raises(InvalidTag):
                aead.decrypt(nonce, body, aad)
                pytest.fail(f"chunk {index} decrypts with a changed {field}")


def test_reader_opens_a_hand_built_file_and_refuses_one_with_any_aad_field_changed(tmp_path):
    keyring = parse_key_spec(f"k1:{new_master_key()}")
    key_id, wrapped = keyring.wrap(KNOWN_KEY, KNOWN_ID.bytes)
    header = RecordingHeader(KNOWN_ID, CHUNK, STEREO_8K, key_id, wrapped).pack()
    plain = b"known answer audio!!"

    def build(aad: bytes):
        path = tmp_path / f"{uuid.uuid4()}.clrec"
        path.write_bytes(header + KNOWN_NONCE + AESGCM(KNOWN_KEY).encrypt(KNOWN_NONCE, plain, aad))
        return path

    with RecordingReader(
        build(documented_aad(KNOWN_ID.bytes, CHUNK, 8000, 2, 0, True)), keyring
    ) as reader:
        assert reader.read_all() == plain
    for field, aad in _tampered_aads(KNOWN_ID.bytes, 0, True).items():
        with pytest.raises(ChunkAuthenticationError):
            RecordingReader(build(aad), keyring).close()
            pytest.fail(f"a chunk sealed with a changed {field} was read")


def test_a_header_field_changed_on_disk_fails_the_chunks(store):
    rid = _record(store, chunks=1)
    path = store.path_of(rid)
    original = path.read_bytes()
    for offset, value in ((28, struct.pack(">I", 16000)), (32, b"\x01")):  # sample rate, channels
        path.write_bytes(original[:offset] + value + original[offset + len(value) :])
        with pytest.raises(ChunkAuthenticationError):
            store.open(rid).close()


# --- the outgoing webhook signature -------------------------------------------------------------

KNOWN_SECRET = "whsec_known_answer"
KNOWN_TIME = 1_700_000_000
KNOWN_BODY = b'{"id":"evt_1","type":"crm.lead.created"}'


def test_webhook_signature_is_the_documented_hmac():
    # Coachline-Signature: t=<unix seconds>,v1=hex(HMAC-SHA256(secret, "<t>." + body))
    independent = hmac.new(
        KNOWN_SECRET.encode(), f"{KNOWN_TIME}.".encode() + KNOWN_BODY, hashlib.sha256
    ).hexdigest()
    expected = "t=1700000000,v1=1f1b554b8333007c151e6dbbe6f2e8cfafbd7de770ee541aa4110ba9772aaff6"
    assert f"t={KNOWN_TIME},v1={independent}" == expected
    assert signature_header(KNOWN_SECRET, KNOWN_BODY, KNOWN_TIME) == expected
    assert SIGNATURE_HEADER == "Coachline-Signature"


def test_webhook_signature_verification_binds_secret_time_and_body():
    header = "t=1700000000,v1=1f1b554b8333007c151e6dbbe6f2e8cfafbd7de770ee541aa4110ba9772aaff6"
    assert verify_signature(KNOWN_SECRET, KNOWN_BODY, header, now=KNOWN_TIME + 299) == KNOWN_TIME
    # a rotation header with an old signature first still verifies
    assert (
        verify_signature(
            KNOWN_SECRET, KNOWN_BODY, "t=1700000000,v1=00," + header[13:], now=KNOWN_TIME
        )
        == KNOWN_TIME
    )
    refused = {
        "other secret": ("whsec_other", KNOWN_BODY, header, KNOWN_TIME),
        "other body": (KNOWN_SECRET, KNOWN_BODY + b" ", header, KNOWN_TIME),
        "other time": (
            KNOWN_SECRET,
            KNOWN_BODY,
            header.replace("t=1700000000", "t=1700000001"),
            KNOWN_TIME,
        ),
        "stale": (KNOWN_SECRET, KNOWN_BODY, header, KNOWN_TIME + 301),
        "future": (KNOWN_SECRET, KNOWN_BODY, header, KNOWN_TIME - 301),
        "no v1": (KNOWN_SECRET, KNOWN_BODY, "t=1700000000", KNOWN_TIME),
        "no t": (KNOWN_SECRET, KNOWN_BODY, header[13:], KNOWN_TIME),
        "missing": (KNOWN_SECRET, KNOWN_BODY, None, KNOWN_TIME),
        "truncated mac": (KNOWN_SECRET, KNOWN_BODY, header[:-2], KNOWN_TIME),
    }
    with pytest.raises(SignatureError, match="malformed"):  # an empty v1 is no signature
        verify_signature(KNOWN_SECRET, KNOWN_BODY, "t=1700000000,v1=", now=KNOWN_TIME)
    for name, (secret, body, value, now) in refused.items():
        with pytest.raises(SignatureError):
            verify_signature(secret, body, value, now=now)
            pytest.fail(f"{name}: accepted")


def test_webhook_signature_tolerance_is_five_minutes_either_way_inclusive():
    header = signature_header(KNOWN_SECRET, KNOWN_BODY, KNOWN_TIME)
    for skew in (-300, 300):  # the documented window's edges are inside it
        assert (
            verify_signature(KNOWN_SECRET, KNOWN_BODY, header, now=KNOWN_TIME + skew) == KNOWN_TIME
        )
    for skew in (-301, 301, KNOWN_TIME + 5):
        with pytest.raises(SignatureError, match="tolerance"):
            verify_signature(KNOWN_SECRET, KNOWN_BODY, header, now=KNOWN_TIME + skew)
    # a signature made long ago (even a timestamp that divides now) stays stale
    ancient = signature_header(KNOWN_SECRET, KNOWN_BODY, 5)
    with pytest.raises(SignatureError, match="tolerance"):
        verify_signature(KNOWN_SECRET, KNOWN_BODY, ancient, now=KNOWN_TIME)


def test_webhook_signature_counts_only_v1_values():
    mac = signature(KNOWN_SECRET, KNOWN_BODY, KNOWN_TIME)
    for key in ("v0", "v2", "V1", "a", "t"):  # a right MAC under any other name is no signature
        with pytest.raises(SignatureError, match="malformed"):
            verify_signature(
                KNOWN_SECRET, KNOWN_BODY, f"t={KNOWN_TIME},{key}={mac}", now=KNOWN_TIME
            )
    # fields it does not know, numeric or not, neither sign nor date the body
    header = f"nonce=42,t={KNOWN_TIME},v1={mac},a=7,s=x"
    assert verify_signature(KNOWN_SECRET, KNOWN_BODY, header, now=KNOWN_TIME) == KNOWN_TIME


def test_audio_format_sizes_are_what_the_recorder_budgets_with():
    assert STEREO_8K.sample_width == 2  # 16-bit PCM unless said otherwise
    assert (STEREO_8K.frame_bytes, STEREO_8K.bytes_per_second) == (4, 32_000)
    mono_16k = AudioFormat(16_000, 1, 2)
    assert (mono_16k.frame_bytes, mono_16k.bytes_per_second) == (2, 32_000)
    assert AudioFormat(8_000, 1, 1).bytes_per_second == 8_000


def test_a_header_with_either_half_of_its_key_slot_malformed_is_refused(store):
    header = store.path_of(_record(store, chunks=1)).read_bytes()[:HEADER_LEN]
    RecordingHeader.parse(header)  # as written: fine
    wrapped_len_at = KEY_SLOT_OFFSET + 1 + MAX_KEY_ID_BYTES
    longest = header[:KEY_SLOT_OFFSET] + bytes([MAX_KEY_ID_BYTES]) + header[KEY_SLOT_OFFSET + 1 :]
    assert len(RecordingHeader.parse(longest).key_id) == MAX_KEY_ID_BYTES  # the field's full size
    for offset, value in (
        (KEY_SLOT_OFFSET, 0),  # no key id
        (KEY_SLOT_OFFSET, MAX_KEY_ID_BYTES + 1),  # a key id longer than its field
        (wrapped_len_at, header[wrapped_len_at] - 1),  # a wrapped key of the wrong size
    ):
        changed = header[:offset] + bytes([value]) + header[offset + 1 :]
        with pytest.raises(RecordingFormatError, match="key slot"):
            RecordingHeader.parse(changed)


def test_a_chunk_size_that_splits_a_sample_frame_is_refused(store):
    rid = uuid.uuid4()
    writer = store.create(rid, AudioFormat(8000, 1), chunk_size=CHUNK)
    writer.append(bytes(CHUNK))
    writer.close()
    header = store.path_of(rid).read_bytes()[:HEADER_LEN]
    assert RecordingHeader.parse(header).chunk_size == CHUNK
    largest = header[:24] + struct.pack(">I", 16 * 1024 * 1024) + header[28:]
    assert RecordingHeader.parse(largest).chunk_size == 16 * 1024 * 1024  # 16 MiB at most
    for bad in (CHUNK + 1, 3, 0, 16 * 1024 * 1024 + 2):  # whole 2-byte samples, up to 16 MiB
        changed = header[:24] + struct.pack(">I", bad) + header[28:]
        with pytest.raises(RecordingFormatError, match="chunk size"):
            RecordingHeader.parse(changed)


def test_a_range_outside_the_recording_is_refused_as_such(store):
    reader = store.open(_record(store, chunks=2))
    try:
        assert b"".join(reader.read_range(0, 10)) == bytes(10)
        for start, end in ((-1, 10), (5, 4), (0, reader.length + 1)):
            with pytest.raises(RangeNotSatisfiable):
                list(reader.read_range(start, end))
    finally:
        reader.close()


def test_each_fixed_header_field_is_checked_on_its_own(store):
    header = store.path_of(_record(store, chunks=1)).read_bytes()[:HEADER_LEN]
    for offset, value, why in (
        (0, b"ABCD", "not a Coachline recording|magic"),  # sorts before the magic
        (0, b"ZZZZ", "not a Coachline recording|magic"),
        (6, struct.pack(">H", HEADER_LEN + 1), "malformed"),  # header length
        (33, b"\x02", "malformed"),  # sample format
        (32, b"\x03", "malformed"),  # channels
    ):
        changed = header[:offset] + value + header[offset + len(value) :]
        with pytest.raises(RecordingFormatError, match=why):
            RecordingHeader.parse(changed)
