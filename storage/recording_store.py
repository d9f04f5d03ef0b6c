"""Where encrypted recordings live: the ``RecordingStore`` interface and its local-filesystem form.

The file format (header, chunks, AAD) is in ``storage.recording_format`` and
documented in docs/recordings.md; this module re-exports what callers need.
"""

from __future__ import annotations

import os
import secrets
import uuid
from abc import ABC, abstractmethod
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from storage.keys import Keyring, new_data_key
from storage.recording_format import (
    CHUNK_OVERHEAD,
    DEFAULT_CHUNK_SIZE,
    FORMAT_VERSION,
    HEADER_LEN,
    KEY_SLOT,
    KEY_SLOT_OFFSET,
    MAX_CHUNK_SIZE,
    NONCE_LEN,
    AudioFormat,
    ChunkAuthenticationError,
    RangeNotSatisfiable,
    RecordingError,
    RecordingExistsError,
    RecordingFormatError,
    RecordingHeader,
    RecordingNotFound,
    RecordingReader,
    RecordingTruncatedError,
    RecordingWriter,
    chunk_layout,
    pack_key_slot,
)

__all__ = [
    "CHUNK_OVERHEAD",
    "DEFAULT_CHUNK_SIZE",
    "FORMAT_VERSION",
    "HEADER_LEN",
    "AudioFormat",
    "ChunkAuthenticationError",
    "LocalRecordingStore",
    "RangeNotSatisfiable",
    "RecordingError",
    "RecordingExistsError",
    "RecordingFormatError",
    "RecordingHeader",
    "RecordingNotFound",
    "RecordingReader",
    "RecordingStore",
    "RecordingTruncatedError",
    "RecordingWriter",
    "SealResult",
]


@dataclass(frozen=True, slots=True)
class SealResult:
    """What ``seal`` found: how much audio survives and whether the file needed repair."""

    plaintext_bytes: int
    chunks: int
    repaired: bool


class RecordingStore(ABC):
    """Where encrypted recordings live. Local files now; an S3-compatible store fits the same shape."""

    keyring: Keyring

    @abstractmethod
    def create(
        self, recording_id: uuid.UUID, audio: AudioFormat, chunk_size: int = DEFAULT_CHUNK_SIZE
    ) -> RecordingWriter: ...

    @abstractmethod
    def open(self, recording_id: uuid.UUID) -> RecordingReader: ...

    @abstractmethod
    def exists(self, recording_id: uuid.UUID) -> bool: ...

    @abstractmethod
    def seal(self, recording_id: uuid.UUID) -> SealResult: ...

    @abstractmethod
    def rewrap(self, recording_id: uuid.UUID) -> tuple[str, str]: ...

    @abstractmethod
    def silence(self, recording_id: uuid.UUID, start: int, end: int) -> int: ...

    @abstractmethod
    def delete(self, recording_id: uuid.UUID) -> bool: ...

    @abstractmethod
    def recording_ids(self) -> Iterator[uuid.UUID]: ...


class LocalRecordingStore(RecordingStore):
    """Recordings as files ``<root>/<first two hex digits>/<uuid>.clrec``."""

    SUFFIX = ".clrec"

    def __init__(self, root: Path, keyring: Keyring) -> None:
        self.root = Path(root)
        self.keyring = keyring

    def path_of(self, recording_id: uuid.UUID) -> Path:
        hexid = recording_id.hex
        return self.root / hexid[:2] / f"{recording_id}{self.SUFFIX}"

    def storage_key(self, recording_id: uuid.UUID) -> str:
        return str(self.path_of(recording_id).relative_to(self.root))

    def create(
        self, recording_id: uuid.UUID, audio: AudioFormat, chunk_size: int = DEFAULT_CHUNK_SIZE
    ) -> RecordingWriter:
        if not 0 < chunk_size <= MAX_CHUNK_SIZE or chunk_size % audio.frame_bytes:
            raise ValueError(
                f"chunk size {chunk_size} must be a positive multiple of {audio.frame_bytes}"
            )
        if audio.channels not in (1, 2) or audio.sample_width != 2:
            raise ValueError("recordings are PCM16 with 1 or 2 channels")
        data_key = new_data_key()
        key_id, wrapped = self.keyring.wrap(data_key, recording_id.bytes)
        header = RecordingHeader(recording_id, chunk_size, audio, key_id, wrapped)
        path = self.path_of(recording_id)
        path.parent.mkdir(parents=True, exist_ok=True)
        try:
            return RecordingWriter(path, header, data_key)
        except FileExistsError:
            raise RecordingExistsError(f"recording {recording_id} already exists") from None

    def open(self, recording_id: uuid.UUID) -> RecordingReader:
        reader = RecordingReader(self.path_of(recording_id), self.keyring)
        if reader.header.recording_id != recording_id:
            reader.close()
            raise RecordingFormatError(
                f"file stored as recording {recording_id} belongs to recording "
                f"{reader.header.recording_id} (copied or moved)"
            )
        return reader

    def exists(self, recording_id: uuid.UUID) -> bool:
        return self.path_of(recording_id).exists()

    def _open_rw(self, recording_id: uuid.UUID):
        try:
            return open(self.path_of(recording_id), "r+b")
        except FileNotFoundError:
            raise RecordingNotFound(f"recording {recording_id} does not exist") from None

    def seal(self, recording_id: uuid.UUID) -> SealResult:
        """Finish a recording whose writer died: keep every chunk that authenticates, add a final chunk.

        Trailing bytes of a chunk write cut short are dropped; a sealed file
        is left as it is.
        """
        with self._open_rw(recording_id) as f:
            header = RecordingHeader.parse(f.read(HEADER_LEN))
            aead = AESGCM(
                self.keyring.unwrap(header.key_id, header.wrapped_key, header.recording_id.bytes)
            )
            layout = chunk_layout(header, os.fstat(f.fileno()).st_size)
            if layout.sealed and _authentic(f, aead, header, layout.complete_chunks, True):
                return SealResult(
                    layout.complete_chunks * header.chunk_size + layout.final_len,
                    layout.complete_chunks + 1,
                    False,
                )
            keep = layout.complete_chunks
            # A write cut short inside the last full chunk would leave it unreadable: drop such tails.
            while keep > 0 and not _authentic(f, aead, header, keep - 1, False):
                keep -= 1
            f.truncate(HEADER_LEN + keep * header.stride)
            f.seek(HEADER_LEN + keep * header.stride)
            nonce = secrets.token_bytes(NONCE_LEN)
            f.write(nonce + aead.encrypt(nonce, b"", header.chunk_aad(keep, True)))
            f.flush()
            os.fsync(f.fileno())
            return SealResult(keep * header.chunk_size, keep + 1, True)

    def rewrap(self, recording_id: uuid.UUID) -> tuple[str, str]:
        """Re-wrap the data key under the keyring's current key; the audio is not touched.

        Only the header's key slot (130 bytes inside the first disk sector) is
        rewritten, then synced. Returns (old key id, new key id).
        """
        with self._open_rw(recording_id) as f:
            header = RecordingHeader.parse(f.read(HEADER_LEN))
            if header.key_id == self.keyring.current_id:
                return header.key_id, header.key_id
            data_key = self.keyring.unwrap(
                header.key_id, header.wrapped_key, header.recording_id.bytes
            )
            new_id, wrapped = self.keyring.wrap(data_key, header.recording_id.bytes)
            f.seek(KEY_SLOT_OFFSET)
            f.write(pack_key_slot(new_id, wrapped))
            f.flush()
            os.fsync(f.fileno())
            return header.key_id, new_id

    def silence(self, recording_id: uuid.UUID, start: int, end: int) -> int:
        """Zero plaintext bytes ``start``..``end`` in chunks already written; returns chunks rewritten.

        Each affected chunk is decrypted, zeroed, and re-encrypted with a
        fresh nonce (never reusing a nonce with the same key) in place. Works
        on recordings still being written (their written chunks are final).
        """
        rewritten = 0
        with self._open_rw(recording_id) as f:
            header = RecordingHeader.parse(f.read(HEADER_LEN))
            aead = AESGCM(
                self.keyring.unwrap(header.key_id, header.wrapped_key, header.recording_id.bytes)
            )
            layout = chunk_layout(header, os.fstat(f.fileno()).st_size)
            frame = header.audio.frame_bytes
            start, end = (start // frame) * frame, -(-end // frame) * frame
            size = header.chunk_size
            last = layout.complete_chunks if layout.sealed else layout.complete_chunks - 1
            for index in range(max(0, start // size), min(last, (end - 1) // size) + 1):
                final = layout.sealed and index == layout.complete_chunks
                length = layout.final_len if final else size
                offset = HEADER_LEN + index * header.stride
                f.seek(offset)
                raw = f.read(length + CHUNK_OVERHEAD)
                try:
                    plain = bytearray(
                        aead.decrypt(
                            raw[:NONCE_LEN], raw[NONCE_LEN:], header.chunk_aad(index, final)
                        )
                    )
                except InvalidTag:
                    raise ChunkAuthenticationError(
                        index, f"chunk {index} failed authentication; not silenced"
                    ) from None
                lo, hi = max(0, start - index * size), min(len(plain), end - index * size)
                if lo >= hi:
                    continue
                plain[lo:hi] = bytes(hi - lo)
                nonce = secrets.token_bytes(NONCE_LEN)
                f.seek(offset)
                f.write(nonce + aead.encrypt(nonce, bytes(plain), header.chunk_aad(index, final)))
                rewritten += 1
            f.flush()
            os.fsync(f.fileno())
        return rewritten

    def delete(self, recording_id: uuid.UUID) -> bool:
        """Crypto-shred: overwrite the wrapped data key, then remove the file."""
        path = self.path_of(recording_id)
        try:
            with open(path, "r+b") as f:
                f.seek(KEY_SLOT_OFFSET)
                f.write(secrets.token_bytes(KEY_SLOT.size))
                f.flush()
                os.fsync(f.fileno())
        except FileNotFoundError:
            return False
        path.unlink(missing_ok=True)
        return True

    def recording_ids(self) -> Iterator[uuid.UUID]:
        if not self.root.exists():
            return
        for path in sorted(self.root.glob(f"*/*{self.SUFFIX}")):
            try:
                yield uuid.UUID(path.name[: -len(self.SUFFIX)])
            except ValueError:
                continue


def _authentic(f, aead: AESGCM, header: RecordingHeader, index: int, final: bool) -> bool:
    f.seek(HEADER_LEN + index * header.stride)
    raw = f.read(header.stride)
    try:
        aead.decrypt(raw[:NONCE_LEN], raw[NONCE_LEN:], header.chunk_aad(index, final))
    except InvalidTag:
        return False
    return True
