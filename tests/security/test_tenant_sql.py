"""A tripwire: SQL in crm_core that names a tenant table must name ``org_id`` too.

Tenant tables are those whose migrations give them an ``org_id`` column. Each SQL text in
crm_core (string literals and f-strings) that reads or changes one of them must mention
``org_id``, unless its function is listed in ``EXEMPT`` with the reason it cannot or need
not carry the tenant (a carrier or system identity that is looked up before any tenant is
known, housekeeping across tenants, a child table keyed by tenant-checked parent ids).

It is a text check, not a proof: it sees that ``org_id`` is named, not that it is in the
WHERE clause; the behaviour is tested by the authorization matrix and the GDPR tests.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

EXEMPT = {
    "crm_core/admin/carrier_numbers.py::rep_for_number": (
        "a carrier webhook knows only the number dialled: the number names the tenant"
    ),
    # housekeeping across every organization
    "crm_core/api/idempotency.py::prune_idempotency_keys": "deletes expired rows of every organization",
    "crm_core/changes.py::relay_outbox": "the outbox relay serves every organization",
    "crm_core/changes.py::_mark_published": "outbox rows by the ids the relay claimed",
    "crm_core/webhooks/delivery.py::fan_out": "outbox rows by the ids the dispatcher claimed",
    "crm_core/webhooks/delivery.py::_record": "the dispatcher's claimed delivery, by id",
    "crm_core/recordings/rows.py::claim_abandoned": "recovery claims dead nodes' recordings of every org",
    "crm_core/calls/nodes.py::end_calls_of_node": "a restarted node ends the calls it carried, every org",
    "crm_core/calls/nodes.py::end_calls_of_dead_nodes": "recovery ends dead nodes' calls of every org",
    "crm_core/calls/nodes.py::forget_dead_nodes": "node rows are not tenant data; any org's call keeps one",
    "crm_core/recordings/rows.py::renew_recordings": "this node's open recordings, by the ids it writes",
    "crm_core/recordings/rows.py::finish_recording": "the recorder's own recording, by its id",
    "crm_core/recordings/rows.py::set_key_id": "key rotation re-wraps recordings of every org",
    "crm_core/recordings/rows.py::mark_deleted": "retention and shredding by recording id, every org",
    "crm_core/recordings/rows.py::recording_by_id": "the store's own lookup by recording id",
    "crm_core/recordings/rows.py::playable_recording_of_call": (
        "the recorder silences a call it handled, by call id (redaction, not a tenant's request)"
    ),
    # authentication: the secret identifies the row before any tenant is known
    "crm_core/auth/tokens.py::principal_from_api_token": "stamps last use on the token row just found by hash",
    "crm_core/auth/tokens.py::revoke_session": "the caller's own session, by the id authentication found",
    # the carrier edge: a carrier names a call by its own id before the org is known
    "crm_core/calls/records.py::create_call": "finds the existing call of a (carrier, external id)",
    "crm_core/calls/records.py::find_call": "a carrier's (carrier, external id)",
    "crm_core/calls/records.py::get_call": "the call engine's lookup by call id",
    "crm_core/calls/stream_admissions.py::_consume": (
        "a media stream names its call by id, carrier and one-time token before any tenant is known"
    ),
    "crm_core/calls/stream_admissions.py::stream_admission_open": (
        "a media socket's upgrade names its call by id, carrier and one-time token before any"
        " tenant is known"
    ),
    "crm_core/calls/records.py::attach_external_id": "the carrier's id for a call this node placed",
    "crm_core/calls/records.py::update_call_status": "carrier status callbacks, by call id",
    "crm_core/calls/records.py::mark_call_ended": "the call engine ends its own call, by id",
}


def tenant_tables() -> set[str]:
    tables: set[str] = set()
    for migration in sorted((ROOT / "storage" / "migrations").glob("*.sql")):
        text = migration.read_text()
        for name, body in re.findall(
            r"CREATE TABLE (?:IF NOT EXISTS )?(\w+)\s*\((.*?)\n\);", text, re.DOTALL
        ):
            if re.search(r"^\s*org_id\b", body, re.MULTILINE):
                tables.add(name)
        tables |= set(re.findall(r"ALTER TABLE (\w+) ADD COLUMN (?:IF NOT EXISTS )?org_id\b", text))
    return tables


def _text(node: ast.AST) -> str | None:
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return node.value
    if isinstance(node, ast.JoinedStr):
        return "".join(v.value if isinstance(v, ast.Constant) else "{}" for v in node.values)
    return None


def statements_without_tenant(tables: set[str]) -> dict[str, list[str]]:
    found: dict[str, list[str]] = {}
    names = "|".join(sorted(tables))
    touches = re.compile(rf"\b(?:FROM|JOIN|UPDATE|INTO)\s+(?:{names})\b")
    for path in sorted((ROOT / "crm_core").rglob("*.py")):
        tree = ast.parse(path.read_text())
        for fn in ast.walk(tree):
            if not isinstance(fn, ast.FunctionDef | ast.AsyncFunctionDef):
                continue
            parts = {
                id(v)
                for node in ast.walk(fn)
                if isinstance(node, ast.JoinedStr)
                for v in node.values
            }
            for node in ast.walk(fn):
                text = _text(node)
                if (
                    id(node) in parts
                    or not text
                    or not re.search(r"\b(SELECT|UPDATE|DELETE|INSERT)\b", text)
                ):
                    continue
                if touches.search(text) and "org_id" not in text:
                    key = f"{path.relative_to(ROOT)}::{fn.name}"
                    found.setdefault(key, []).append(" ".join(text.split())[:120])
    return found


def test_the_tenant_tables_are_found():
    assert {"leads", "calls", "recordings", "transcript_segments", "api_tokens"} <= tenant_tables()


def test_every_tenant_statement_names_the_organization():
    found = statements_without_tenant(tenant_tables())
    unexplained = {key: sql for key, sql in found.items() if key not in EXEMPT}
    assert not unexplained, (
        "SQL on tenant tables without org_id (add the tenant condition, or list the function in EXEMPT "
        f"with the reason): {unexplained}"
    )
    stale = sorted(set(EXEMPT) - set(found))
    assert not stale, f"EXEMPT lists functions whose SQL now names org_id (drop them): {stale}"
