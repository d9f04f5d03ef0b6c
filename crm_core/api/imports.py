"""POST /api/v1/leads/import (CSV) and GET /api/v1/imports/{id} (the job and its progress).

Every row is validated with the same model as ``POST /leads``; errors name
the row and the field. ``mode=all_or_nothing`` (the default) imports nothing
when any row is bad; ``mode=partial`` imports the good rows. The import runs
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
from crm_core.api.records import load_visible
from crm_core.api.reply import Call, Reply
from crm_core.api.schemas.imports import LeadImport
from crm_core.api.schemas.leads import LeadCreate
from crm_core.api_errors import ApiError, BadRequest, PayloadTooLarge, Unprocessable
from crm_core.auth.principal import Principal
from crm_core.changes import ChangeSet
from crm_core.scoring.lead_scoring import LeadInputError, lead_score_columns
from crm_core.scoring.rescoring import lead_scorer_for_org

log = logging.getLogger(__name__)

BATCH_ROWS = 500
_COLUMNS = [name for name in LeadCreate.model_fields if name != "enrichment"]
_UNSTORABLE = re.compile("[\x00\ud800-\udfff]")
_MAX_ERRORS = 1000  # a file that is wrong everywhere does not need 50k error entries


def import_out(row: asyncpg.Record) -> LeadImport:
    data = dict(row)
    total = data["total_rows"]
    data["progress"] = 1.0 if total == 0 else round(data["processed_rows"] / total, 4)
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
                                      finished_at)
            VALUES ($1, $2, $3, $4, $5, $6, $7, CASE WHEN $4 = 'failed' THEN now() END) RETURNING *
            """,
            me.org_id, me.user_id, mode, "failed" if failed else "running", total,
            total if failed else len({e["row"] for e in errors}), errors[:_MAX_ERRORS],
        )
    if not failed:
        task = asyncio.create_task(_run(call, me, str(job["id"]), good, mode), name=f"lead-import-{job['id']}")
        _JOBS.add(task)
        task.add_done_callback(_JOBS.discard)
    return Reply(import_out(job), 202, headers={"Location": f"/api/v1/imports/{job['id']}"})


# Running imports; referenced so they are not garbage-collected mid-way.
_JOBS: set[asyncio.Task] = set()


async def _run(call: Call, me: Principal, job_id: str, good: list[dict[str, Any]], mode: str) -> None:
    pool, bus = call.pool, call.bus
    changes = ChangeSet(me.org_id, me.user_id)
    imported = 0
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
                        imported += await _insert_batch(conn, me, batch)
                        if outer is None:
                            await _progress(conn, me.org_id, job_id, len(batch), len(batch))
                    if outer is not None:
                        # the single transaction hides its rows until the end, so progress is
                        # written on another connection for pollers to see
                        async with pool.acquire() as other:
                            await _progress(other, me.org_id, job_id, len(batch), 0)
                await changes.record(conn, action="lead.import", resource_type="lead_import", resource_id=job_id,
                                     after={"imported": imported}, event_type="crm.leads.imported",
                                     payload={"import_id": job_id, "imported": imported})
                await conn.execute(
                    """
                    UPDATE lead_imports SET status = 'completed', imported_rows = $2, finished_at = now()
                    WHERE id = $1 AND org_id = $3
                    """,
                    job_id, imported, me.org_id,
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


async def _insert_batch(conn: asyncpg.Connection, me: Principal, batch: list[dict[str, Any]]) -> int:
    columns = [c for c in _COLUMNS]
    records = []
    scorer = await lead_scorer_for_org(conn, me.org_id)  # the org's model or ICP, like POST /leads
    for row in batch:
        fields = {c: row.get(c) for c in columns}
        fields["owner_id"] = fields["owner_id"] or me.user_id
        try:
            scored = lead_score_columns(scorer(fields))
        except LeadInputError:
            # validated rows are scorable; should the model disagree, the lead is stored unscored
            scored = {"ai_score": None, "grade": None, "score_factors": None, "scored_at": None}
        records.append((*(fields[c] for c in columns), scored["ai_score"], scored["grade"],
                        scored["score_factors"], scored["scored_at"]))
    await conn.executemany(
        f"""
        INSERT INTO leads (org_id, {", ".join(columns)}, ai_score, grade, score_factors, scored_at)
        VALUES ($1, {", ".join(f"${i + 2}" for i in range(len(columns) + 4))})
        """,
        [(me.org_id, *r) for r in records],
    )
    return len(records)


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
                               "all_or_nothing imports nothing if any row is invalid."),),
             errors=(400, 401, 403, 409, 413, 422)),
    Endpoint("GET", "/api/v1/imports/{id}", get_import, "An import job: status, progress, per-row errors",
             "leads", response=LeadImport),
)
