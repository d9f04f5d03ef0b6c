"""POST /api/v1/leads/import (CSV) and GET /api/v1/imports/{id} (the job and its progress).

Every row is validated with the same model as ``POST /leads``; errors name
the row and the field. ``mode=all_or_nothing`` (the default) imports nothing
when any row is bad; ``mode=partial`` imports the good rows. A row whose e-mail or phone an existing lead (or an
earlier row) holds follows ``on_duplicate``: ``skip`` (the default) leaves it out, ``update``
writes its non-empty cells onto that lead, ``create`` creates it anyway; the job counts the
rows per outcome and lists each row's result. The import runs
as a job after the upload is accepted (202); its ``progress`` figure
(processed / total rows) moves as batches commit.
"""

from __future__ import annotations

import asyncio
import csv
import io
import logging
import re
from typing import Any

import asyncpg
from pydantic import ValidationError

from crm_core.api.access import check_assignable, require
from crm_core.api.endpoint import Endpoint, QueryParam, read_limited
from crm_core.api.lead_keys import find_holder, key_policy, lock_keys
from crm_core.api.records import load_visible, update_row
from crm_core.api.reply import Call, Reply
from crm_core.api.schemas.imports import LeadImport
from crm_core.api.schemas.leads import LeadCreate
from crm_core.api_errors import ApiError, BadRequest, NotFound, PayloadTooLarge, Unprocessable
from crm_core.auth.principal import Principal
from crm_core.changes import ChangeSet
from crm_core.scoring.lead_scoring import LeadInputError, lead_score_columns
from crm_core.scoring.rescoring import lead_scorer_for_org

log = logging.getLogger(__name__)

BATCH_ROWS = 500
_COLUMNS = [name for name in LeadCreate.model_fields if name != "enrichment"]
_UNSTORABLE = re.compile("[\x00\ud800-\udfff]")
_MAX_ERRORS = 1000  # a file that is wrong everywhere does not need 50k error entries
_MAX_RESULTS = 5000
ON_DUPLICATE = ("skip", "update", "create")


def import_out(row: asyncpg.Record) -> LeadImport:
    data = dict(row)
    total = data["total_rows"]
    data["progress"] = 1.0 if total == 0 else round(data["processed_rows"] / total, 4)
    failed = len({e["row"] for e in data["errors"] if e.get("row")})
    data["outcomes"] = {"created": 0, "updated": 0, "skipped": 0, **data["outcomes"], "failed": failed}
    return LeadImport.model_validate(data)


def _storable(text: str) -> str:
    """``text`` without what jsonb cannot hold: some messages quote the offending character,
    and a NUL quoted into the job's error list would fail the whole import with a 500."""
    return _UNSTORABLE.sub("\ufffd", text)


def parse_csv(raw: bytes, max_rows: int) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Validated lead fields per good row, and errors (row, field, message) for bad ones."""
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise BadRequest("the file is not UTF-8 text", code="invalid_csv") from None
    reader = csv.DictReader(io.StringIO(text))
    header = [h.strip() for h in (reader.fieldnames or [])]
    if not header:
        raise Unprocessable("the CSV file has no header row", code="invalid_csv")
    unknown = sorted(set(header) - set(_COLUMNS))
    if unknown:
        raise Unprocessable("the CSV file has unknown columns", {"unknown": unknown, "allowed": _COLUMNS},
                            code="invalid_csv")
    reader.fieldnames = header
    good: list[dict[str, Any]] = []
    errors: list[dict[str, Any]] = []
    try:
        for number, record in enumerate(reader, start=1):
            if number > max_rows:
                raise PayloadTooLarge(f"at most {max_rows} rows per import", {"limit": max_rows})
            if None in record:
                errors.append({"row": number, "field": None, "message": "more values than header columns"})
                continue
            # spreadsheets pad cells: a cell is its text without surrounding blanks
            values = {k: v.strip() for k, v in record.items() if v is not None and v.strip()}
            try:
                lead = LeadCreate.model_validate(values)
            except ValidationError as exc:
                for err in exc.errors(include_url=False, include_input=False):
                    field = ".".join(str(p) for p in err["loc"]) or None
                    errors.append({"row": number, "field": field, "message": _storable(err["msg"])})
                continue
            good.append({"row": number, **lead.model_dump(mode="json")})
    except csv.Error as exc:
        raise Unprocessable(f"the CSV file cannot be read: {exc}", code="invalid_csv") from None
    return good, errors


async def start_import(call: Call) -> Reply:
    me = call.me
    require(me, "leads:import")
    mode = call.request.query.get("mode", "all_or_nothing")
    if mode not in ("all_or_nothing", "partial"):
        raise BadRequest("mode is all_or_nothing or partial", {"mode": mode}, code="invalid_mode")
    on_duplicate = call.request.query.get("on_duplicate", "skip")
    if on_duplicate not in ON_DUPLICATE:
        raise BadRequest("on_duplicate is skip, update or create", {"on_duplicate": on_duplicate},
                         code="invalid_query")
    options = call.context.options
    raw = await read_limited(call.request, options.max_import_bytes)
    good, errors = parse_csv(raw, options.max_import_rows)
    total = len(good) + len({e["row"] for e in errors})

    async with call.pool.acquire() as conn:
        owners = {row["owner_id"] for row in good if row["owner_id"]}
        for owner in owners:
            try:
                await check_assignable(conn, me, owner)
            except ApiError as exc:
                bad = [r for r in good if r["owner_id"] == owner]
                errors.extend({"row": r["row"], "field": "owner_id", "message": exc.message} for r in bad)
                good = [r for r in good if r["owner_id"] != owner]
        errors.sort(key=lambda e: e["row"])
        failed = bool(errors) and mode == "all_or_nothing"
        job = await conn.fetchrow(
            """
            INSERT INTO lead_imports (org_id, user_id, mode, status, total_rows, processed_rows, errors,
                                      finished_at, on_duplicate)
            VALUES ($1, $2, $3, $4, $5, $6, $7, CASE WHEN $4 = 'failed' THEN now() END, $8) RETURNING *
            """,
            me.org_id, me.user_id, mode, "failed" if failed else "running", total,
            total if failed else len({e["row"] for e in errors}), errors[:_MAX_ERRORS], on_duplicate,
        )
    if not failed:
        task = asyncio.create_task(_run(call, me, str(job["id"]), good, mode, on_duplicate),
                                   name=f"lead-import-{job['id']}")
        _JOBS.add(task)
        task.add_done_callback(_JOBS.discard)
    return Reply(import_out(job), 202, headers={"Location": f"/api/v1/imports/{job['id']}"})


# Running imports; referenced so they are not garbage-collected mid-way.
_JOBS: set[asyncio.Task] = set()


async def _run(call: Call, me: Principal, job_id: str, good: list[dict[str, Any]], mode: str,
               on_duplicate: str) -> None:
    pool, bus = call.pool, call.bus
    changes = ChangeSet(me.org_id, me.user_id)
    imported = 0
    outcomes = {"created": 0, "updated": 0, "skipped": 0}
    shown: list[dict[str, Any]] = []
    try:
        async with pool.acquire() as conn:
            # all_or_nothing: one transaction around every batch, so a failure leaves no rows.
            outer = conn.transaction() if mode == "all_or_nothing" else None
            if outer is not None:
                await outer.start()
            try:
                for start in range(0, len(good), BATCH_ROWS):
                    batch = good[start:start + BATCH_ROWS]
                    async with conn.transaction():
                        results = await _write_batch(conn, call, batch, on_duplicate)
                        written = sum(r["outcome"] != "skipped" for r in results)
                        imported += written
                        for r in results:
                            outcomes[r["outcome"]] += 1
                        shown.extend(results[:max(0, _MAX_RESULTS - len(shown))])
                        if outer is None:
                            await _progress(conn, me.org_id, job_id, len(batch), written)
                    if outer is not None:
                        # the single transaction hides its rows until the end, so progress is
                        # written on another connection for pollers to see
                        async with pool.acquire() as other:
                            await _progress(other, me.org_id, job_id, len(batch), 0)
                await changes.record(conn, action="lead.import", resource_type="lead_import", resource_id=job_id,
                                     after={"imported": imported, **outcomes}, event_type="crm.leads.imported",
                                     payload={"import_id": job_id, "imported": imported, **outcomes})
                await conn.execute(
                    """
                    UPDATE lead_imports SET status = 'completed', imported_rows = $2, finished_at = now(),
                        outcomes = $4, results = $5
                    WHERE id = $1 AND org_id = $3
                    """,
                    job_id, imported, me.org_id, outcomes, shown,
                )
            except BaseException:
                if outer is not None:
                    await outer.rollback()
                raise
            else:
                if outer is not None:
                    await outer.commit()
        await changes.publish(pool, bus)
    except Exception as exc:
        log.exception("lead import %s failed", job_id)
        async with pool.acquire() as conn:
            await conn.execute(
                """
                UPDATE lead_imports SET status = 'failed', finished_at = now(),
                    imported_rows = CASE WHEN mode = 'partial' THEN $2 ELSE 0 END,
                    errors = errors || jsonb_build_array(jsonb_build_object('row', 0, 'field', NULL,
                                                                            'message', $3::text))
                WHERE id = $1 AND org_id = $4
                """,
                job_id, imported, f"import stopped: {type(exc).__name__}", me.org_id,
            )


async def _progress(conn: asyncpg.Connection, org_id: str, job_id: str, processed: int, imported: int) -> None:
    await conn.execute(
        """
        UPDATE lead_imports SET processed_rows = processed_rows + $2, imported_rows = imported_rows + $3
        WHERE id = $1 AND org_id = $4
        """,
        job_id, processed, imported, org_id,
    )


async def _write_batch(conn: asyncpg.Connection, call: Call, batch: list[dict[str, Any]],
                       on_duplicate: str) -> list[dict[str, Any]]:
    """Each row created, or matched to the lead holding its key and skipped or updated."""
    me = call.me
    scorer = await lead_scorer_for_org(conn, me.org_id)  # the org's model or ICP, like POST /leads
    policy = await key_policy(conn, me.org_id)
    checked = bool(policy.keys) and on_duplicate != "create"
    if checked:
        await lock_keys(conn, me.org_id)  # held to the end of the (outer) transaction
    results = []
    for row in batch:
        fields = {c: row.get(c) for c in _COLUMNS}
        fields["owner_id"] = fields["owner_id"] or me.user_id
        holder = await find_holder(conn, me.org_id, policy, fields) if checked else None
        if holder is None:
            fields.update(_scored(scorer, fields))
            lead_id = await conn.fetchval(
                f"""
                INSERT INTO leads (org_id, {", ".join(fields)})
                VALUES ($1, {", ".join(f"${i + 2}" for i in range(len(fields)))}) RETURNING id
                """,
                me.org_id, *fields.values(),
            )
            results.append({"row": row["row"], "outcome": "created", "lead_id": str(lead_id), "key": None})
            continue
        try:
            current = await load_visible(conn, me, table="leads", record_id=holder.lead_id, owner_column="owner_id",
                                         what="lead", for_update=True, territory_column="territory")
        except NotFound:
            # another rep's lead holds the key: not this importer's to see or change
            results.append({"row": row["row"], "outcome": "skipped", "lead_id": None, "key": holder.key})
            continue
        if on_duplicate == "update":
            # the row's non-empty cells; the matched lead keeps its owner
            updates = {c: row[c] for c in _COLUMNS if row.get(c) is not None and c != "owner_id"}
            updates.update(_scored(scorer, {**dict(current), **updates}))
            await update_row(conn, "leads", current["id"], updates, me.org_id)
        results.append({"row": row["row"], "outcome": "updated" if on_duplicate == "update" else "skipped",
                        "lead_id": holder.lead_id, "key": holder.key})
    return results


def _scored(scorer: Any, fields: dict[str, Any]) -> dict[str, Any]:
    try:
        return lead_score_columns(scorer(fields))
    except LeadInputError:
        # validated rows are scorable; should the model disagree, the lead is stored unscored
        return {"ai_score": None, "grade": None, "score_factors": None, "scored_at": None}


async def get_import(call: Call) -> Reply:
    async with call.pool.acquire() as conn:
        row = await load_visible(conn, call.me, table="lead_imports", record_id=call.path_id(),
                                 owner_column="user_id", what="import")
    return Reply(import_out(row))


ENDPOINTS = (
    Endpoint("POST", "/api/v1/leads/import", start_import,
             "Import leads from CSV (header row of lead field names); answers 202 with the import job",
             "leads", response=LeadImport, status=202, raw_body="text/csv",
             query=(QueryParam("mode", {"type": "string", "enum": ["all_or_nothing", "partial"],
                                        "default": "all_or_nothing"},
                               "all_or_nothing imports nothing if any row is invalid."),
                    QueryParam("on_duplicate", {"type": "string", "enum": list(ON_DUPLICATE), "default": "skip"},
                               "A row whose e-mail or phone an existing lead holds: skip it, update that "
                               "lead, or create a new lead anyway."),),
             errors=(400, 401, 403, 409, 413, 422)),
    Endpoint("GET", "/api/v1/imports/{id}", get_import, "An import job: status, progress, per-row errors",
             "leads", response=LeadImport),
)
