"""What a GET sends back, as the client shaped it: ``fields=`` selection and the list's media type.

* ``fields=a,b`` on a record or a list of records keeps those top-level fields (``id``
  always); an unknown name is a 422 naming it, with the allowed ones.
* ``format=csv`` (or ``Accept: text/csv`` preferred over ``application/json``) on a list
  streams it as CSV (``crm_core.api.csv_export``); ``format=json`` keeps JSON whatever
  ``Accept`` says.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from aiohttp import web
from pydantic import BaseModel

from crm_core.api_errors import Unprocessable

FORMATS = ("json", "csv")
# Query parameters that shape the reply rather than choose the rows: lists' filters skip them.
SHAPING_PARAMS = frozenset({"fields", "format"})


@dataclass(frozen=True, slots=True)
class Shape:
    fields: tuple[str, ...] | None = None  # None: every field
    csv: bool = False


def selectable_fields(model: type[BaseModel]) -> tuple[str, ...]:
    return tuple(model.model_fields) + tuple(model.model_computed_fields)


def takes_fields(method: str, response: type[BaseModel] | None) -> bool:
    """Records (their model has an ``id``) and lists of them take ``fields=``."""
    return method == "GET" and response is not None and "id" in response.model_fields


def takes_format(method: str, paginated: bool) -> bool:
    return method == "GET" and paginated


def fields_pattern(names: tuple[str, ...]) -> str:
    one = "(?:" + "|".join(map(re.escape, names)) + ")"
    return rf"^\s*{one}\s*(?:,\s*{one}\s*)*$"


def _once(request: web.Request, name: str) -> str | None:
    values = request.query.getall(name, [])
    if len(values) > 1:
        raise Unprocessable(f"give {name} once (use commas for several values)",
                            {"parameter": name}, code=f"invalid_{name}")
    return values[0] if values else None


def _read_fields(raw: str, model: type[BaseModel]) -> tuple[str, ...]:
    allowed = selectable_fields(model)
    if not re.fullmatch(fields_pattern(allowed), raw):
        # the same test the document states; then say which name is wrong
        wrong = next((name.strip() for name in raw.split(",") if name.strip() not in allowed), raw)
        message = f"unknown field {wrong!r}" if wrong else "name at least one field, comma-separated"
        raise Unprocessable(message, {"parameter": "fields", "field": wrong, "allowed": list(allowed)},
                            code="invalid_fields")
    wanted = {name.strip() for name in raw.split(",")} | {"id"}
    return tuple(name for name in allowed if name in wanted)  # the document's order


def _prefers_csv(accept: str) -> bool:
    """An explicit text/csv ranked above an explicit application/json (wildcards mean JSON)."""
    quality = {"text/csv": 0.0, "application/json": 0.0}
    for item in accept.split(","):
        media, *params = (part.strip() for part in item.split(";"))
        media = media.lower()
        if media not in quality:
            continue
        q = 1.0
        for param in params:
            key, _, value = param.partition("=")
            if key.strip().lower() == "q":
                try:
                    q = float(value)
                except ValueError:
                    q = 0.0
        quality[media] = max(quality[media], q)
    return quality["text/csv"] > quality["application/json"]


def read_shape(request: web.Request, *, method: str, response: type[BaseModel] | None,
               paginated: bool) -> Shape:
    """The request's ``fields=`` and format, checked before the handler runs."""
    fields = None
    if takes_fields(method, response):
        raw = _once(request, "fields")
        if raw is not None:
            assert response is not None
            fields = _read_fields(raw, response)
    csv = False
    if takes_format(method, paginated):
        fmt = _once(request, "format")
        if fmt is None:
            csv = _prefers_csv(request.headers.get("Accept", ""))
        elif fmt in FORMATS:
            csv = fmt == "csv"
        else:
            raise Unprocessable(f"format must be one of {', '.join(FORMATS)}",
                                {"parameter": "format", "allowed": list(FORMATS)}, code="invalid_format")
    return Shape(fields, csv)


def select(item: dict[str, Any], fields: tuple[str, ...]) -> dict[str, Any]:
    return {name: item[name] for name in fields if name in item}


def query_docs(method: str, response: type[BaseModel] | None, paginated: bool) -> list[dict[str, Any]]:
    """The OpenAPI parameters for what this module reads."""
    docs: list[dict[str, Any]] = []
    if takes_fields(method, response):
        assert response is not None
        names = selectable_fields(response)
        docs.append({"name": "fields", "in": "query", "required": False,
                     "schema": {"type": "string", "pattern": fields_pattern(names)},
                     "description": "Comma-separated top-level fields to return (id is always returned): "
                                    + ", ".join(names) + "."})
    if takes_format(method, paginated):
        docs.append({"name": "format", "in": "query", "required": False,
                     "schema": {"type": "string", "enum": list(FORMATS)},
                     "description": "csv streams every page (up to the export cap) as text/csv, like "
                                    "Accept: text/csv; json answers one page whatever Accept says."})
    return docs


def selection_schema(model_name: str, properties: dict[str, Any]) -> dict[str, Any]:
    """The schema of a record cut down by ``fields=``: its properties, only ``id`` required."""
    return {"type": "object", "title": f"{model_name} (selected fields)",
            "description": f"Some of {model_name}'s fields, as fields= chose them; id is always there.",
            "properties": properties, "required": ["id"] if "id" in properties else []}
