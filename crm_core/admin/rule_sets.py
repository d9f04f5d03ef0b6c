"""An organization's coaching rule set and battle cards: saved as numbered versions, rolled back.

The rule set in force is ``organizations.settings.coaching_rules`` (the live calls read it
there, see voice_server/coaching_profiles.py); every save also keeps a copy in
``coaching_rule_versions``, and a rollback saves an old copy again as the newest version, so
the history only grows. A rule set is checked before it is stored by the coaching engine
itself (``RuleSetEngine``: crm_core does not import the engine; the node hands it in), and its
errors point at the field (``rules[2].metric``).
"""

from __future__ import annotations

import re
from typing import Any, Protocol

import asyncpg

from crm_core.api_errors import NotFound, Unprocessable
from crm_core.changes import ChangeSet
from storage.ids import uuid_or_none


class RuleSetEngine(Protocol):
    """The coaching engine, as the admin functions use it."""

    def check(self, rules: dict[str, Any]) -> None:
        """Raise ValueError('<path>: <what is wrong>') if ``rules`` is not a valid rule set."""

    def preview(self, rules: dict[str, Any] | None, text: str, party: str) -> dict[str, Any]:
        """What fires when ``party`` says ``text`` under ``rules`` (None: the organization's defaults)."""


_PATH = re.compile(r"^(?P<path>[\w.\[\]]+)(?: \([^)]*\))?(?P<rest>[.\w\[\]]*):\s")


def rule_set_error(message: str) -> Unprocessable:
    """A 422 whose detail locates the bad field: ``rules[2] (pricing).metric: ...`` -> loc
    ["rules", 2, "metric"] under "rules" in the request body."""
    match = _PATH.match(message)
    loc: list[str | int] = ["rules"]
    if match:
        for part in re.findall(r"[^.\[\]]+", match["path"] + match["rest"]):
            loc.append(int(part) if part.isdigit() else part)
    return Unprocessable(
        "the rule set is invalid",
        [{"loc": loc, "type": "rule_set", "message": message}],
        code="invalid_rule_set",
    )


def check_rules(engine: RuleSetEngine, rules: Any) -> dict[str, Any]:
    if not isinstance(rules, dict):
        raise rule_set_error(f"rule set: must be an object, got {type(rules).__name__}")
    try:
        engine.check(rules)
    except ValueError as exc:
        raise rule_set_error(str(exc)) from None
    return rules


def _version_out(row: asyncpg.Record) -> dict[str, Any]:
    return {
        "id": str(row["id"]),
        "version": row["version"],
        "note": row["note"],
        "created_by": str(row["created_by"]) if row["created_by"] else None,
        "restored_from": row["restored_from"],
        "created_at": row["created_at"],
        "rules": row["rules"],
    }


async def current_rule_set(conn: asyncpg.Connection, org_id: str) -> dict[str, Any]:
    """The rule set in force: its override mapping ({} = the defaults) and version (None: never saved)."""
    settings = await conn.fetchval("SELECT settings FROM organizations WHERE id = $1::uuid", org_id)
    if settings is None:
        raise NotFound("no such organization")
    rules = settings.get("coaching_rules") if isinstance(settings, dict) else None
    version = await conn.fetchval(
        "SELECT max(version) FROM coaching_rule_versions WHERE org_id = $1::uuid", org_id
    )
    return {"version": version, "rules": rules if isinstance(rules, dict) else {}}


async def save_rule_set(
    conn: asyncpg.Connection,
    changes: ChangeSet,
    engine: RuleSetEngine,
    rules: Any,
    *,
    note: str | None = None,
    restored_from: int | None = None,
) -> dict[str, Any]:
    """Check ``rules``, make it the organization's rule set and keep it as the next version.
    Call inside a transaction."""
    check_rules(engine, rules)
    org_id = changes.org_id
    before = await current_rule_set(conn, org_id)
    # the organization row's lock orders concurrent saves, so version numbers never collide
    await conn.execute("SELECT 1 FROM organizations WHERE id = $1::uuid FOR UPDATE", org_id)
    row = await conn.fetchrow(
        """
        INSERT INTO coaching_rule_versions (org_id, version, rules, note, created_by, restored_from)
        SELECT $1::uuid, coalesce(max(version), 0) + 1, $2::jsonb, $3, $4::uuid, $5
        FROM coaching_rule_versions WHERE org_id = $1::uuid
        RETURNING *
        """,
        org_id,
        rules,
        note,
        changes.actor_id if changes.actor_kind == "user" else None,
        restored_from,
    )
    await conn.execute(
        "UPDATE organizations SET settings = jsonb_set(settings, '{coaching_rules}', $2::jsonb) "
        "WHERE id = $1::uuid",
        org_id,
        rules,
    )
    out = _version_out(row)
    await changes.record(
        conn,
        action="coaching_rules.restore" if restored_from else "coaching_rules.update",
        resource_type="coaching_rules",
        resource_id=out["id"],
        before=before,
        after={"version": out["version"], "rules": rules},
    )
    return out


async def list_versions(
    conn: asyncpg.Connection, org_id: str, limit: int = 100
) -> list[dict[str, Any]]:
    rows = await conn.fetch(
        "SELECT * FROM coaching_rule_versions WHERE org_id = $1::uuid ORDER BY version DESC LIMIT $2",
        org_id,
        limit,
    )
    return [_version_out(r) for r in rows]


async def restore_version(
    conn: asyncpg.Connection,
    changes: ChangeSet,
    engine: RuleSetEngine,
    version_id: str | None = None,
    *,
    version: int | None = None,
) -> dict[str, Any]:
    """Roll back: save the rule set of an earlier version (by id, or by number) as the newest."""
    row = await conn.fetchrow(
        "SELECT * FROM coaching_rule_versions WHERE org_id = $1::uuid "
        "AND (id = $2::uuid OR version = $3)",
        changes.org_id,
        uuid_or_none(version_id),
        version,
    )
    if row is None:
        raise NotFound("no such rule set version")
    return await save_rule_set(
        conn,
        changes,
        engine,
        row["rules"],
        note=f"rollback to version {row['version']}",
        restored_from=row["version"],
    )
