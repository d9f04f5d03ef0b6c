"""The encrypted recording file format: header, chunks, and their writer and reader.

File format, version 1 (all integers big-endian; documented in docs/recordings.md)::

    header (256 bytes)
      0  magic        4s  b"CLRC"
      4  version      H   1
      6  header_len   H   256
      8  recording_id 16s UUID bytes
     24  chunk_size   I   plaintext bytes per chunk (every chunk but the last)
     28  sample_rate  I   Hz
     32  channels     B   1 (mixed) or 2 (rep left, customer right)
     33  sample_fmt   B   1 = PCM signed 16-bit little-endian, interleaved
     34  reserved     2s
     36  key_id_len   B   ┐ the key slot: the only bytes that key
     37  key_id       64s │ rotation rewrites
    101  wrapped_len  B   │
    102  wrapped_key  64s ┘ nonce(12) + AES-GCM(data key)(32) + tag(16)
    166  reserved     90s zero
    chunk i at 256 + i * (chunk_size + 28)
      nonce 12s (random) + ciphertext + tag 16s

Each chunk's associated data binds the format fields, the recording id,
the chunk index and a final-chunk flag, so a chunk that is altered, moved,
taken from another recording, or a file cut short all fail to decrypt.
The final chunk is always shorter than ``chunk_size`` (possibly empty), so
where a recording ends is known from the file size alone and a byte range
can be read by decrypting only the chunks it touches.
"""

from __future__ import annotations

import os
import secrets
import struct
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from storage.keys import MAX_KEY_ID_BYTES, WRAPPED_KEY_BYTES, Keyring

MAGIC = b"CLRC"
FORMAT_VERSION = 1
HEADER_LEN = 256
NONCE_LEN = 12
TAG_LEN = 16
CHUNK_OVERHEAD = NONCE_LEN + TAG_LEN
SAMPLE_FORMAT_PCM16LE = 1
DEFAULT_CHUNK_SIZE = 64 * 1024
MAX_CHUNK_SIZE = 16 * 1024 * 1024

_FIXED = struct.Struct(">4sHH16sIIBB2s")  # through byte 36
KEY_SLOT_OFFSET = _FIXED.size
KEY_SLOT = struct.Struct(f">B{MAX_KEY_ID_BYTES}sB64s")
_AAD_TAIL = struct.Struct(">QB")


class RecordingError(Exception):
    """Base of every failure reading or writing a recording."""


class RecordingNotFound(RecordingError, FileNotFoundError):
    pass


class RecordingExistsError(RecordingError, FileExistsError):
    pass


class RecordingFormatError(RecordingError):
    """Not a recording file, or a version/header this code cannot read."""


class ChunkAuthenticationError(RecordingError):
    """A chunk failed authentication: altered, reordered, or spliced from another recording."""

    def __init__(self, index: int, message: str) -> None:
        super().__init__(message)
        self.index = index


class RecordingTruncatedError(RecordingError):
    """The file ends before its final chunk: cut short, or its writer died (see ``seal``)."""


class RangeNotSatisfiable(RecordingError, ValueError):
    def __init__(self, start: int, end: int, length: int) -> None:
        super().__init__(f"byte range {start}-{end} is outside the recording's {length} bytes")
        self.length = length


@dataclass(frozen=True, slots=True)
class AudioFormat:
    sample_rate: int
    channels: int
    sample_width: int = 2

    @property
    def bytes_per_second(self) -> int:
        return self.sample_rate * self.channels * self.sample_width

    @property
    def frame_bytes(self) -> int:
        return self.channels * self.sample_width


@dataclass(frozen=True, slots=True)
class RecordingHeader:
    recording_id: uuid.UUID
    chunk_size: int
    audio: AudioFormat
    key_id: str
    wrapped_key: bytes
    version: int = FORMAT_VERSION

    def pack(self) -> bytes:
        fixed = _FIXED.pack(
            MAGIC,
            self.version,
            HEADER_LEN,
            self.recording_id.bytes,
            self.chunk_size,
            self.audio.sample_rate,
            self.audio.channels,
            SAMPLE_FORMAT_PCM16LE,
            b"\0\0",
        )
        out = fixed + pack_key_slot(self.key_id, self.wrapped_key)
        return out + b"\0" * (HEADER_LEN - len(out))

    @classmethod
    def parse(cls, raw: bytes) -> "RecordingHeader":
        if len(raw) < HEADER_LEN:
            raise RecordingFormatError(f"file too short for a recording header ({len(raw)} bytes)")
        magic, version, header_len, rid, chunk_size, rate, channels, sample_fmt, _ = (
            _FIXED.unpack_from(raw)
        )
        if magic != MAGIC:
            raise RecordingFormatError("not a Coachline recording (bad magic)")
        if version != FORMAT_VERSION:
            raise RecordingFormatError(
                f"recording format version {version} is not supported "
                f"(this build reads version {FORMAT_VERSION})"
            )
        if (
            header_len != HEADER_LEN
            or sample_fmt != SAMPLE_FORMAT_PCM16LE
            or channels not in (1, 2)
        ):
            raise RecordingFormatError("recording header is malformed")
        if not 0 < chunk_size <= MAX_CHUNK_SIZE or chunk_size % (channels * 2):
            raise RecordingFormatError(f"recording header has an invalid chunk size {chunk_size}")
        id_len, key_id, wrapped_len, wrapped = KEY_SLOT.unpack_from(raw, KEY_SLOT_OFFSET)
        if not 0 < id_len <= MAX_KEY_ID_BYTES or wrapped_len != WRAPPED_KEY_BYTES:
            raise RecordingFormatError("recording header has a malformed key slot")
        return cls(
            uuid.UUID(bytes=rid),
            chunk_size,
            AudioFormat(rate, channels),
            key_id[:id_len].decode("ascii", "replace"),
            wrapped[:wrapped_len],
            version,
        )

    @property
    def stride(self) -> int:
        return self.chunk_size + CHUNK_OVERHEAD

    def chunk_aad(self, index: int, final: bool) -> bytes:
        # Everything that gives the plaintext its meaning, except the key slot (rotation rewrites it).
        return (
            MAGIC
            + struct.pack(">H", self.version)
            + self.recording_id.bytes
            + struct.pack(">IIB", self.chunk_size, self.audio.sample_rate, self.audio.channels)
            + _AAD_TAIL.pack(index, 1 if final else 0)
        )


def pack_key_slot(key_id: str, wrapped: bytes) -> bytes:
    raw_id = key_id.encode("ascii")
    if len(raw_id) > MAX_KEY_ID_BYTES or len(wrapped) != WRAPPED_KEY_BYTES:
        raise RecordingFormatError("key id or wrapped key does not fit the header's key slot")
    return KEY_SLOT.pack(len(raw_id), raw_id, len(wrapped), wrapped)


@dataclass(frozen=True, slots=True)
class ChunkLayout:
    """Where the chunks of a file are, from the header and the file size alone."""

    complete_chunks: int  # full-size, non-final chunks present
    final_len: (
        int | None
    )  # plaintext length of the final chunk, None if the file has no final chunk
    torn_bytes: int  # trailing bytes that cannot be a chunk (a write cut short)

    @property
    def sealed(self) -> bool:
        return self.final_len is not None


def chunk_layout(header: RecordingHeader, file_size: int) -> ChunkLayout:
    body = max(0, file_size - HEADER_LEN)
    full, rest = divmod(body, header.stride)
    if rest >= CHUNK_OVERHEAD:
        return ChunkLayout(full, rest - CHUNK_OVERHEAD, 0)
    return ChunkLayout(full, None, rest)


class RecordingWriter:
    """Appends plaintext PCM; every full chunk is encrypted and written at once.

    Not thread-safe: one writer per recording, driven by one worker. The
    bytes of the chunk being filled (``pending``) stay in memory until it is
    full, so they can still be silenced before they are written.
    """

    def __init__(self, path: Path, header: RecordingHeader, data_key: bytes) -> None:
        self.path = path
        self.header = header
        self._aead = AESGCM(data_key)
        self._file = open(path, "xb")
        self._file.write(header.pack())
        self._file.flush()
        self.pending = bytearray()
        self.chunks_written = 0
        self.total_bytes = 0  # plaintext appended so far
        # Plaintext bytes in chunks written and flushed (what survives a crash); updated only
        # after the flush, so a concurrent reader (the heartbeat) never over-reports.
        self.durable_bytes = 0
        self.closed = False

    def append(self, data: bytes | bytearray | memoryview) -> int:
        """Add plaintext; returns how many chunks this call wrote."""
        if self.closed:
            raise RecordingError("recording writer is closed")
        self.pending += data
        self.total_bytes += len(data)
        size = self.header.chunk_size
        written = 0
        while len(self.pending) >= size:
            self._write_chunk(bytes(self.pending[:size]), final=False)
            del self.pending[:size]
            written += 1
        if written:
            self._file.flush()  # a SIGKILL after this loses nothing written so far
            self.durable_bytes = self.total_bytes - len(self.pending)
        return written

    def _write_chunk(self, plaintext: bytes, *, final: bool) -> None:
        nonce = secrets.token_bytes(NONCE_LEN)
        sealed = self._aead.encrypt(
            nonce, plaintext, self.header.chunk_aad(self.chunks_written, final)
        )
        self._file.write(nonce + sealed)
        self.chunks_written += 1

    def close(self) -> None:
        """Write the final (short, possibly empty) chunk; the recording is complete."""
        if self.closed:
            return
        self._write_chunk(bytes(self.pending), final=True)
        self.pending.clear()
        self._file.flush()
        os.fsync(self._file.fileno())
        self._file.close()
        self.durable_bytes = self.total_bytes
        self.closed = True

    def abandon(self) -> None:
        """Stop without a final chunk (as a crash would); ``seal`` recovers such a file."""
        if not self.closed:
            self._file.flush()
            self._file.close()
            self.closed = True


class RecordingReader:
    """Reads plaintext byte ranges of one recording, decrypting only the chunks they touch."""

    def __init__(self, path: Path, keyring: Keyring) -> None:
        self.path = path
        try:
            self._file = open(path, "rb")
        except FileNotFoundError:
            raise RecordingNotFound(f"recording file {path.name} does not exist") from None
        try:
            self.header = RecordingHeader.parse(self._file.read(HEADER_LEN))
            data_key = keyring.unwrap(
                self.header.key_id, self.header.wrapped_key, self.header.recording_id.bytes
            )
            self._aead = AESGCM(data_key)
            self.layout = chunk_layout(self.header, os.fstat(self._file.fileno()).st_size)
            if not self.layout.sealed:
                raise RecordingTruncatedError(
                    f"recording {self.header.recording_id} ends after chunk "
                    f"{self.layout.complete_chunks - 1} without its final chunk: the file was cut "
                    "short or its writer died before finishing (recovery seals such files)"
                )
            # Decrypting the final chunk proves the length we report is the real one.
            self._final = self._decrypt(self.layout.complete_chunks, final=True)
        except BaseException:
            self._file.close()
            raise

    @property
    def length(self) -> int:
        return self.layout.complete_chunks * self.header.chunk_size + len(self._final)

    @property
    def audio(self) -> AudioFormat:
        return self.header.audio

    def _decrypt(self, index: int, *, final: bool) -> bytes:
        stride = self.header.stride
        self._file.seek(HEADER_LEN + index * stride)
        raw = self._file.read(stride)
        try:
            return self._aead.decrypt(
                raw[:NONCE_LEN], raw[NONCE_LEN:], self.header.chunk_aad(index, final)
            )
        except InvalidTag:
            raise ChunkAuthenticationError(index, self._diagnose(index, raw, final)) from None

    def _diagnose(self, index: int, raw: bytes, final: bool) -> str:
        """Say what most likely happened to a chunk that failed authentication (error path only)."""
        rid = self.header.recording_id
        for other in range(0, self.layout.complete_chunks + 1):
            for other_final in (False, True):
                if (other, other_final) == (index, final):
                    continue
                try:
                    self._aead.decrypt(
                        raw[:NONCE_LEN], raw[NONCE_LEN:], self.header.chunk_aad(other, other_final)
                    )
                except InvalidTag:
                    continue
                if other == index:
                    return (
                        f"chunk {index} of recording {rid} is {'the final chunk' if other_final else 'not final'}"
                        " where it should not be: the recording was truncated or extended"
                    )
                return (
                    f"chunk {index} of recording {rid} holds chunk {other}: chunks were reordered"
                )
            if other > 256:  # bounded effort on huge files
                break
        where = "final chunk" if final else "chunk"
        return (
            f"{where} {index} of recording {rid} failed authentication: its bytes were altered, "
            "it was cut short, or it was spliced in from another recording"
        )

    def chunk(self, index: int) -> bytes:
        if index == self.layout.complete_chunks:
            return self._final
        if not 0 <= index < self.layout.complete_chunks:
            raise IndexError(index)
        return self._decrypt(index, final=False)

    def read_range(self, start: int = 0, end: int | None = None) -> Iterator[bytes]:
        """Plaintext bytes ``start`` .. ``end`` (exclusive), one chunk's worth at a time."""
        length = self.length
        end = length if end is None else end
        if start < 0 or end > length or start > end:
            raise RangeNotSatisfiable(start, end, length)
        size = self.header.chunk_size
        pos = start
        while pos < end:
            index = pos // size
            data = self.chunk(index)
            lo = pos - index * size
            hi = min(len(data), end - index * size)
            yield data[lo:hi]
            pos = index * size + hi

    def read_all(self) -> bytes:
        return b"".join(self.read_range())

    def close(self) -> None:
        self._file.close()

    def __enter__(self) -> "RecordingReader":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
