"""``Idempotency-Key`` on POST: the first response is stored and replayed for retries.

Keys are scoped to the user. A retry with the same key but a different
request is refused (422); a retry while the first is still running gets 409.
Server errors are not stored, so the client may retry them.

A "shown once" secret (an API token, a webhook signing secret: fields marked ``SHOWN_ONCE``
in the response model) is never stored: the stored response has it replaced by ``null``, and
a replay says so with ``Secret-Redacted: <field>``. The replay still names the created
resource (its ``id``), so a client whose first answer was lost can revoke or rotate it.
"""

from __future__ import annotations

import hashlib
import json

from aiohttp import web
from pydantic import BaseModel

from crm_core.api.reply import RAW_BODY_KEY, Call, Handler, Reply, render
from crm_core.api.schemas.common import SHOWN_ONCE
from crm_core.api_errors import ApiError, BadRequest, Conflict, Unprocessable

MAX_KEY_LENGTH = 255
REPLAY_HEADER = "Idempotent-Replayed"
REDACTED_HEADER = "Secret-Redacted"


def shown_once_fields(model: type[BaseModel] | None) -> tuple[str, ...]:
    """The response model's fields that carry a secret shown once."""
    if model is None:
        return ()
    return tuple(name for name, info in model.model_fields.items()
                 if isinstance(info.json_schema_extra, dict)
                 and all(info.json_schema_extra.get(k) == v for k, v in SHOWN_ONCE.items()))


def _request_hash(call: Call) -> str:
    raw = call.request.get(RAW_BODY_KEY, b"")
    digest = hashlib.sha256()
    digest.update(call.request.method.encode() + b" " + call.request.path_qs.encode() + b"\n")
    digest.update(raw)
    return digest.hexdigest()


async def run_idempotent(call: Call, key: str, handler: Handler,
                         shown_once: tuple[str, ...] = ()) -> web.Response:
    if not key or len(key) > MAX_KEY_LENGTH:
        raise BadRequest(f"Idempotency-Key must have 1 to {MAX_KEY_LENGTH} characters",
                         code="invalid_idempotency_key")
    me = call.me
    request_hash = _request_hash(call)
    async with call.pool.acquire() as conn:
        claimed = await conn.fetchval(
            """
            INSERT INTO idempotency_keys (org_id, user_id, key, method, path, request_hash)
            VALUES ($1, $2, $3, $4, $5, $6)
            ON CONFLICT (org_id, user_id, key) DO NOTHING
            RETURNING true
            """,
            me.org_id, me.user_id, key, call.request.method, call.request.path, request_hash,
        )
        if not claimed:
            first = await conn.fetchrow(
                "SELECT * FROM idempotency_keys WHERE org_id = $1 AND user_id = $2 AND key = $3",
                me.org_id, me.user_id, key,
            )
    if not claimed:
        if first is None:  # expired between the two statements: treat as new
            return render(await handler(call))
        if first["request_hash"] != request_hash:
            raise Unprocessable("this Idempotency-Key was used for a different request",
                                code="idempotency_key_reused")
        if first["status_code"] is None:
            raise Conflict("the first request with this Idempotency-Key is still being processed",
                           code="idempotency_in_progress")
        stored = first["response"]
        body = None if stored is None else json.loads(stored)
        headers = {REPLAY_HEADER: "true"}
        redacted = [name for name in shown_once if isinstance(body, dict) and name in body]
        if redacted:
            headers[REDACTED_HEADER] = ", ".join(redacted)
        return render(Reply(body, status=first["status_code"], headers=headers))

    try:
        reply = await handler(call)
        status, body = reply.status, _redacted(reply, shown_once)
    except ApiError as exc:
        status, body = exc.status, exc.body()
        await _store(call, key, status, body)
        raise
    except BaseException:
        async with call.pool.acquire() as conn:
            await conn.execute(
                "DELETE FROM idempotency_keys WHERE org_id = $1 AND user_id = $2 AND key = $3",
                me.org_id, me.user_id, key,
            )
        raise
    await _store(call, key, status, body)
    return render(reply)


def _redacted(reply: Reply, shown_once: tuple[str, ...]) -> object:
    """The reply's body as it may be stored: every shown-once secret replaced by null (the
    endpoint's and any the reply's own model marks)."""
    body = reply.json_body()
    if not isinstance(body, dict):
        return body
    fields = set(shown_once)
    if isinstance(reply.data, BaseModel):
        fields.update(shown_once_fields(type(reply.data)))
    return {name: (None if name in fields else value) for name, value in body.items()}


async def _store(call: Call, key: str, status: int, body: object) -> None:
    me = call.me
    async with call.pool.acquire() as conn:
        await conn.execute(
            """
            UPDATE idempotency_keys SET status_code = $4, response = $5
            WHERE org_id = $1 AND user_id = $2 AND key = $3
            """,
            # JSON text (migration 0011): jsonb refuses U+0000, which error details may echo
            me.org_id, me.user_id, key, status, None if body is None else json.dumps(body),
        )


async def prune_idempotency_keys(pool, *, older_than_s: float = 24 * 3600) -> int:
    """Forget stored first responses older than ``older_than_s`` (keys are for retries, not
    forever), and sign-in sessions that ended more than a day ago."""
    async with pool.acquire() as conn:
        result = await conn.execute(
            "DELETE FROM idempotency_keys WHERE created_at < now() - make_interval(secs => $1)",
            older_than_s,
        )
        await conn.execute(
            "DELETE FROM sessions WHERE parent_id IS NULL AND expires_at < now() - interval '1 day'"
        )
    return int(result.split()[-1])
