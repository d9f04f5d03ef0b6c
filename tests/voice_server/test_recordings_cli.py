import os
import subprocess
import sys
import uuid

from crm_core.recordings.rows import NewRecording, insert_recording
from storage.keys import parse_key_spec
from storage.recording_store import AudioFormat, LocalRecordingStore
from tests.voice_server.recording_world import db, make_world  # noqa: F401

COACHLINE = [sys.executable, "-m", "voice_server.cli"]


def _run(*args, **env):
    clean = {k: v for k, v in os.environ.items() if not k.startswith("COACHLINE_")}
    clean.pop("DATABASE_URL", None)
    clean.update(COACHLINE_LOG_LEVEL="warning", **env)
    return subprocess.run(
        [*COACHLINE, "recordings", *args], capture_output=True, text=True, env=clean, timeout=120
    )


def _new_key(key_id):
    result = _run("new-key", "--id", key_id)
    assert result.returncode == 0, result.stderr
    return result.stdout.strip()


async def test_rotate_key_rewraps_files_and_rows(db, migrated_database, tmp_path):
    old, new = _new_key("old"), _new_key("new")
    assert old.startswith("old:") and len(parse_key_spec(old).keys["old"]) == 32
    store = LocalRecordingStore(tmp_path / "rec", parse_key_spec(old))
    world = await make_world(db)
    rid = uuid.uuid4()
    await insert_recording(
        db,
        NewRecording(
            str(rid), world.org_id, world.call_id, store.storage_key(rid), "old", 2, 8000, 4000, "n"
        ),
    )
    writer = store.create(rid, AudioFormat(8000, 2), 4000)
    writer.append(os.urandom(10_000))
    writer.close()
    audio = store.open(rid).read_all()
    env = dict(
        DATABASE_URL=migrated_database,
        COACHLINE_RECORDING_DIR=str(tmp_path / "rec"),
        COACHLINE_RECORDING_KEY=f"{new},{old}",
    )
    result = _run("rotate-key", **env)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "re-wrapped 1 recording(s) under key 'new'" in result.stdout
    assert await db.fetchval("SELECT key_id FROM recordings WHERE id = $1", rid) == "new"
    with LocalRecordingStore(tmp_path / "rec", parse_key_spec(new)).open(rid) as reader:
        assert reader.read_all() == audio
    again = _run("rotate-key", **env)
    assert again.returncode == 0 and "1 already used it" in again.stdout


def test_rotate_key_reports_recordings_it_cannot_open(tmp_path):
    stranger = _new_key("lost")
    store = LocalRecordingStore(tmp_path / "rec", parse_key_spec(stranger))
    rid = uuid.uuid4()
    store.create(rid, AudioFormat(8000, 1)).close()
    result = _run(
        "rotate-key",
        "--no-db",
        COACHLINE_RECORDING_DIR=str(tmp_path / "rec"),
        COACHLINE_RECORDING_KEY=_new_key("k2"),
    )
    assert result.returncode == 1
    assert f"FAILED {rid}" in result.stdout and "lost" in result.stdout
    assert _run("rotate-key").returncode == 2  # no key configured
