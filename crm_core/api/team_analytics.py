"""/api/v1/analytics/team: coaching figures per rep and per team over a period, by week, and the calls behind them.

Who sees what (role ∧ token scope ∧ team ∧ tenant):

- an admin: every rep of the organization (``team_id``/``rep_id`` narrow it);
- a manager: themselves and the reps of the teams they manage; another team or
  rep answers 404, as records out of reach do;
- a rep: their own calls only; per-team figures (``group=team``, ``team_id``) are 403;
- an API token needs ``calls:read`` (or ``read``): the figures are made of calls.

The period is ``from``..``to``, whole days in UTC, both included (default: the
last 12 weeks up to today), at most 400 days.
"""

from __future__ import annotations

import base64
import binascii
import re
import uuid
from datetime import UTC, date, datetime, time, timedelta

import asyncpg

from crm_core.api.endpoint import Endpoint, QueryParam
from crm_core.api.reply import Call, Reply
from crm_core.api.schemas.team_analytics import CallsBehind, TeamAnalytics, TeamTrends
from crm_core.api_errors import BadRequest, Forbidden, NotFound
from crm_core.auth.principal import Principal
from crm_core.calls import team_analytics as sql
from crm_core.calls.team_analytics import DRILL_DOWN, Reach

DEFAULT_DAYS = 12 * 7
MAX_DAYS = 400
DEFAULT_LIMIT, MAX_LIMIT = 50, 200
_DATE_RE = re.compile(r"^\d{4}-\d{2}-\d{2}$")
_UUID_RE = re.compile(
    r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$"
)


def _param(call: Call, name: str) -> str | None:
    values = call.request.query.getall(name, [])
    if len(values) > 1:
        raise BadRequest(f"give {name} once", {"parameter": name}, code="invalid_query")
    if values and "\x00" in values[0]:
        raise BadRequest(
            f"{name}: NUL characters are not allowed", {"parameter": name}, code="invalid_query"
        )
    return values[0] if values else None


def _check_known(call: Call, allowed: tuple[str, ...]) -> None:
    unknown = sorted(set(call.request.query.keys()) - set(allowed))
    if unknown:
        raise BadRequest(
            f"unknown query parameter {unknown[0]!r}",
            {"parameter": unknown[0], "allowed": list(allowed)},
            code="invalid_query",
        )


def _day(call: Call, name: str) -> date | None:
    raw = _param(call, name)
    if raw is None:
        return None
    try:
        if not _DATE_RE.fullmatch(raw):
            raise ValueError("give a date as YYYY-MM-DD")
        return date.fromisoformat(raw)
    except ValueError as exc:
        raise BadRequest(
            f"{name}: {exc}", {"parameter": name, "value": raw}, code="invalid_period"
        ) from None


def period(call: Call) -> tuple[date, date]:
    """The query's ``from``..``to`` (both included), checked: ordered and at most MAX_DAYS long."""
    end = _day(call, "to") or datetime.now(UTC).date()
    start = _day(call, "from") or end - timedelta(days=DEFAULT_DAYS - 1)
    if start > end:
        raise BadRequest(
            "from is after to",
            {"from": start.isoformat(), "to": end.isoformat()},
            code="invalid_period",
        )
    if (end - start).days + 1 > MAX_DAYS:
        raise BadRequest(
            f"the period is longer than {MAX_DAYS} days",
            {"from": start.isoformat(), "to": end.isoformat(), "max_days": MAX_DAYS},
            code="invalid_period",
        )
    return start, end


def _uuid(call: Call, name: str) -> str | None:
    raw = _param(call, name)
    if raw is None:
        return None
    if not _UUID_RE.fullmatch(raw):
        raise BadRequest(
            f"{name}: give a UUID as 8-4-4-4-12 hex digits",
            {"parameter": name, "value": raw},
            code="invalid_query",
        )
    return str(uuid.UUID(raw))


async def _reps(
    conn: asyncpg.Connection, me: Principal, *, team_id: str | None, rep_id: str | None
) -> tuple[str, ...] | None:
    """The reps whose calls the caller may count, narrowed by ``team_id``/``rep_id``; None: the whole org."""
    if me.role == "rep":
        if team_id is not None:
            raise Forbidden("team figures are for managers and admins", code="forbidden")
        if rep_id is not None and rep_id != me.user_id:
            raise NotFound("no such rep", {"rep_id": rep_id})
        return (me.user_id,)
    if team_id is not None:
        if me.role == "manager" and team_id not in me.team_ids:
            raise NotFound("no such team", {"team_id": team_id})
        if (
            await conn.fetchval(
                "SELECT 1 FROM teams WHERE id = $1 AND org_id = $2", team_id, me.org_id
            )
            is None
        ):
            raise NotFound("no such team", {"team_id": team_id})
    if me.role == "admin" and team_id is None:
        reach: tuple[str, ...] | None = None
    else:
        teams = [team_id] if team_id is not None else list(me.team_ids)
        rows = await conn.fetch(
            "SELECT id::text FROM users WHERE org_id = $1 AND team_id = ANY($2::uuid[]) ORDER BY id",
            me.org_id,
            teams,
        )
        reach = tuple(r["id"] for r in rows)
        if team_id is None:  # a manager counts their own calls too
            reach = tuple(sorted({*reach, me.user_id}))
    if rep_id is None:
        return reach
    known = await conn.fetchval(
        "SELECT 1 FROM users WHERE id = $1 AND org_id = $2", rep_id, me.org_id
    )
    if known is None or (reach is not None and rep_id not in reach):
        raise NotFound("no such rep", {"rep_id": rep_id})
    return (rep_id,)


async def _reach(call: Call, conn: asyncpg.Connection) -> tuple[Reach, date, date]:
    start, end = period(call)
    reps = await _reps(conn, call.me, team_id=_uuid(call, "team_id"), rep_id=_uuid(call, "rep_id"))
    since = datetime.combine(start, time(), UTC)
    until = datetime.combine(end + timedelta(days=1), time(), UTC)
    return Reach(call.me.org_id, since, until, reps), start, end


_SCOPE_PARAMS = ("from", "to", "team_id", "rep_id")


async def team_figures(call: Call) -> Reply:
    _check_known(call, (*_SCOPE_PARAMS, "group"))
    group = _param(call, "group") or "rep"
    if group not in ("rep", "team"):
        raise BadRequest(
            "group: rep or team", {"parameter": "group", "value": group}, code="invalid_query"
        )
    if group == "team" and call.me.role == "rep":
        raise Forbidden("team figures are for managers and admins", code="forbidden")
    async with call.pool.acquire() as conn:
        reach, start, end = await _reach(call, conn)
        rows = await (sql.figures_by_team if group == "team" else sql.figures_by_rep)(conn, reach)
        total = await sql.figures_total(conn, reach)
        competitors = await sql.heard(conn, reach, "competitors")
        objections = await sql.heard(conn, reach, "objections")
    return Reply(
        TeamAnalytics(
            start=start,
            end=end,
            group=group,
            total=dict(total),
            data=[dict(r) for r in rows],
            competitors=[dict(r) for r in competitors],
            objections=[dict(r) for r in objections],
        )
    )


async def team_trends(call: Call) -> Reply:
    _check_known(call, _SCOPE_PARAMS)
    async with call.pool.acquire() as conn:
        reach, start, end = await _reach(call, conn)
        rows = await sql.weekly(conn, reach)
    return Reply(TeamTrends(start=start, end=end, data=[dict(r) for r in rows]))


def _encode_cursor(started_at: datetime, call_id: str) -> str:
    return (
        base64.urlsafe_b64encode(f"{started_at.isoformat()}|{call_id}".encode())
        .decode()
        .rstrip("=")
    )


def _decode_cursor(raw: str) -> tuple[datetime, str]:
    try:
        text = base64.urlsafe_b64decode(raw + "=" * (-len(raw) % 4)).decode()
        at, call_id = text.split("|")
        value = datetime.fromisoformat(at)
        if value.tzinfo is None or not _UUID_RE.fullmatch(call_id):
            raise ValueError
        return value, call_id
    except (ValueError, binascii.Error, UnicodeDecodeError):
        raise BadRequest(
            "cursor: not a cursor this list gave", {"parameter": "cursor"}, code="invalid_cursor"
        ) from None


async def calls_behind(call: Call) -> Reply:
    _check_known(call, (*_SCOPE_PARAMS, "metric", "competitor", "objection", "limit", "cursor"))
    metric = _param(call, "metric") or "calls"
    if metric not in DRILL_DOWN:
        raise BadRequest(
            f"metric: one of {', '.join(DRILL_DOWN)}",
            {"parameter": "metric", "value": metric},
            code="invalid_query",
        )
    raw_limit = _param(call, "limit")
    try:
        limit = DEFAULT_LIMIT if raw_limit is None else int(raw_limit)
        if not 1 <= limit <= MAX_LIMIT:
            raise ValueError
    except ValueError:
        raise BadRequest(
            f"limit: an integer from 1 to {MAX_LIMIT}", {"parameter": "limit"}, code="invalid_query"
        ) from None
    cursor = _param(call, "cursor")
    after = _decode_cursor(cursor) if cursor else None
    competitor, objection = _param(call, "competitor"), _param(call, "objection")
    for name, value in (("competitor", competitor), ("objection", objection)):
        if value is not None and not 0 < len(value) <= 200:
            raise BadRequest(
                f"{name}: 1 to 200 characters", {"parameter": name}, code="invalid_query"
            )
    async with call.pool.acquire() as conn:
        reach, _, _ = await _reach(call, conn)
        rows = await sql.calls_behind(
            conn,
            reach,
            metric=metric,
            competitor=competitor,
            objection=objection,
            limit=limit + 1,
            after=after,
        )
    more = len(rows) > limit
    rows = rows[:limit]
    next_cursor = _encode_cursor(rows[-1]["started_at"], rows[-1]["id"]) if more else None
    return Reply(CallsBehind(data=[dict(r) for r in rows], next_cursor=next_cursor))


def _q(name: str, schema: dict, description: str) -> QueryParam:
    return QueryParam(name, schema, description)


_SCOPE_QUERY = (
    _q(
        "from",
        {"type": "string", "format": "date"},
        "The period's first day (UTC); default: 12 weeks before to.",
    ),
    _q(
        "to",
        {"type": "string", "format": "date"},
        "The period's last day (UTC), included; default: today.",
    ),
    _q(
        "team_id",
        {"type": "string", "format": "uuid"},
        "Only this team's reps (managers: a team they manage).",
    ),
    _q("rep_id", {"type": "string", "format": "uuid"}, "Only this rep."),
)
_ERRORS = (400, 401, 403, 404)

ENDPOINTS = (
    Endpoint(
        "GET",
        "/api/v1/analytics/team",
        team_figures,
        "Coaching figures per rep or team over a period",
        "analytics",
        response=TeamAnalytics,
        resource="calls",
        errors=_ERRORS,
        query=(
            *_SCOPE_QUERY,
            _q(
                "group",
                {"type": "string", "enum": ["rep", "team"], "default": "rep"},
                "One row per rep, or per team (managers and admins).",
            ),
        ),
    ),
    Endpoint(
        "GET",
        "/api/v1/analytics/team/trends",
        team_trends,
        "Coaching figures per week",
        "analytics",
        response=TeamTrends,
        resource="calls",
        errors=_ERRORS,
        query=_SCOPE_QUERY,
    ),
    Endpoint(
        "GET",
        "/api/v1/analytics/team/calls",
        calls_behind,
        "The calls behind a figure",
        "analytics",
        response=CallsBehind,
        resource="calls",
        errors=_ERRORS,
        query=(
            *_SCOPE_QUERY,
            _q(
                "metric",
                {"type": "string", "enum": list(DRILL_DOWN), "default": "calls"},
                "The figure whose calls to list.",
            ),
            _q(
                "competitor",
                {"type": "string", "maxLength": 200},
                "Only calls that heard this competitor.",
            ),
            _q(
                "objection",
                {"type": "string", "maxLength": 200},
                "Only calls that heard this objection category.",
            ),
            _q(
                "limit",
                {"type": "integer", "minimum": 1, "maximum": MAX_LIMIT, "default": DEFAULT_LIMIT},
                "Calls per page.",
            ),
            _q("cursor", {"type": "string"}, "next_cursor of the previous page."),
        ),
    ),
)
