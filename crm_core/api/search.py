"""GET /api/v1/search?q=: leads and deals at once, grouped by type, ranked.

Each group is what the type's own list answers for the same ``q`` (``/leads?q=``,
``/deals?q=``): the same reach (organisation, ownership, territory) and the same rank, best
first, ``limit`` per group. A group appears only where the caller's token may read that type
(``leads:read``, ``deals:read`` or ``read``); a token that may read none is refused (403). A new
record type joins as one more group (``types=``) with its own ``*Hit`` model.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from crm_core.api.access import visible_clause
from crm_core.api.deals import deal_out
from crm_core.api.endpoint import Endpoint, QueryParam
from crm_core.api.leads import lead_out
from crm_core.api.listing import SqlParams
from crm_core.api.reply import Call, Reply
from crm_core.api.schemas.search import DealHit, LeadHit, SearchResults
from crm_core.api.search_terms import Terms, deal_search, lead_search, parse_q
from crm_core.api_errors import BadRequest, Forbidden
from crm_core.auth.principal import SELF

_GROUPS: dict[str, tuple[str, str, Callable[..., Any], dict[str, Any]]] = {
    # group: (table, territory column, match builder, visible_clause options)
    "leads": (
        "leads",
        "l",
        lead_search,
        {"owner_column": "owner_id", "territory_column": "territory"},
    ),
    "deals": ("deals", "d", deal_search, {"owner_column": "owner_id"}),
}


async def _group(call: Call, name: str, terms: Terms, limit: int) -> list[Any]:
    table, alias, search, reach = _GROUPS[name]
    params = SqlParams()
    where = visible_clause(call.me, params, alias=alias, **reach)
    match = search(params.add, terms, alias)
    sql = (
        f"SELECT {alias}.*, {match.rank} AS _rank FROM {table} {alias} "
        f"WHERE {' AND '.join([*where, match.where])} "
        f"ORDER BY _rank DESC, {alias}.created_at DESC, {alias}.id LIMIT {params.add(limit)}"
    )
    async with call.pool.acquire() as conn:
        rows = await conn.fetch(sql, *params.values)
    if name == "leads":
        return [LeadHit(rank=round(r["_rank"], 6), lead=lead_out(r)) for r in rows]
    return [DealHit(rank=round(r["_rank"], 6), deal=deal_out(r)) for r in rows]


async def search_all(call: Call) -> Reply:
    query = call.request.query
    unknown = set(query) - {"q", "limit", "types", "fields"}
    if unknown:
        raise BadRequest(
            f"unknown query parameter {min(unknown)!r}",
            {"allowed": ["limit", "q", "types"]},
            code="invalid_filter",
        )
    if "q" not in query:
        raise BadRequest("give q, the text to search for", code="invalid_query")
    terms = parse_q(query["q"])
    try:
        limit = int(query.get("limit", "10"))
    except ValueError:
        raise BadRequest("limit must be an integer", code="invalid_limit") from None
    if not 1 <= limit <= 50:
        raise BadRequest("limit must be between 1 and 50", code="invalid_limit")
    wanted = [t.strip() for t in query.get("types", ",".join(_GROUPS)).split(",")]
    if not wanted or any(t not in _GROUPS for t in wanted):
        raise BadRequest(
            f"types: any of {', '.join(_GROUPS)}", {"allowed": list(_GROUPS)}, code="invalid_filter"
        )
    readable = [t for t in _GROUPS if t in wanted and call.me.may("read", t)]
    if not readable:
        raise Forbidden(
            "this API token may read none of the searched types",
            {"scopes": [f"{t}:read" for t in wanted]},
            code="insufficient_scope",
        )
    groups = {name: await _group(call, name, terms, limit) for name in readable}
    return Reply(SearchResults(q=terms.text, **groups))


ENDPOINTS = (
    Endpoint(
        "GET",
        "/api/v1/search",
        search_all,
        "Search leads and deals at once, grouped by type, ranked",
        "search",
        response=SearchResults,
        resource=SELF,
        query=(
            QueryParam(
                "q",
                {"type": "string", "minLength": 1, "maxLength": 200},
                "Search text, as q= on the lists.",
            ),
            QueryParam(
                "types",
                {
                    "type": "string",
                    "description": "comma-separated",
                    "pattern": r"^\s*(?:leads|deals)\s*(?:,\s*(?:leads|deals)\s*)*$",
                },
                "Which groups: leads, deals (default both).",
            ),
            QueryParam(
                "limit",
                {"type": "integer", "minimum": 1, "maximum": 50, "default": 10},
                "Hits per group.",
            ),
        ),
        errors=(400, 401, 403, 422),
    ),
)
