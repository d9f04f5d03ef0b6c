"""Key-encryption keys (KEKs) for recordings, and wrapping of per-recording data keys.

Every recording has its own random 256-bit data key; the data key is stored
in the recording's header only *wrapped* (AES-256-GCM encrypted) by a master
key that lives outside the data store: in an environment variable or a key
file. A keyring holds several master keys by id so that old recordings stay
readable while new ones use the current key (rotation re-wraps data keys,
see ``RecordingStore.rewrap``).

Key spec (``COACHLINE_RECORDING_KEY`` or one line each in the key file)::

    <key id>:<base64 of 32 random bytes>[,<key id>:<base64>...]

The first key is the current one (used to wrap new data keys); the others
are only used to unwrap. Generate a key with ``coachline recordings new-key``.
"""

from __future__ import annotations

import base64
import binascii
import logging
import os
import re
import secrets
from dataclasses import dataclass, field
from pathlib import Path

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

DATA_KEY_BYTES = 32
WRAPPED_KEY_BYTES = 12 + DATA_KEY_BYTES + 16  # nonce, ciphertext, tag
MAX_KEY_ID_BYTES = 64
_KEY_ID_RE = re.compile(r"^[A-Za-z0-9._-]{1,64}$")
_WRAP_CONTEXT = b"coachline-recording-data-key-v1"
log = logging.getLogger(__name__)


class KeyringError(ValueError):
    """The master key configuration is missing, malformed or unsafe."""


class UnknownKeyError(LookupError):
    """A recording was wrapped with a key id this keyring does not hold."""

    def __init__(self, key_id: str) -> None:
        super().__init__(
            f"recording key id {key_id!r} is not in the keyring "
            "(add it to COACHLINE_RECORDING_KEY / _FILE to read this recording)"
        )
        self.key_id = key_id


class KeyUnwrapError(ValueError):
    """The wrapped data key did not authenticate: wrong master key for this id, or altered header."""


def new_master_key() -> str:
    """A fresh master key, base64, for a key spec."""
    return base64.b64encode(secrets.token_bytes(DATA_KEY_BYTES)).decode()


def new_data_key() -> bytes:
    return secrets.token_bytes(DATA_KEY_BYTES)


@dataclass(frozen=True)
class Keyring:
    """Master keys by id; ``current_id`` wraps new data keys."""

    keys: dict[str, bytes] = field(repr=False)
    current_id: str

    def __post_init__(self) -> None:
        if self.current_id not in self.keys:
            raise KeyringError(f"current key id {self.current_id!r} is not in the keyring")
        for key_id, key in self.keys.items():
            if not _KEY_ID_RE.match(key_id):
                raise KeyringError(f"key id {key_id!r} must be 1-64 of A-Z a-z 0-9 . _ -")
            if len(key) != DATA_KEY_BYTES:
                raise KeyringError(f"key {key_id!r} must be 32 bytes (AES-256), got {len(key)}")

    @property
    def key_ids(self) -> list[str]:
        return list(self.keys)

    def wrap(self, data_key: bytes, recording_id: bytes) -> tuple[str, bytes]:
        """Encrypt ``data_key`` under the current master key, bound to the recording id."""
        nonce = secrets.token_bytes(12)
        aad = _wrap_aad(self.current_id, recording_id)
        sealed = AESGCM(self.keys[self.current_id]).encrypt(nonce, data_key, aad)
        return self.current_id, nonce + sealed

    def unwrap(self, key_id: str, wrapped: bytes, recording_id: bytes) -> bytes:
        key = self.keys.get(key_id)
        if key is None:
            raise UnknownKeyError(key_id)
        if len(wrapped) != WRAPPED_KEY_BYTES:
            raise KeyUnwrapError(
                f"wrapped data key has {len(wrapped)} bytes, expected {WRAPPED_KEY_BYTES}"
            )
        try:
            data_key = AESGCM(key).decrypt(
                wrapped[:12], wrapped[12:], _wrap_aad(key_id, recording_id)
            )
        except InvalidTag:
            raise KeyUnwrapError(
                f"the data key does not open with master key {key_id!r}: wrong key under that id, "
                "or the recording's header was altered or copied from another recording"
            ) from None
        return data_key


def _wrap_aad(key_id: str, recording_id: bytes) -> bytes:
    return _WRAP_CONTEXT + recording_id + key_id.encode()


def parse_key_spec(spec: str) -> Keyring:
    """``id:base64[,id:base64...]`` (commas or newlines; ``#`` comments) -> Keyring."""
    keys: dict[str, bytes] = {}
    entries = [e.strip() for line in spec.splitlines() for e in line.split("#", 1)[0].split(",")]
    for entry in filter(None, entries):
        key_id, sep, encoded = entry.partition(":")
        if not sep:
            raise KeyringError("each recording key must be written <key id>:<base64 key>")
        key_id = key_id.strip()
        if key_id in keys:
            raise KeyringError(f"key id {key_id!r} appears twice")
        try:
            keys[key_id] = base64.b64decode(encoded.strip(), validate=True)
        except (binascii.Error, ValueError):
            raise KeyringError(f"key {key_id!r} is not valid base64") from None
    if not keys:
        raise KeyringError("no recording key given")
    return Keyring(keys, next(iter(keys)))


def load_keyring(
    spec: str | None, key_file: Path | None, *, data_dir: Path | None = None
) -> Keyring | None:
    """The keyring from a spec string or a key file; None when neither is configured.

    A key file inside ``data_dir`` (where recordings live) is refused: a key
    kept beside the data it protects protects nothing.
    """
    if spec and key_file:
        raise KeyringError("set COACHLINE_RECORDING_KEY or COACHLINE_RECORDING_KEY_FILE, not both")
    if key_file:
        path = Path(key_file).resolve()
        if data_dir is not None and path.is_relative_to(Path(data_dir).resolve()):
            raise KeyringError(
                f"the recording key file {path} is inside the data directory; "
                "keep master keys away from the recordings they protect"
            )
        try:
            text = path.read_text()
        except OSError as exc:
            raise KeyringError(f"cannot read recording key file {path}: {exc.strerror}") from None
        if os.name == "posix" and path.stat().st_mode & 0o077:
            # Readable by others: still load (containers often mount secrets 0644), but say so.
            log.warning("recording key file %s is readable by other users", path)
        return parse_key_spec(text)
    if spec:
        return parse_key_spec(spec)
    return None
