"""What ``coachline serve`` checks before it starts anything.

A bad recording key, an unknown speech model or an unreadable key file stops
the process with exit code 2 and a message naming the variable, before the
local PostgreSQL/Redis are started or a migration runs: a node that cannot
serve must not change the database, nor leave servers behind.
"""

from __future__ import annotations

from pathlib import Path

from storage.keys import KeyringError, load_keyring
from voice_server.settings import Settings, SettingsError


def check_startup(settings: Settings) -> None:
    """Raise SettingsError naming each variable whose value cannot be used."""
    problems = [
        p for p in (_recording_key(settings), _speech_model(settings), _vonage_key(settings)) if p
    ]
    if problems:
        raise SettingsError("invalid configuration:\n  " + "\n  ".join(problems))


def _recording_key(settings: Settings) -> str | None:
    if not settings.recording_enabled:
        return None
    secret = settings.recording_key.get_secret_value() if settings.recording_key else None
    name = (
        "COACHLINE_RECORDING_KEY_FILE" if settings.recording_key_file else "COACHLINE_RECORDING_KEY"
    )
    recording_dir = settings.recording_dir or settings.data_dir / "recordings"
    try:
        load_keyring(secret, settings.recording_key_file, data_dir=recording_dir)
    except KeyringError as exc:  # the message never holds key material
        return f"{name}: {exc}"
    return None


def _speech_model(settings: Settings) -> str | None:
    if not settings.stt_enabled:
        return None
    from media.stt.models import ModelChecksumError, ModelNotInstalledError, locate_model

    try:
        locate_model(settings.stt_model)
    except (ModelNotInstalledError, ModelChecksumError, OSError) as exc:
        return f"COACHLINE_STT_MODEL: {exc} (got {settings.stt_model!r})"
    return None


def _vonage_key(settings: Settings) -> str | None:
    path: Path | None = settings.vonage_private_key_path
    if path is None:
        return None
    try:
        Path(path).read_bytes()
    except OSError as exc:
        return f"COACHLINE_VONAGE_PRIVATE_KEY_PATH: cannot read {path}: {exc.strerror}"
    return None
