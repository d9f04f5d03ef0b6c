"""/api/v1/calls/{id}/comments: remarks pinned to a moment of a call (a manager's coaching to the rep).

Reach is the call's: whoever may see the call (the rep on it, their team's manager, the
organization's admins) reads its comments and may add one; only a comment's author may
delete it. Adding and deleting are audited (the audit row names the call and the moment,
not the text).
"""

from __future__ import annotations

from typing import Any

from crm_core.api.endpoint import Endpoint
from crm_core.api.listing import Collection, SortKey, SqlParams, fetch_page
from crm_core.api.records import load_visible, parse_uuid
from crm_core.api.reply import Call, Reply
from crm_core.api.schemas.call_comments import CallComment, CallCommentCreate
from crm_core.api_errors import Forbidden, NotFound
from crm_core.changes import ChangeSet

COMMENTS = Collection(
    filters=(),
    sorts=(
        SortKey("at_ms", "m.at_ms", "integer"),
        SortKey("created_at", "m.created_at", "timestamptz"),
    ),
    default_sort="at_ms",
)


def _out(row: Any) -> CallComment:
    return CallComment.model_validate(dict(row))


def _audited(row: Any) -> dict[str, Any]:
    return {
        "call_id": str(row["call_id"]),
        "at_ms": row["at_ms"],
        "segment_key": row["segment_key"],
    }


async def list_comments(call: Call) -> Reply:
    async with call.pool.acquire() as conn:
        row = await load_visible(
            conn,
            call.me,
            table="calls",
            record_id=call.path_id(),
            owner_column="rep_id",
            what="call",
        )
    params = SqlParams()
    base = [f"m.call_id = {params.add(row['id'])}", f"m.org_id = {params.add(call.me.org_id)}"]
    return Reply(
        await fetch_page(
            call,
            COMMENTS,
            params,
            base,
            table="call_comments",
            alias="m",
            to_item=lambda r: _out(r).model_dump(mode="json"),
        )
    )


async def create_comment(call: Call) -> Reply:
    body: CallCommentCreate = call.body
    me = call.me
    changes = ChangeSet(me.org_id, me.user_id)
    async with call.pool.acquire() as conn, conn.transaction():
        target = await load_visible(
            conn, me, table="calls", record_id=call.path_id(), owner_column="rep_id", what="call"
        )
        row = await conn.fetchrow(
            """
            INSERT INTO call_comments (org_id, call_id, author_id, at_ms, segment_key, body)
            VALUES ($1, $2, $3, $4, $5, $6) RETURNING *
            """,
            me.org_id,
            target["id"],
            me.user_id,
            body.at_ms,
            body.segment_key,
            body.body,
        )
        await changes.record(
            conn,
            action="call_comment.create",
            resource_type="call_comment",
            resource_id=str(row["id"]),
            after=_audited(row),
        )
    return Reply(_out(row), 201)


async def delete_comment(call: Call) -> Reply:
    me = call.me
    changes = ChangeSet(me.org_id, me.user_id)
    comment_id = parse_uuid(call.path_id("comment_id"), "comment")
    async with call.pool.acquire() as conn, conn.transaction():
        target = await load_visible(
            conn, me, table="calls", record_id=call.path_id(), owner_column="rep_id", what="call"
        )
        row = await conn.fetchrow(
            "SELECT * FROM call_comments WHERE id = $1 AND call_id = $2 AND org_id = $3 FOR UPDATE",
            comment_id,
            target["id"],
            me.org_id,
        )
        if row is None:
            raise NotFound("no such comment", {"id": comment_id})
        if row["author_id"] is None or str(row["author_id"]) != me.user_id:
            raise Forbidden("only its author may delete a comment", code="not_author")
        await conn.execute(
            "DELETE FROM call_comments WHERE id = $1 AND org_id = $2", row["id"], me.org_id
        )
        await changes.record(
            conn,
            action="call_comment.delete",
            resource_type="call_comment",
            resource_id=str(row["id"]),
            before=_audited(row),
        )
    return Reply(None, 204)


ENDPOINTS = (
    Endpoint(
        "GET",
        "/api/v1/calls/{id}/comments",
        list_comments,
        "Comments on moments of a call, in call-clock order",
        "calls",
        response=CallComment,
        paginated=True,
        query=COMMENTS.query_params(),
    ),
    Endpoint(
        "POST",
        "/api/v1/calls/{id}/comments",
        create_comment,
        "Comment on a moment of a call (seen by everyone who may see the call)",
        "calls",
        body=CallCommentCreate,
        response=CallComment,
        status=201,
        errors=(400, 401, 403, 404, 409, 413, 422),
    ),
    Endpoint(
        "DELETE",
        "/api/v1/calls/{id}/comments/{comment_id}",
        delete_comment,
        "Delete a comment (its author only)",
        "calls",
        status=204,
        errors=(401, 403, 404),
    ),
)
