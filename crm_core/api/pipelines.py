"""/api/v1/pipelines: each organisation's pipelines and their ordered, typed stages.

Everyone in the organisation reads them (the deal screens need the stages); admins create
pipelines and add, rename, reorder, re-weight, retype and delete stages. A stage with deals
in it is not deleted nor retyped (409 ``stage_in_use``): the deals' closed state follows the
type, so they are moved first. ``resolve_stage`` is the one place a deal's pipeline and stage
names are checked (422 listing the allowed values).
"""

from __future__ import annotations

from typing import Any

import asyncpg

from crm_core.api.access import require
from crm_core.api.endpoint import Endpoint
from crm_core.api.listing import Collection, SortKey, SqlParams, fetch_page
from crm_core.api.records import load_visible, parse_uuid
from crm_core.api.reply import Call, Reply
from crm_core.api.schemas.pipelines import (
    Pipeline,
    PipelineCreate,
    PipelineUpdate,
    Stage,
    StageCreate,
    StageUpdate,
)
from crm_core.api_errors import BadRequest, Conflict, NotFound, Unprocessable
from crm_core.changes import ChangeSet

PIPELINES = Collection(filters=(), sorts=(SortKey("created_at", "p.created_at", "timestamptz"),
                                          SortKey("name", "p.name", "text")))
_STAGES_SQL = """
SELECT s.*, (SELECT count(*) FROM deals d WHERE d.org_id = s.org_id AND d.stage_id = s.id) AS deal_count
FROM pipeline_stages s WHERE s.org_id = $1 AND s.pipeline_id = ANY($2::uuid[]) ORDER BY s.pipeline_id, s.position
"""


async def resolve_stage(conn: asyncpg.Connection, org_id: Any, pipeline: str | None,
                        stage: str | None) -> asyncpg.Record:
    """The stage a deal may be put in: ``pipeline`` by name (None: the default pipeline),
    ``stage`` by name (None: the pipeline's first open stage). 422 names the allowed values."""
    rows = await conn.fetch(
        """
        SELECT p.id AS pipeline_id, p.name AS pipeline, s.id, s.name, s.type, s.position
        FROM pipelines p JOIN pipeline_stages s ON s.pipeline_id = p.id AND s.org_id = p.org_id
        WHERE p.org_id = $1 AND CASE WHEN $2::text IS NULL THEN p.is_default ELSE p.name = $2 END
        ORDER BY s.position
        """,
        org_id, pipeline,
    )
    if not rows:
        names = [r["name"] for r in await conn.fetch(
            "SELECT name FROM pipelines WHERE org_id = $1 ORDER BY is_default DESC, name", org_id)]
        raise Unprocessable(f"{pipeline!r} is not a pipeline of this organisation", [
            {"loc": ["body", "pipeline"], "type": "unknown_pipeline", "message": "not one of the allowed pipelines",
             "allowed": names}], code="unknown_pipeline")
    if stage is None:
        found = next((r for r in rows if r["type"] == "open"), rows[0])
    else:
        found = next((r for r in rows if r["name"] == stage), None)
    if found is None:
        raise Unprocessable(f"{stage!r} is not a stage of the pipeline {rows[0]['pipeline']!r}", [
            {"loc": ["body", "stage"], "type": "unknown_stage", "message": "not one of the pipeline's stages",
             "pipeline": rows[0]["pipeline"], "allowed": [r["name"] for r in rows]}], code="unknown_stage")
    return found


def _stage_out(row: asyncpg.Record) -> dict[str, Any]:
    return Stage.model_validate({**dict(row), "deal_count": row["deal_count"]}).model_dump(mode="json")


async def _with_stages(conn: asyncpg.Connection, org_id: Any, pipelines: list[dict[str, Any]]) -> list[dict[str, Any]]:
    rows = await conn.fetch(_STAGES_SQL, org_id, [p["id"] for p in pipelines])
    by_pipeline: dict[str, list[dict[str, Any]]] = {}
    for r in rows:
        by_pipeline.setdefault(str(r["pipeline_id"]), []).append(_stage_out(r))
    return [{**p, "stages": by_pipeline.get(str(p["id"]), [])} for p in pipelines]


def _pipeline_item(row: asyncpg.Record) -> dict[str, Any]:
    return {k: row[k] for k in ("id", "name", "is_default", "created_at", "updated_at")}


async def _pipeline_out(conn: asyncpg.Connection, org_id: Any, row: asyncpg.Record) -> Pipeline:
    [full] = await _with_stages(conn, org_id, [_pipeline_item(row)])
    return Pipeline.model_validate(full)


async def list_pipelines(call: Call) -> Reply:
    params = SqlParams()
    base = [f"p.org_id = {params.add(call.me.org_id)}"]

    async def finish(items: list[dict[str, Any]]) -> list[dict[str, Any]]:
        async with call.pool.acquire() as conn:
            full = await _with_stages(conn, call.me.org_id, items)
        return [Pipeline.model_validate(p).model_dump(mode="json") for p in full]

    return Reply(await fetch_page(call, PIPELINES, params, base, table="pipelines", alias="p",
                                  to_item=_pipeline_item, finish=finish))


async def get_pipeline(call: Call) -> Reply:
    async with call.pool.acquire() as conn:
        row = await load_visible(conn, call.me, table="pipelines", record_id=call.path_id(), owner_column=None,
                                 what="pipeline")
        return Reply(await _pipeline_out(conn, call.me.org_id, row))


async def _make_default(conn: asyncpg.Connection, org_id: Any, pipeline_id: Any) -> None:
    await conn.execute("UPDATE pipelines SET is_default = false, updated_at = now() "
                       "WHERE org_id = $1 AND is_default AND id <> $2", org_id, pipeline_id)
    await conn.execute("UPDATE pipelines SET is_default = true WHERE org_id = $1 AND id = $2", org_id, pipeline_id)


def _check_stage_set(stages: list[StageCreate]) -> None:
    names = [s.name for s in stages]
    if len(set(names)) != len(names):
        raise Unprocessable("stage names repeat", [{"loc": ["body", "stages"], "type": "duplicate_stage",
                                                    "message": "each stage name once"}])
    if not any(s.type == "open" for s in stages):
        raise Unprocessable("a pipeline needs an open stage", [
            {"loc": ["body", "stages"], "type": "no_open_stage", "message": "new deals start in the first open stage"}])


async def create_pipeline(call: Call) -> Reply:
    require(call.me, "pipelines:manage")
    body: PipelineCreate = call.body
    me = call.me
    _check_stage_set(body.stages)
    changes = ChangeSet(me.org_id, me.user_id)
    async with call.pool.acquire() as conn, conn.transaction():
        try:
            row = await conn.fetchrow("INSERT INTO pipelines (org_id, name) VALUES ($1, $2) RETURNING *",
                                      me.org_id, body.name)
        except asyncpg.UniqueViolationError:
            raise Conflict("a pipeline with this name exists", {"name": body.name}, code="duplicate_name") from None
        await conn.executemany(
            "INSERT INTO pipeline_stages (org_id, pipeline_id, name, position, probability, type) "
            "VALUES ($1, $2, $3, $4, $5, $6)",
            [(me.org_id, row["id"], s.name, i, s.probability, s.type) for i, s in enumerate(body.stages)])
        if body.is_default:
            await _make_default(conn, me.org_id, row["id"])
            row = await conn.fetchrow("SELECT * FROM pipelines WHERE org_id = $1 AND id = $2", me.org_id, row["id"])
        out = await _pipeline_out(conn, me.org_id, row)
        await changes.record(conn, action="pipeline.create", resource_type="pipeline", resource_id=str(out.id),
                             after=out.model_dump(mode="json"))
    return Reply(out, 201, headers={"Location": f"/api/v1/pipelines/{out.id}"})


async def _load_pipeline(conn: asyncpg.Connection, call: Call, *, name: str = "id") -> asyncpg.Record:
    return await load_visible(conn, call.me, table="pipelines", record_id=call.path_id(name), owner_column=None,
                              what="pipeline", for_update=True)


async def update_pipeline(call: Call) -> Reply:
    require(call.me, "pipelines:manage")
    body: PipelineUpdate = call.body
    me = call.me
    if not body.model_fields_set:
        raise BadRequest("the body changes nothing", code="empty_update")
    changes = ChangeSet(me.org_id, me.user_id)
    async with call.pool.acquire() as conn, conn.transaction():
        current = await _load_pipeline(conn, call)
        before = await _pipeline_out(conn, me.org_id, current)
        if body.name is not None and body.name != current["name"]:
            try:
                await conn.execute("UPDATE pipelines SET name = $3, updated_at = now() WHERE org_id = $1 AND id = $2",
                                   me.org_id, current["id"], body.name)
            except asyncpg.UniqueViolationError:
                raise Conflict("a pipeline with this name exists", {"name": body.name},
                               code="duplicate_name") from None
            # the deals show the pipeline's name: their representation (and ETag) change
            await conn.execute("UPDATE deals SET pipeline = $3, updated_at = now() "
                               "WHERE org_id = $1 AND pipeline_id = $2", me.org_id, current["id"], body.name)
        if body.is_default:
            await _make_default(conn, me.org_id, current["id"])
        row = await conn.fetchrow("UPDATE pipelines SET updated_at = now() WHERE org_id = $1 AND id = $2 RETURNING *",
                                  me.org_id, current["id"])
        out = await _pipeline_out(conn, me.org_id, row)
        await changes.record(conn, action="pipeline.update", resource_type="pipeline", resource_id=str(out.id),
                             before=before.model_dump(mode="json"), after=out.model_dump(mode="json"))
    return Reply(out)


async def _reorder(conn: asyncpg.Connection, org_id: Any, pipeline_id: Any, stage_id: Any, position: int) -> None:
    """Put ``stage_id`` at ``position`` (clamped to the end) and number the others around it."""
    ids = [r["id"] for r in await conn.fetch(
        "SELECT id FROM pipeline_stages WHERE org_id = $1 AND pipeline_id = $2 AND id <> $3 ORDER BY position",
        org_id, pipeline_id, stage_id)]
    ids.insert(min(position, len(ids)), stage_id)
    await conn.execute(
        "UPDATE pipeline_stages s SET position = o.position - 1, updated_at = now() "
        "FROM unnest($3::uuid[]) WITH ORDINALITY AS o (id, position) "
        "WHERE s.org_id = $1 AND s.pipeline_id = $2 AND s.id = o.id",
        org_id, pipeline_id, ids)


async def add_stage(call: Call) -> Reply:
    require(call.me, "pipelines:manage")
    body: StageCreate = call.body
    me = call.me
    changes = ChangeSet(me.org_id, me.user_id)
    async with call.pool.acquire() as conn, conn.transaction():
        pipeline = await _load_pipeline(conn, call)
        last = await conn.fetchval("SELECT coalesce(max(position), -1) FROM pipeline_stages "
                                   "WHERE org_id = $1 AND pipeline_id = $2", me.org_id, pipeline["id"])
        try:
            stage_id = await conn.fetchval(
                "INSERT INTO pipeline_stages (org_id, pipeline_id, name, position, probability, type) "
                "VALUES ($1, $2, $3, $4, $5, $6) RETURNING id",
                me.org_id, pipeline["id"], body.name, last + 1, body.probability, body.type)
        except asyncpg.UniqueViolationError:
            raise Conflict("the pipeline has a stage with this name", {"name": body.name},
                           code="duplicate_name") from None
        if body.position is not None:
            await _reorder(conn, me.org_id, pipeline["id"], stage_id, body.position)
        row = await conn.fetchrow("UPDATE pipelines SET updated_at = now() WHERE org_id = $1 AND id = $2 RETURNING *",
                                  me.org_id, pipeline["id"])
        out = await _pipeline_out(conn, me.org_id, row)
        await changes.record(conn, action="pipeline.stage_create", resource_type="pipeline",
                             resource_id=str(out.id), after=out.model_dump(mode="json"))
    return Reply(out, 201)


async def _load_stage(conn: asyncpg.Connection, call: Call) -> tuple[asyncpg.Record, asyncpg.Record]:
    pipeline = await _load_pipeline(conn, call)
    stage_id = parse_uuid(call.path_id("stage_id"), "stage")
    stage = await conn.fetchrow(
        "SELECT s.*, (SELECT count(*) FROM deals d WHERE d.org_id = s.org_id AND d.stage_id = s.id) AS deal_count "
        "FROM pipeline_stages s WHERE s.org_id = $1 AND s.pipeline_id = $2 AND s.id = $3 FOR UPDATE OF s",
        call.me.org_id, pipeline["id"], stage_id)
    if stage is None:
        raise NotFound("no such stage", {"id": stage_id})
    return pipeline, stage


def _in_use(stage: asyncpg.Record, doing: str) -> Conflict:
    return Conflict(f"{stage['deal_count']} deals are in the stage {stage['name']!r}: move them before {doing} it",
                    {"stage_id": str(stage["id"]), "deals": stage["deal_count"]}, code="stage_in_use")


async def _open_stage_left(conn: asyncpg.Connection, org_id: Any, pipeline_id: Any, stage_id: Any) -> bool:
    return await conn.fetchval("SELECT EXISTS (SELECT 1 FROM pipeline_stages WHERE org_id = $1 AND pipeline_id = $2 "
                               "AND id <> $3 AND type = 'open')", org_id, pipeline_id, stage_id)


async def update_stage(call: Call) -> Reply:
    require(call.me, "pipelines:manage")
    body: StageUpdate = call.body
    me = call.me
    if not body.model_fields_set:
        raise BadRequest("the body changes nothing", code="empty_update")
    changes = ChangeSet(me.org_id, me.user_id)
    async with call.pool.acquire() as conn, conn.transaction():
        pipeline, stage = await _load_stage(conn, call)
        before = await _pipeline_out(conn, me.org_id, pipeline)
        if body.type is not None and body.type != stage["type"]:
            if stage["deal_count"]:
                raise _in_use(stage, "changing the type of")
            if stage["type"] == "open" and not await _open_stage_left(conn, me.org_id, pipeline["id"], stage["id"]):
                raise Conflict("a pipeline keeps at least one open stage", {"stage_id": str(stage["id"])},
                               code="last_open_stage")
        try:
            await conn.execute(
                "UPDATE pipeline_stages SET name = coalesce($4, name), probability = coalesce($5, probability), "
                "type = coalesce($6, type), updated_at = now() WHERE org_id = $1 AND pipeline_id = $2 AND id = $3",
                me.org_id, pipeline["id"], stage["id"], body.name, body.probability, body.type)
        except asyncpg.UniqueViolationError:
            raise Conflict("the pipeline has a stage with this name", {"name": body.name},
                           code="duplicate_name") from None
        if body.name is not None and body.name != stage["name"]:
            # the deals show the stage's name: their representation (and ETag) change
            await conn.execute("UPDATE deals SET stage = $3, updated_at = now() WHERE org_id = $1 AND stage_id = $2",
                               me.org_id, stage["id"], body.name)
        if body.position is not None:
            await _reorder(conn, me.org_id, pipeline["id"], stage["id"], body.position)
        row = await conn.fetchrow("UPDATE pipelines SET updated_at = now() WHERE org_id = $1 AND id = $2 RETURNING *",
                                  me.org_id, pipeline["id"])
        out = await _pipeline_out(conn, me.org_id, row)
        await changes.record(conn, action="pipeline.stage_update", resource_type="pipeline",
                             resource_id=str(out.id), before=before.model_dump(mode="json"),
                             after=out.model_dump(mode="json"))
    return Reply(out)


async def delete_stage(call: Call) -> Reply:
    require(call.me, "pipelines:manage")
    me = call.me
    changes = ChangeSet(me.org_id, me.user_id)
    async with call.pool.acquire() as conn, conn.transaction():
        pipeline, stage = await _load_stage(conn, call)
        if stage["deal_count"]:
            raise _in_use(stage, "deleting")
        if stage["type"] == "open" and not await _open_stage_left(conn, me.org_id, pipeline["id"], stage["id"]):
            raise Conflict("a pipeline keeps at least one open stage", {"stage_id": str(stage["id"])},
                           code="last_open_stage")
        before = await _pipeline_out(conn, me.org_id, pipeline)
        await conn.execute("DELETE FROM pipeline_stages WHERE org_id = $1 AND pipeline_id = $2 AND id = $3",
                           me.org_id, pipeline["id"], stage["id"])
        await conn.execute("UPDATE pipeline_stages s SET position = o.position - 1 FROM "
                           "(SELECT id, row_number() OVER (ORDER BY position) AS position FROM pipeline_stages "
                           " WHERE org_id = $1 AND pipeline_id = $2) o WHERE s.org_id = $1 AND s.id = o.id",
                           me.org_id, pipeline["id"])
        row = await conn.fetchrow("UPDATE pipelines SET updated_at = now() WHERE org_id = $1 AND id = $2 RETURNING *",
                                  me.org_id, pipeline["id"])
        out = await _pipeline_out(conn, me.org_id, row)
        await changes.record(conn, action="pipeline.stage_delete", resource_type="pipeline",
                             resource_id=str(out.id), before=before.model_dump(mode="json"),
                             after=out.model_dump(mode="json"))
    return Reply(out)


ENDPOINTS = (
    Endpoint("GET", "/api/v1/pipelines", list_pipelines, "List pipelines with their stages", "pipelines",
             response=Pipeline, paginated=True, query=PIPELINES.query_params()),
    Endpoint("POST", "/api/v1/pipelines", create_pipeline, "Create a pipeline (admin)", "pipelines",
             body=PipelineCreate, response=Pipeline, status=201, errors=(400, 401, 403, 409, 413, 422)),
    Endpoint("GET", "/api/v1/pipelines/{id}", get_pipeline, "Get a pipeline with its stages", "pipelines",
             response=Pipeline),
    Endpoint("PATCH", "/api/v1/pipelines/{id}", update_pipeline, "Rename a pipeline or make it the default (admin)",
             "pipelines", body=PipelineUpdate, response=Pipeline, errors=(400, 401, 403, 404, 409, 413, 422)),
    Endpoint("POST", "/api/v1/pipelines/{id}/stages", add_stage, "Add a stage (admin)", "pipelines",
             body=StageCreate, response=Pipeline, status=201, errors=(400, 401, 403, 404, 409, 413, 422)),
    Endpoint("PATCH", "/api/v1/pipelines/{id}/stages/{stage_id}", update_stage,
             "Rename, reorder, re-weight or retype a stage (admin)", "pipelines", body=StageUpdate,
             response=Pipeline, errors=(400, 401, 403, 404, 409, 413, 422),
             description="A stage with deals in it keeps its type (409 stage_in_use): move the deals first."),
    Endpoint("DELETE", "/api/v1/pipelines/{id}/stages/{stage_id}", delete_stage,
             "Delete a stage without deals (admin)", "pipelines", response=Pipeline,
             errors=(401, 403, 404, 409),
             description="409 stage_in_use while deals are in the stage; 409 last_open_stage for the last open one."),
)
