"""``coachline recordings …``: master key tools for the encrypted recording store.

* ``new-key [--id ID]`` prints a fresh master key entry ``ID:base64`` for
  COACHLINE_RECORDING_KEY / the key file.
* ``rotate-key`` re-wraps every recording's data key under the current
  (first) master key; audio is not re-encrypted. Put the new key first and
  keep the old one in the ring until rotation has finished, then drop it.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime
import uuid

from crm_core.recordings.rows import set_key_id
from storage.keys import KeyringError, KeyUnwrapError, UnknownKeyError, new_master_key
from storage.recording_store import RecordingError
from voice_server.settings import Settings


def add_recordings_commands(sub: argparse._SubParsersAction) -> None:
    raw = argparse.RawDescriptionHelpFormatter
    recordings = sub.add_parser(
        "recordings", help="encrypted recording store: master keys and rotation",
        formatter_class=raw, epilog="examples:\n"
        "  export COACHLINE_RECORDING_KEY=$(coachline recordings new-key)\n"
        "  COACHLINE_RECORDING_KEY=\"$NEW,$OLD\" coachline recordings rotate-key",
    )
    commands = recordings.add_subparsers(dest="recordings_command", required=True, metavar="ACTION")
    new_key = commands.add_parser(
        "new-key", help="print a new master key entry (id:base64)", formatter_class=raw,
        epilog="examples:\n  coachline recordings new-key\n"
        "  coachline recordings new-key --id k-2025-spring > /run/secrets/coachline-recording-key",
    )
    new_key.add_argument("--id", default=None, help="key id (default: k-<date>-<random>)")
    new_key.set_defaults(func=_cmd_new_key)
    rotate = commands.add_parser(
        "rotate-key", help="re-wrap every recording's data key under the current key",
        formatter_class=raw, epilog="examples:\n"
        "  COACHLINE_RECORDING_KEY=\"$(coachline recordings new-key),$OLD\" "
        "coachline recordings rotate-key\n"
        "  coachline recordings rotate-key --no-db   # files only, database rows left as is",
    )
    rotate.add_argument(
        "--no-db", action="store_true", help="only rewrite files, leave recordings.key_id as is"
    )
    rotate.set_defaults(func=_cmd_rotate_key)


def _cmd_new_key(_settings: Settings, args: argparse.Namespace) -> int:
    key_id = args.id or f"k-{datetime.date.today():%Y%m%d}-{uuid.uuid4().hex[:6]}"
    print(f"{key_id}:{new_master_key()}")
    return 0


def _cmd_rotate_key(settings: Settings, args: argparse.Namespace) -> int:
    from voice_server.recordings import build_store

    try:
        store = build_store(settings)
    except KeyringError as exc:
        print(f"coachline: {exc}")
        return 2
    if store is None:
        print("coachline: no recording key configured (COACHLINE_RECORDING_KEY / _FILE)")
        return 2
    rewrapped, current, failed = [], 0, []
    for rid in store.recording_ids():
        try:
            old, new = store.rewrap(rid)
        except (UnknownKeyError, KeyUnwrapError, RecordingError, OSError) as exc:
            failed.append((rid, str(exc)))
            continue
        if old == new:
            current += 1
        else:
            rewrapped.append(rid)
    if rewrapped and not args.no_db:
        asyncio.run(_update_rows(settings, rewrapped, store.keyring.current_id))
    for rid, reason in failed:
        print(f"FAILED {rid}: {reason}")
    print(
        f"re-wrapped {len(rewrapped)} recording(s) under key {store.keyring.current_id!r}; "
        f"{current} already used it; {len(failed)} failed"
    )
    return 1 if failed else 0


async def _update_rows(settings: Settings, ids: list[uuid.UUID], key_id: str) -> None:
    from voice_server.cli_database import open_database

    async with (
        open_database(settings, "recordings rotate-key", migrate=False) as pool,
        pool.acquire() as conn,
    ):
        await set_key_id(conn, ids, key_id)
