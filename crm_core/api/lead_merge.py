"""POST /api/v1/leads/{id}/merge and GET /api/v1/leads/{id}/duplicates.

A merge folds another lead into this one: the other's activities, calls and deals point at
this lead, this lead's empty fields take the other's values, the other is deleted, and
``lead_merges`` remembers it so a repeated merge answers the same (idempotent). Both leads must
be visible to the caller (else 404, as for any record out of reach).

Duplicate candidates are the leads sharing an e-mail or phone (the keys, even where an
organisation turned them off, and old duplicates from before the check) and those whose name
and company are alike by trigram similarity (``crm_core.api.trigrams``), after legal forms such
as "Inc" or "GmbH" are set aside. The candidates scored are the leads whose last name or company
starts with the same three letters and, where pg_trgm is installed, whose name its index finds
similar (the newest ``MAX_CANDIDATES``), so no request compares every lead.
"""

from __future__ import annotations

import re
from typing import Any

import asyncpg

from crm_core.api.access import visible_clause
from crm_core.api.endpoint import Endpoint, QueryParam
from crm_core.api.lead_keys import KeyPolicy, find_holder, key_policy
from crm_core.api.leads import lead_out, score_columns_in_context
from crm_core.api.listing import SqlParams
from crm_core.api.records import load_visible, parse_uuid, update_row
from crm_core.api.reply import Call, Reply
from crm_core.api.schemas.leads import LeadDuplicate, LeadMerge, LeadMergeResult
from crm_core.api.trigrams import similarity, trigrams
from crm_core.api_errors import BadRequest, NotFound, Unprocessable
from crm_core.changes import ChangeSet

_FILLED = (
    "first_name",
    "last_name",
    "email",
    "phone",
    "company",
    "title",
    "company_size",
    "industry",
    "source",
    "territory",
)
_SCORED = frozenset({"title", "company_size", "industry", "source", "email", "phone", "company"})
# Legal forms that say nothing about which company it is.
_COMPANY_SUFFIX = re.compile(
    r"\b(inc|incorporated|corp|corporation|co|company|llc|ltd|limited|gmbh|ag|sa|sas|plc|bv)\b\.?"
)
MIN_SIMILARITY = 0.4
# Leads of the block (same start of last name or company) scored, newest first.
MAX_CANDIDATES = 2000


async def _load(conn: asyncpg.Connection, call: Call, lead_id: str) -> asyncpg.Record:
    return await load_visible(
        conn,
        call.me,
        table="leads",
        record_id=lead_id,
        owner_column="owner_id",
        what="lead",
        for_update=True,
        territory_column="territory",
    )


async def merge_leads(call: Call) -> Reply:
    body: LeadMerge = call.body
    me = call.me
    target_id = parse_uuid(call.path_id(), "lead")
    other_id = str(body.other_id)
    if other_id == target_id:
        raise Unprocessable(
            "a lead cannot be merged into itself", {"other_id": other_id}, code="same_lead"
        )
    changes = ChangeSet(me.org_id, me.user_id)
    async with call.pool.acquire() as conn, conn.transaction():
        done = await conn.fetchrow(
            "SELECT into_id::text AS into_id, moved FROM lead_merges WHERE org_id = $1 AND merged_id = $2",
            me.org_id,
            other_id,
        )
        if done is not None:
            # a repeat: the same answer, while the caller may still see the lead it went into
            if done["into_id"] != target_id:
                raise NotFound("no such lead", {"id": other_id})
            target = await _load(conn, call, target_id)
            return Reply(
                LeadMergeResult(lead=lead_out(target), merged_id=other_id, moved=done["moved"])
            )
        # locked in id order, so two opposite merges at once wait instead of deadlocking
        first, second = sorted((target_id, other_id))
        rows = {first: await _load(conn, call, first)}
        rows[second] = await _load(conn, call, second)
        target, other = rows[target_id], rows[other_id]
        moved = {
            "deals": _count(
                await conn.execute(
                    "UPDATE deals SET lead_id = $3, updated_at = now() WHERE org_id = $1 AND lead_id = $2",
                    me.org_id,
                    other["id"],
                    target["id"],
                )
            ),
            "calls": _count(
                await conn.execute(
                    "UPDATE calls SET lead_id = $3 WHERE org_id = $1 AND lead_id = $2",
                    me.org_id,
                    other["id"],
                    target["id"],
                )
            ),
            "activities": _count(
                await conn.execute(
                    """
                UPDATE activities SET lead_id = CASE WHEN lead_id = $2 THEN $3 ELSE lead_id END,
                    subject_id = CASE WHEN subject_type = 'lead' AND subject_id = $2 THEN $3 ELSE subject_id END
                WHERE org_id = $1 AND (lead_id = $2 OR (subject_type = 'lead' AND subject_id = $2))
                """,
                    me.org_id,
                    other["id"],
                    target["id"],
                )
            ),
        }
        fills: dict[str, Any] = {
            f: other[f] for f in _FILLED if target[f] is None and other[f] is not None
        }
        if other["enrichment"]:
            fills["enrichment"] = {**other["enrichment"], **(target["enrichment"] or {})}
        if _SCORED & fills.keys():
            fills.update(await score_columns_in_context(conn, {**dict(target), **fills}))
        await conn.execute(
            "DELETE FROM leads WHERE id = $1 AND org_id = $2", other["id"], me.org_id
        )
        row = await update_row(conn, "leads", target["id"], fills, me.org_id) if fills else target
        await conn.execute(
            "INSERT INTO lead_merges (merged_id, org_id, into_id, merged_by, moved) VALUES ($1, $2, $3, $4, $5)",
            other["id"],
            me.org_id,
            target["id"],
            me.user_id,
            moved,
        )
        await conn.execute(
            """
            INSERT INTO activities (org_id, kind, subject_type, subject_id, lead_id, actor_id, body)
            VALUES ($1, 'merged', 'lead', $2, $2, $3, $4)
            """,
            me.org_id,
            target["id"],
            me.user_id,
            {"merged_id": other_id, "moved": moved},
        )
        out = LeadMergeResult(lead=lead_out(row), merged_id=other_id, moved=moved)
        await changes.record(
            conn,
            action="lead.merge",
            resource_type="lead",
            resource_id=target_id,
            before={
                "lead": lead_out(target).model_dump(mode="json"),
                "merged": lead_out(other).model_dump(mode="json"),
            },
            after=out.model_dump(mode="json"),
            event_type="crm.lead.merged",
            payload={"lead_id": target_id, "merged_id": other_id, "moved": moved},
        )
    await changes.publish(call.pool, call.bus)
    return Reply(out)


async def _has_pg_trgm(conn: asyncpg.Connection) -> bool:
    return bool(
        await conn.fetchval("SELECT EXISTS (SELECT 1 FROM pg_extension WHERE extname = 'pg_trgm')")
    )


def _count(status: str) -> int:
    return int(status.rsplit(" ", 1)[-1])


def _company_key(company: str | None) -> str:
    return re.sub(r"\s+", " ", _COMPANY_SUFFIX.sub(" ", (company or "").lower())).strip()


async def find_duplicates(call: Call) -> Reply:
    me = call.me
    try:
        limit = int(call.request.query.get("limit", "10"))
    except ValueError:
        raise BadRequest("limit must be an integer", code="invalid_limit") from None
    if not 1 <= limit <= 50:
        raise BadRequest("limit must be between 1 and 50", code="invalid_limit")
    async with call.pool.acquire() as conn:
        lead = await load_visible(
            conn,
            me,
            table="leads",
            record_id=call.path_id(),
            owner_column="owner_id",
            what="lead",
            territory_column="territory",
        )
        policy = await key_policy(conn, me.org_id)
        found: dict[str, tuple[asyncpg.Record | None, set[str], float]] = {}
        # shared keys, whatever the organisation enforces
        keys = KeyPolicy(("email", "phone"), policy.region)
        exclude = {str(lead["id"])}
        for key in keys.keys:
            holder = await find_holder(
                conn,
                me.org_id,
                KeyPolicy((key,), keys.region),
                dict(lead),
                exclude_id=str(lead["id"]),
            )
            if holder is not None:
                found[holder.lead_id] = (None, {key}, 1.0)
        params = SqlParams()
        where = visible_clause(
            me, params, alias="l", owner_column="owner_id", territory_column="territory"
        )
        name = " ".join(p for p in (lead["first_name"], lead["last_name"]) if p)
        company = _company_key(lead["company"])
        last = (lead["last_name"] or "").strip().lower()[:3]
        block = []
        if last:
            block.append(f"lower(left(btrim(l.last_name), 3)) = {params.add(last)}")
        if company:
            block.append(f"lower(left(btrim(l.company), 3)) = {params.add(company[:3])}")
        if name and await _has_pg_trgm(conn):
            # the trigram index finds similar names whatever letters they start with
            block.append(
                f"(coalesce(l.first_name, '') || ' ' || coalesce(l.last_name, '')) % {params.add(name)}"
            )
        rows: list[asyncpg.Record] = []
        if block:
            rows = await conn.fetch(
                f"""
                SELECT l.* FROM leads l
                WHERE l.org_id = {params.add(me.org_id)} AND {" AND ".join(where)}
                  AND l.id <> {params.add(lead["id"])} AND ({" OR ".join(block)})
                ORDER BY l.created_at DESC LIMIT {MAX_CANDIDATES}
                """,
                *params.values,
            )
        name_grams, company_grams = trigrams(name), trigrams(company)
        for row in rows:
            name_sim = similarity(
                name_grams, " ".join(p for p in (row["first_name"], row["last_name"]) if p)
            )
            company_sim = similarity(company_grams, _company_key(row["company"]))
            score = name_sim if not company else 0.6 * name_sim + 0.4 * company_sim
            prior = found.get(str(row["id"]))
            if prior is None and score < MIN_SIMILARITY:
                continue
            reasons = {r for r, s in (("name", name_sim), ("company", company_sim)) if s >= 0.5}
            if prior is not None:
                found[str(row["id"])] = (row, prior[1] | reasons, 1.0)
            else:
                found[str(row["id"])] = (row, reasons or {"name"}, score)
        missing = [i for i, (r, _, _) in found.items() if r is None]
        if missing:
            params = SqlParams()
            where = visible_clause(
                me, params, alias="l", owner_column="owner_id", territory_column="territory"
            )
            for row in await conn.fetch(
                f"SELECT l.* FROM leads l WHERE l.org_id = {params.add(me.org_id)} AND {' AND '.join(where)} "
                f"AND l.id = ANY({params.add(missing)}::uuid[])",
                *params.values,
            ):
                found[str(row["id"])] = (row, found[str(row["id"])][1], 1.0)
    exclude |= {
        i for i, (r, _, _) in found.items() if r is None
    }  # key holders the caller may not see
    out = [
        LeadDuplicate(lead=lead_out(r), reasons=sorted(reasons), similarity=round(score, 4))
        for i, (r, reasons, score) in found.items()
        if i not in exclude and r is not None
    ]
    out.sort(key=lambda d: (-d.similarity, str(d.lead.id)))
    return Reply({"data": [d.model_dump(mode="json") for d in out[:limit]], "next_cursor": None})


ENDPOINTS = (
    Endpoint(
        "POST",
        "/api/v1/leads/{id}/merge",
        merge_leads,
        "Merge another lead into this one (its activities, calls and deals follow; it is deleted)",
        "leads",
        body=LeadMerge,
        response=LeadMergeResult,
        errors=(400, 401, 403, 404, 413, 422),
    ),
    Endpoint(
        "GET",
        "/api/v1/leads/{id}/duplicates",
        find_duplicates,
        "Duplicate candidates: leads sharing its e-mail or phone, or alike in name and company",
        "leads",
        response=LeadDuplicate,
        paginated=True,
        query=(
            QueryParam(
                "limit",
                {"type": "integer", "minimum": 1, "maximum": 50, "default": 10},
                "How many candidates, best first.",
            ),
        ),
    ),
)
