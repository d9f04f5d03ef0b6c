"""List endpoints: documented filters, sort, and stable cursor (keyset) pagination.

Filter syntax, the same on every collection:

* ``?field=value`` — equals; ``?field=a,b`` — any of (for fields marked *many*);
* ``?created_after=…`` / ``?created_before=…`` (and ``updated_…``): ISO 8601 times;
* ``?sort=field`` ascending, ``?sort=-field`` descending (default ``-created_at``);
* ``?limit=1..200`` (default 50) and ``?cursor=`` from the previous page's ``next_cursor``.

Pages are cut on (sort value, id), so rows inserted or deleted between two
page requests never make a row appear twice or be skipped.
"""

from __future__ import annotations

import base64
import json
import math
import re
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

from multidict import MultiMapping

from crm_core.api.csv_export import CsvExport
from crm_core.api.endpoint import QueryParam
from crm_core.api.reply import Call
from crm_core.api.representation import SHAPING_PARAMS
from crm_core.api.search_terms import parse_q
from crm_core.api_errors import BadRequest
from crm_core.json_input import parse_json

FLOAT32_MAX = 3.4e38
_UUID_RE = re.compile(r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}")
FilterKind = Literal["text", "uuid", "datetime", "int", "number", "bool", "enum"]


class SqlParams:
    """Positional parameters for one statement: ``add(value)`` returns its ``$n``."""

    def __init__(self, *initial: Any) -> None:
        self.values: list[Any] = list(initial)

    def add(self, value: Any) -> str:
        self.values.append(value)
        return f"${len(self.values)}"


@dataclass(frozen=True, slots=True)
class Filter:
    name: str
    kind: FilterKind
    # SQL with "{}" where the parameter goes, e.g. "t.status = ANY({})" for many.
    sql: str
    description: str
    many: bool = False
    choices: tuple[str, ...] = ()

    def bind(self, params: SqlParams, raw: str) -> str:
        """The filter's WHERE fragment with its value bound in ``params``."""
        value = self.parse(raw)
        if self.many and len(value) == 1 and "= ANY({})" in self.sql:
            # One value: plain equality. PostgreSQL 16 reads an index such as leads
            # (org_id, status, created_at) in order for "status = $1" but not for
            # "status = ANY($1)", so the filtered, sorted page would scan and discard
            # every newer row of other statuses (scripts/bench/api.py: 4.6 -> 0.4 ms at 100k leads).
            return self.sql.replace("= ANY({})", "= {}").format(params.add(value[0]))
        return self.sql.format(params.add(value))

    def parse(self, raw: str) -> Any:
        values = [v.strip() for v in raw.split(",")] if self.many else [raw]
        parsed = [self._one(v) for v in values]
        return parsed if self.many else parsed[0]

    def _one(self, raw: str) -> Any:
        if "\x00" in raw:
            raise BadRequest(f"filter {self.name}: NUL characters are not allowed",
                             {"filter": self.name}, code="invalid_filter")
        try:
            if self.kind == "uuid":
                if not _UUID_RE.fullmatch(raw):  # the document's form; uuid.UUID takes more
                    raise ValueError("give a UUID as 8-4-4-4-12 hex digits")
                return str(uuid.UUID(raw))
            if self.kind == "datetime":
                value = datetime.fromisoformat(raw.replace("Z", "+00:00"))
                if value.tzinfo is None:
                    raise ValueError("give a time zone (e.g. Z)")
                return value
            if self.kind == "int":
                value = int(raw)
                if not -(2**31) <= value < 2**31:  # an integer column's range, not a 500 from the driver
                    raise ValueError("out of range")
                return value
            if self.kind == "number":
                number = float(raw)
                if not math.isfinite(number):
                    raise ValueError("give a finite number")
                # A bound past float32 (real columns, e.g. ai_score) cannot be sent as one; clamped,
                # it selects the same rows.
                return max(-FLOAT32_MAX, min(FLOAT32_MAX, number))
            if self.kind == "bool":
                if raw not in ("true", "false"):
                    raise ValueError("true or false")
                return raw == "true"
        except ValueError as exc:
            raise BadRequest(f"filter {self.name}: {exc}", {"filter": self.name, "value": raw},
                             code="invalid_filter") from None
        if self.kind == "enum" and raw not in self.choices:
            raise BadRequest(f"filter {self.name}: one of {', '.join(self.choices)}",
                             {"filter": self.name, "value": raw}, code="invalid_filter")
        return raw

    def doc(self) -> QueryParam:
        base: dict[str, Any] = {
            "uuid": {"type": "string", "format": "uuid"},
            "datetime": {"type": "string", "format": "date-time"},
            "int": {"type": "integer"},
            "number": {"type": "number"},
            "bool": {"type": "boolean"},
            "text": {"type": "string"},
            "enum": {"type": "string", "enum": list(self.choices)},
        }[self.kind]
        description = self.description + (" Comma-separated values match any of them." if self.many else "")
        schema = {"type": "string", "description": "comma-separated"} if self.many else base
        one = {"uuid": _UUID_RE.pattern, "enum": "(?:" + "|".join(map(re.escape, self.choices)) + ")"}.get(self.kind)
        if self.many and one is not None:
            # what parse() takes: values of the kind, commas between, blanks around them
            schema["pattern"] = rf"^\s*{one}\s*(?:,\s*{one}\s*)*$"
        return QueryParam(self.name, schema, description)


@dataclass(frozen=True, slots=True)
class SortKey:
    name: str
    sql: str  # a non-null expression
    pg_type: str


@dataclass(frozen=True, slots=True)
class Collection:
    """How one table is listed: its filters and sort keys."""

    filters: tuple[Filter, ...]
    sorts: tuple[SortKey, ...]
    default_sort: str = "-created_at"
    # The table's primary key type, the cursor's tie-breaker: "uuid" or "bigint" (a bigserial log).
    id_type: Literal["uuid", "bigint"] = "uuid"
    # ``q=``: (bind, terms, alias) -> Match (crm_core.api.search_terms); None: the list has no q.
    search: Callable[..., Any] | None = None

    def query_params(self) -> tuple[QueryParam, ...]:
        sort_names = [s.name for s in self.sorts] + [f"-{s.name}" for s in self.sorts]
        searched: tuple[QueryParam, ...] = ()
        if self.search is not None:
            sort_names += [RELEVANCE, f"-{RELEVANCE}"]
            searched = (QueryParam("q", {"type": "string", "minLength": 1, "maxLength": 200},
                                   "Search text: every word begins a word of the record (names, company, "
                                   "e-mail); e-mails and phones also match by prefix and last digits. With q "
                                   "the default sort is -relevance."),)
        return tuple(f.doc() for f in self.filters) + searched + (
            QueryParam("sort", {"type": "string", "enum": sort_names, "default": self.default_sort},
                       "Sort field; a leading '-' sorts descending."),
            QueryParam("limit", {"type": "integer", "minimum": 1, "maximum": 200, "default": 50},
                       "Page size."),
            QueryParam("cursor", {"type": "string"}, "The next_cursor of the previous page."),
        )


@dataclass(slots=True)
class Page:
    where: list[str]
    order_by: str
    limit: int
    sort_key: SortKey
    descending: bool
    sort_label: str


def _encode_cursor(sort_label: str, value: str, row_id: str) -> str:
    raw = json.dumps([sort_label, value, row_id], separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _decode_cursor(cursor: str, id_type: str = "uuid") -> tuple[str, str, str]:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        label, value, row_id = parse_json(raw)
        if id_type == "bigint":
            if not (isinstance(row_id, str) and re.fullmatch(r"\d{1,18}", row_id)):
                raise ValueError("not a row id")
        else:
            uuid.UUID(row_id)
        if "\x00" in str(value):
            raise ValueError("NUL in cursor")
        return str(label), str(value), str(row_id)
    except (ValueError, TypeError) as exc:
        raise BadRequest("the cursor is not one this API issued", code="invalid_cursor") from exc


_TIMESTAMP_RE = re.compile(r"^\d{4}-\d{2}-\d{2}[ T]\d{2}:\d{2}:\d{2}(\.\d{1,6})?([+-]\d{2}(:?\d{2})?|Z)?$")
_DATE_RE = re.compile(r"^(\d{4}-\d{2}-\d{2}|infinity)$")


def _cursor_value_ok(value: str, pg_type: str) -> bool:
    """A forged cursor must fail here (400), not as a cast error in PostgreSQL."""
    if pg_type == "timestamptz":
        return bool(_TIMESTAMP_RE.match(value))
    if pg_type == "date":
        return bool(_DATE_RE.match(value))
    if pg_type == "integer":
        return re.fullmatch(r"-?\d{1,10}", value) is not None and abs(int(value)) < 2**31
    if pg_type in ("real", "numeric"):
        return re.fullmatch(r"-?\d{1,20}(\.\d{1,20})?(e[+-]?\d{1,3})?", value) is not None
    return True


_FROM_QUERY: Any = object()
RELEVANCE = "relevance"


def plan_page(
    collection: Collection, query: MultiMapping[str], params: SqlParams, *,
    alias: str, default_limit: int, max_limit: int, cursor: str | None = _FROM_QUERY,
    page_size: int | None = None,
) -> Page:
    """Turn the query string into WHERE fragments, ORDER BY and LIMIT; unknown parameters are 400.

    ``cursor`` and ``page_size`` replace the query's cursor and limit (an export's later pages).
    """
    by_name = {f.name: f for f in collection.filters}
    where: list[str] = []
    rank_key: SortKey | None = None
    if collection.search is not None and "q" in query:
        if len(query.getall("q")) > 1:
            raise BadRequest("give q once", code="invalid_query")
        match = collection.search(params.add, parse_q(query["q"]), alias)
        where.append(match.where)
        rank_key = SortKey(RELEVANCE, match.rank, "real")
    for name in set(query.keys()):
        if name in ("sort", "limit", "cursor") or name in SHAPING_PARAMS or (name == "q" and rank_key):
            continue
        flt = by_name.get(name)
        if flt is None:
            raise BadRequest(f"unknown query parameter {name!r}",
                             {"allowed": sorted(by_name) + ["cursor", "limit", "sort"]},
                             code="invalid_filter")
        values = query.getall(name)
        if len(values) > 1:
            raise BadRequest(f"give {name} once (use commas for several values)", code="invalid_filter")
        where.append(flt.bind(params, values[0]))

    sort_label = query.get("sort", f"-{RELEVANCE}" if rank_key else collection.default_sort)
    descending = sort_label.startswith("-")
    sorts = collection.sorts + ((rank_key,) if rank_key else ())
    sort_key = next((s for s in sorts if s.name == sort_label.lstrip("-")), None)
    if sort_key is None:
        raise BadRequest(f"cannot sort by {sort_label!r}",
                         {"allowed": [s.name for s in sorts]}, code="invalid_sort")

    try:
        limit = int(query.get("limit", default_limit))
    except ValueError:
        raise BadRequest("limit must be an integer", code="invalid_limit") from None
    if not 1 <= limit <= max_limit:
        raise BadRequest(f"limit must be between 1 and {max_limit}", code="invalid_limit")
    if page_size is not None:
        limit = page_size

    if cursor is _FROM_QUERY:
        cursor = query.get("cursor")
    if cursor:
        label, value, row_id = _decode_cursor(cursor, collection.id_type)
        if label != sort_label:
            raise BadRequest("the cursor belongs to a different sort order", code="invalid_cursor")
        if not _cursor_value_ok(value, sort_key.pg_type):
            raise BadRequest("the cursor is not one this API issued", code="invalid_cursor")
        op = "<" if descending else ">"
        where.append(
            f"({sort_key.sql}, {alias}.id) {op} ({params.add(value)}::text::{sort_key.pg_type}, {params.add(row_id)}::text::{collection.id_type})"
        )
    direction = "DESC" if descending else "ASC"
    order_by = f"{sort_key.sql} {direction}, {alias}.id {direction}"
    return Page(where, order_by, limit, sort_key, descending, sort_label)


def select_page_sql(page: Page, *, table: str, alias: str, base_where: list[str],
                    params: SqlParams) -> str:
    conditions = " AND ".join(base_where + page.where) or "true"
    return (
        f"SELECT {alias}.*, ({page.sort_key.sql})::text AS _sort_value FROM {table} {alias} "
        f"WHERE {conditions} ORDER BY {page.order_by} LIMIT {params.add(page.limit + 1)}"
    )


def page_result(page: Page, rows: list[Any], to_item: Callable[[Any], Any]) -> dict[str, Any]:
    more = len(rows) > page.limit
    rows = rows[: page.limit]
    next_cursor = None
    if more and rows:
        last = rows[-1]
        next_cursor = _encode_cursor(page.sort_label, last["_sort_value"], str(last["id"]))
    return {"data": [to_item(r) for r in rows], "next_cursor": next_cursor}


Finish = Callable[[list[dict[str, Any]]], Awaitable[list[dict[str, Any]]]]
# Rows per keyset page of a CSV export: big enough to amortise the query, small enough to hold.
EXPORT_PAGE_ROWS = 1000


async def fetch_page(call: Call, collection: Collection, params: SqlParams, base_where: list[str], *,
                     table: str, alias: str, to_item: Callable[[Any], Any],
                     finish: Finish | None = None,
                     query: MultiMapping[str] | None = None) -> dict[str, Any] | CsvExport:
    """One list request: the query string planned into SQL, the page fetched and shaped.

    ``base_where`` holds the request's reach (organization, ownership), already bound in ``params``.
    ``finish`` completes a page's items at once (e.g. one query for all their sub-rows).
    ``query`` is the query string less the parameters the handler read itself (e.g. a search).
    Asked for CSV, the answer is every page from the query's cursor on, up to the export cap,
    fetched as it is sent (``crm_core.api.csv_export``).
    """
    if call.shape.csv:
        cap = call.context.options.csv_export_max_rows
        return CsvExport(_export_pages(call, collection, list(params.values), base_where, table=table,
                                       alias=alias, to_item=to_item, finish=finish, cap=cap,
                                       query=query), cap)
    options = call.context.options
    page = plan_page(collection, call.request.query if query is None else query, params, alias=alias,
                     default_limit=options.page_size_default, max_limit=options.page_size_max)
    sql = select_page_sql(page, table=table, alias=alias, base_where=base_where, params=params)
    async with call.pool.acquire() as conn:
        rows = await conn.fetch(sql, *params.values)
    result = page_result(page, rows, to_item)
    if finish is not None:
        result["data"] = await finish(result["data"])
    return result


async def _export_pages(call: Call, collection: Collection, base_values: list[Any], base_where: list[str], *,
                        table: str, alias: str, to_item: Callable[[Any], Any], finish: Finish | None,
                        cap: int, query: MultiMapping[str] | None = None) -> AsyncIterator[list[dict[str, Any]]]:
    """The list's pages, following the cursor, until the rows run out or ``cap`` rows are out."""
    options = call.context.options
    query = call.request.query if query is None else query
    cursor: str | None = call.request.query.get("cursor")
    sent = 0
    while sent < cap:
        params = SqlParams(*base_values)
        page = plan_page(collection, query, params, alias=alias,
                         default_limit=options.page_size_default, max_limit=options.page_size_max,
                         cursor=cursor, page_size=min(EXPORT_PAGE_ROWS, cap - sent))
        sql = select_page_sql(page, table=table, alias=alias, base_where=base_where, params=params)
        async with call.pool.acquire() as conn:
            rows = await conn.fetch(sql, *params.values)
        result = page_result(page, rows, to_item)
        items = result["data"] if finish is None else await finish(result["data"])
        sent += len(items)
        yield items
        cursor = result["next_cursor"]
        if cursor is None:
            return
