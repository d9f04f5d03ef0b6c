import os
import resource
import shutil
import uuid

import pytest

from storage.keys import (
    KeyringError,
    KeyUnwrapError,
    UnknownKeyError,
    load_keyring,
    new_master_key,
    parse_key_spec,
)
from storage.recording_store import (
    CHUNK_OVERHEAD,
    HEADER_LEN,
    AudioFormat,
    ChunkAuthenticationError,
    LocalRecordingStore,
    RangeNotSatisfiable,
    RecordingExistsError,
    RecordingFormatError,
    RecordingNotFound,
    RecordingTruncatedError,
)

STEREO_8K = AudioFormat(8000, 2)
CHUNK = 4096


@pytest.fixture
def keyring():
    return parse_key_spec(f"k1:{new_master_key()}")


@pytest.fixture
def store(tmp_path, keyring):
    return LocalRecordingStore(tmp_path / "rec", keyring)


def _record(store, data: bytes, chunk_size: int = CHUNK, rid=None):
    rid = rid or uuid.uuid4()
    writer = store.create(rid, STEREO_8K, chunk_size)
    # Uneven appends, as audio blocks arrive.
    for i in range(0, len(data), 1000):
        writer.append(data[i : i + 1000])
    writer.close()
    return rid


def _pattern(n: int) -> bytes:
    return bytes((i * 7 + i // 251) % 256 for i in range(n))


@pytest.mark.parametrize("size", [0, 1, CHUNK - 4, CHUNK, CHUNK * 3, CHUNK * 3 + 100])
def test_round_trip_any_length(store, size):
    data = _pattern(size - size % 4)
    rid = _record(store, data)
    with store.open(rid) as reader:
        assert reader.length == len(data)
        assert reader.read_all() == data
        assert reader.audio == STEREO_8K


def test_round_trip_of_a_long_recording_keeps_memory_bounded(store):
    # 200 MB through the writer and reader; peak RSS must not grow by anything like that.
    block = os.urandom(1 << 20)
    rid = uuid.uuid4()
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    writer = store.create(rid, STEREO_8K, 64 * 1024)
    for _ in range(200):
        writer.append(block)
    writer.close()
    total = 0
    with store.open(rid) as reader:
        assert reader.length == 200 << 20
        for piece in reader.read_range():
            assert piece == block[total % len(block) : total % len(block) + len(piece)]
            total += len(piece)
    grown_mb = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) / 1024
    assert total == 200 << 20
    assert grown_mb < 50


def test_range_reads_return_the_right_bytes(store):
    data = _pattern(CHUNK * 5 + 64)
    rid = _record(store, data)
    with store.open(rid) as reader:
        for start, end in [
            (0, 1),
            (0, CHUNK),
            (CHUNK - 3, CHUNK + 3),
            (5, CHUNK * 4 + 17),
            (len(data) - 10, len(data)),
            (len(data), len(data)),
            (123, 123),
        ]:
            assert b"".join(reader.read_range(start, end)) == data[start:end]
        with pytest.raises(RangeNotSatisfiable):
            list(reader.read_range(0, len(data) + 1))
        with pytest.raises(RangeNotSatisfiable):
            list(reader.read_range(10, 5))


def _body_offset(index: int, chunk_size: int = CHUNK) -> int:
    return HEADER_LEN + index * (chunk_size + CHUNK_OVERHEAD)


def test_flipping_any_byte_fails_with_a_clear_error(store):
    data = _pattern(CHUNK * 3 + 40)
    rid = _record(store, data)
    path = store.path_of(rid)
    original = path.read_bytes()
    # Every region: a chunk's nonce, ciphertext, tag, the final chunk, and the authenticated header.
    for offset in [
        _body_offset(0),
        _body_offset(0) + 20,
        _body_offset(1) - 1,
        _body_offset(2) + 500,
        len(original) - 1,
        24,
        29,
    ]:
        tampered = bytearray(original)
        tampered[offset] ^= 0x01
        path.write_bytes(bytes(tampered))
        with pytest.raises((ChunkAuthenticationError, RecordingFormatError)) as err:
            with store.open(rid) as reader:
                reader.read_all()
        assert "recording" in str(err.value)
    path.write_bytes(original)
    with store.open(rid) as reader:
        assert reader.read_all() == data


def test_altering_the_key_slot_fails_to_unwrap(store):
    rid = _record(store, _pattern(CHUNK))
    path = store.path_of(rid)
    raw = bytearray(path.read_bytes())
    raw[120] ^= 0xFF  # inside the wrapped data key
    path.write_bytes(bytes(raw))
    with pytest.raises(KeyUnwrapError):
        store.open(rid)


def test_swapping_two_chunks_is_detected_and_named(store):
    data = _pattern(CHUNK * 4 + 8)
    rid = _record(store, data)
    path = store.path_of(rid)
    raw = bytearray(path.read_bytes())
    stride = CHUNK + CHUNK_OVERHEAD
    a, b = _body_offset(1), _body_offset(2)
    raw[a : a + stride], raw[b : b + stride] = raw[b : b + stride], raw[a : a + stride]
    path.write_bytes(bytes(raw))
    with store.open(rid) as reader:
        assert b"".join(reader.read_range(0, CHUNK)) == data[:CHUNK]  # untouched chunks still read
        with pytest.raises(ChunkAuthenticationError) as err:
            reader.read_all()
    assert err.value.index == 1
    assert "reordered" in str(err.value)


@pytest.mark.parametrize("cut", ["at_chunk_boundary", "inside_chunk", "inside_final"])
def test_truncation_is_detected(store, cut):
    data = _pattern(CHUNK * 3 + 400)
    rid = _record(store, data)
    path = store.path_of(rid)
    raw = path.read_bytes()
    keep = {
        "at_chunk_boundary": _body_offset(2),
        "inside_chunk": _body_offset(2) + 1000,
        "inside_final": len(raw) - 5,
    }[cut]
    path.write_bytes(raw[:keep])
    with pytest.raises((RecordingTruncatedError, ChunkAuthenticationError)) as err:
        store.open(rid).read_all()
    assert any(word in str(err.value) for word in ("cut short", "truncated"))


def test_dropping_the_final_chunk_is_truncation(store):
    data = _pattern(CHUNK * 2)  # exact multiple: the final chunk is empty
    rid = _record(store, data)
    path = store.path_of(rid)
    raw = path.read_bytes()
    assert len(raw) == _body_offset(2) + CHUNK_OVERHEAD
    path.write_bytes(raw[: _body_offset(2)])
    with pytest.raises(RecordingTruncatedError):
        store.open(rid)


def test_splicing_a_chunk_from_another_recording_is_detected(store):
    data = _pattern(CHUNK * 3 + 12)
    rid_a, rid_b = _record(store, data), _record(store, data)
    a, b = bytearray(store.path_of(rid_a).read_bytes()), store.path_of(rid_b).read_bytes()
    stride = CHUNK + CHUNK_OVERHEAD
    a[_body_offset(1) : _body_offset(1) + stride] = b[_body_offset(1) : _body_offset(1) + stride]
    store.path_of(rid_a).write_bytes(bytes(a))
    with pytest.raises(ChunkAuthenticationError) as err:
        store.open(rid_a).read_all()
    assert err.value.index == 1 and "another recording" in str(err.value)


def test_a_whole_file_copied_under_another_id_is_refused(store):
    rid = _record(store, _pattern(CHUNK))
    other = uuid.uuid4()
    store.path_of(other).parent.mkdir(parents=True, exist_ok=True)
    shutil.copy(store.path_of(rid), store.path_of(other))
    with pytest.raises(RecordingFormatError, match="belongs to recording"):
        store.open(other)


def test_wrong_or_unknown_master_key(tmp_path, store):
    rid = _record(store, _pattern(CHUNK))
    wrong = LocalRecordingStore(store.root, parse_key_spec(f"k1:{new_master_key()}"))
    with pytest.raises(KeyUnwrapError, match="k1"):
        wrong.open(rid)
    unknown = LocalRecordingStore(store.root, parse_key_spec(f"k9:{new_master_key()}"))
    with pytest.raises(UnknownKeyError, match="k9|k1"):
        unknown.open(rid)


def test_rotation_rewraps_without_touching_audio(tmp_path, store):
    data = _pattern(CHUNK * 2 + 100)
    rid = _record(store, data)
    old_key_spec = f"k1:{_key_b64(store, 'k1')}"
    before = store.path_of(rid).read_bytes()
    rotated = LocalRecordingStore(
        store.root, parse_key_spec(f"k2:{new_master_key()},{old_key_spec}")
    )
    assert rotated.rewrap(rid) == ("k1", "k2")
    after = store.path_of(rid).read_bytes()
    assert after[HEADER_LEN:] == before[HEADER_LEN:]  # the audio chunks are byte-identical
    assert after[:HEADER_LEN] != before[:HEADER_LEN]
    assert rotated.rewrap(rid) == ("k2", "k2")  # idempotent
    # Readable with only the new key; the old key alone no longer opens it.
    only_new = LocalRecordingStore(store.root, parse_key_spec(f"k2:{_key_b64(rotated, 'k2')}"))
    with only_new.open(rid) as reader:
        assert reader.read_all() == data
    with pytest.raises(UnknownKeyError):
        store.open(rid)


def _key_b64(store, key_id):
    import base64

    return base64.b64encode(store.keyring.keys[key_id]).decode()


def test_old_recordings_stay_readable_with_an_old_key_in_the_ring(store):
    rid = _record(store, _pattern(CHUNK))
    ring = parse_key_spec(f"k2:{new_master_key()},k1:{_key_b64(store, 'k1')}")
    both = LocalRecordingStore(store.root, ring)
    with both.open(rid) as reader:
        assert reader.header.key_id == "k1"
    new_rid = _record(both, _pattern(CHUNK))
    with both.open(new_rid) as reader:
        assert reader.header.key_id == "k2"


def test_seal_recovers_a_recording_whose_writer_died(store):
    data = _pattern(CHUNK * 3 + 500)
    rid = uuid.uuid4()
    writer = store.create(rid, STEREO_8K, CHUNK)
    writer.append(data)
    writer.abandon()
    with pytest.raises(RecordingTruncatedError):
        store.open(rid)
    # A chunk write cut short leaves a torn tail, which seal drops.
    with open(store.path_of(rid), "ab") as f:
        f.write(os.urandom(CHUNK // 2))
    result = store.seal(rid)
    assert result.repaired and result.plaintext_bytes == CHUNK * 3
    with store.open(rid) as reader:
        assert reader.read_all() == data[: CHUNK * 3]
    assert store.seal(rid).repaired is False


def test_silence_rewrites_written_chunks_with_fresh_nonces(store):
    data = _pattern(CHUNK * 3 + 400)
    rid = _record(store, data)
    before = store.path_of(rid).read_bytes()
    assert store.silence(rid, CHUNK - 100, CHUNK + 100) == 2
    after = store.path_of(rid).read_bytes()
    assert (
        after[_body_offset(0) : _body_offset(0) + 12]
        != before[_body_offset(0) : _body_offset(0) + 12]
    )
    expected = bytearray(data)
    expected[CHUNK - 100 : CHUNK + 100] = bytes(200)
    with store.open(rid) as reader:
        assert reader.read_all() == bytes(expected)
    assert store.silence(rid, len(data) - 4, len(data)) == 1  # the final chunk too


def test_delete_shreds_and_removes(store):
    rid = _record(store, _pattern(CHUNK))
    assert list(store.recording_ids()) == [rid]
    assert store.delete(rid) is True
    assert not store.exists(rid) and store.delete(rid) is False
    with pytest.raises(RecordingNotFound):
        store.open(rid)


def test_create_refuses_an_existing_id_and_bad_chunk_sizes(store):
    rid = _record(store, b"")
    with pytest.raises(RecordingExistsError):
        store.create(rid, STEREO_8K)
    with pytest.raises(ValueError):
        store.create(uuid.uuid4(), STEREO_8K, 4097)


def test_not_a_recording(store):
    path = store.path_of(uuid.uuid4())
    path.parent.mkdir(parents=True)
    path.write_bytes(b"RIFF" + bytes(300))
    with pytest.raises(RecordingFormatError, match="magic"):
        LocalRecordingStore(store.root, store.keyring).open(uuid.UUID(path.stem))


def test_keyring_loading(tmp_path):
    assert load_keyring(None, None) is None
    key = new_master_key()
    ring = load_keyring(f"a:{key}, b:{new_master_key()}", None)
    assert ring.current_id == "a" and ring.key_ids == ["a", "b"]
    keyfile = tmp_path / "keys" / "recording.keys"
    keyfile.parent.mkdir()
    keyfile.write_text(f"# rotated 2026-11\nnew:{new_master_key()}\nold:{key}\n")
    assert load_keyring(None, keyfile).key_ids == ["new", "old"]
    with pytest.raises(KeyringError, match="inside the data directory"):
        load_keyring(None, keyfile, data_dir=tmp_path)
    for bad in ["nokey", "a:!!!", "a:" + "QUJD", f"a:{key},a:{key}", f"bad id:{key}", ""]:
        with pytest.raises(KeyringError):
            load_keyring(bad, None) if bad else load_keyring(None, tmp_path / "missing")
