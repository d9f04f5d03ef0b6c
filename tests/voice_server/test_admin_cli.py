"""``coachline users …`` and ``coachline org …`` run as processes, on the database ``serve`` would use."""

from __future__ import annotations

import json
import subprocess
import sys

import asyncpg

from storage.migrations import apply_migrations
from tests.voice_server.test_cli import _env

COACHLINE = [sys.executable, "-m", "voice_server.cli"]


def _run(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run(
        [*COACHLINE, *args], check=False, capture_output=True, text=True, env=env, timeout=180
    )


def _ok(*args: str, env: dict[str, str]):
    result = _run(*args, env=env)
    assert result.returncode == 0, (args, result.stderr)
    assert "database: PostgreSQL" in result.stderr  # it says which database it talks to
    return json.loads(result.stdout)


async def test_scripted_install_users_settings_numbers_and_rules(empty_database):
    conn = await asyncpg.connect(empty_database)
    try:
        await apply_migrations(conn)
        org_id = await conn.fetchval(
            "INSERT INTO organizations (name, slug) VALUES ('Acme', 'acme') RETURNING id"
        )
        await conn.execute("INSERT INTO teams (org_id, name) VALUES ($1, 'East')", org_id)
    finally:
        await conn.close()
    env = _env(
        DATABASE_URL=empty_database,
        COACHLINE_LOG_LEVEL="warning",
        COACHLINE_USER_PASSWORD="a long rep password",
    )

    rita = _ok(
        "users",
        "create",
        "--email",
        "Rita@Acme.test",
        "--name",
        "Rita Rep",
        "--team",
        "East",
        "--sip-uri",
        "sip:rita@pbx.acme.test",
        env=env,
    )
    assert rita["email"] == "rita@acme.test" and rita["role"] == "rep" and rita["team_id"]
    assert [u["email"] for u in _ok("users", "list", "--org", "acme", env=env)] == [
        "rita@acme.test"
    ]
    assert _ok("users", "set-role", "rita@acme.test", "manager", env=env)["role"] == "manager"

    assert (
        _ok("org", "set", "recording_retention_days", "90", env=env)["recording_retention_days"]
        == 90
    )
    assert _ok("org", "set", "plan", "enterprise", env=env)["plan"] == "enterprise"
    bad = _run("org", "set", "plan", "gold", env=env)
    assert bad.returncode == 1 and '"loc": ["plan"]' in bad.stderr
    bad = _run(
        "org",
        "set",
        "coaching_rules",
        '{"rules": [{"id": "x", "trigger": "silence", "title": "t", "body": "b"}]}',
        env=env,
    )
    assert bad.returncode == 1 and '"loc": ["rules", "rules", 0, "seconds"]' in bad.stderr
    saved = _ok(
        "org",
        "set",
        "coaching_rules",
        '{"keywords": {"competitor": {"phrases": ["Zebracorp"]}}}',
        env=env,
    )
    assert saved["version"] == 1

    mapped = _ok("org", "numbers", "map", "+1 (415) 555-0142", "rita@acme.test", env=env)
    assert mapped["number"] == "+14155550142" and mapped["user_id"] == rita["id"]
    shown = _ok("org", "show", env=env)
    assert shown["slug"] == "acme" and shown["settings"]["recording_retention_days"] == 90
    assert shown["coaching_rules"]["version"] == 1
    assert [n["number"] for n in shown["carrier_numbers"]] == ["+14155550142"]

    assert _ok("users", "deactivate", "rita@acme.test", env=env)["is_active"] is False
    unknown = _run("users", "deactivate", "nobody@acme.test", env=env)
    assert unknown.returncode == 1 and "no such user" in unknown.stderr
    _ok("org", "numbers", "unmap", "+14155550142", env=env)
    assert _ok("org", "numbers", "list", env=env) == []

    conn = await asyncpg.connect(empty_database)
    try:  # the same audit trail as the API's, recorded as the system
        actions = [
            r["action"]
            for r in await conn.fetch(
                "SELECT action FROM audit_log WHERE actor_kind = 'system' ORDER BY id"
            )
        ]
    finally:
        await conn.close()
    assert actions == [
        "user.create",
        "user.update",
        "organization.settings.update",
        "organization.settings.update",
        "coaching_rules.update",
        "carrier_number.map",
        "user.deactivate",
        "carrier_number.unmap",
    ]
