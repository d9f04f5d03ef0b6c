"""Lists as CSV: RFC 4180 text streamed page by page, safe to open in a spreadsheet.

The list's handler plans its rows exactly as for JSON (filters, reach, sort); what it
hands over is an async iterator of pages (``CsvExport``), read one keyset page at a time
with a pooled connection held only while each page is fetched, so a slow download pins
no connection and no more than a page sits in memory. The first page is read before the
response starts, so a bad filter or an unavailable database is still an ordinary error
reply; a failure after that cuts the connection (the chunked body never ends cleanly,
so the client cannot take a short file for a whole one).
"""

from __future__ import annotations

import csv
import io
import json
import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

from aiohttp import web

log = logging.getLogger(__name__)

# Spreadsheets run a cell starting with one of these as a formula (CSV injection): such text
# is written with a leading apostrophe, which they read as "this is text".
_FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")
CAP_HEADER = "X-Export-Row-Cap"
CONTENT_TYPE = "text/csv; charset=utf-8; header=present"


@dataclass(slots=True)
class CsvExport:
    """A list to answer as CSV: pages of JSON-ready items, at most ``cap`` rows in all."""

    pages: AsyncIterator[list[dict[str, Any]]]
    cap: int


def cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return str(value)  # a number, negative or not, is no formula
    text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False, separators=(",", ":"))
    return "'" + text if text.startswith(_FORMULA_STARTS) else text


def _lines(columns: tuple[str, ...], items: list[dict[str, Any]], header: bool = False) -> bytes:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")  # minimal quoting: , " CR LF
    if header:
        writer.writerow(columns)
    writer.writerows([cell(item.get(name)) for name in columns] for item in items)
    return out.getvalue().encode()


async def stream_csv(request: web.Request, export: CsvExport, columns: tuple[str, ...], *,
                     filename: str, headers: dict[str, str]) -> web.StreamResponse:
    pages = aiter(export.pages)
    first = await anext(pages, [])  # errors here are ordinary replies
    response = web.StreamResponse(headers={
        **headers, "Content-Type": CONTENT_TYPE, CAP_HEADER: str(export.cap),
        "Content-Disposition": f'attachment; filename="{filename}.csv"'})
    await response.prepare(request)
    try:
        await response.write(_lines(columns, first, header=True))
        async for page in pages:
            await response.write(_lines(columns, page))
    except Exception as exc:  # noqa: BLE001 - the status is sent: all that is left is to cut the body
        if not isinstance(exc, ConnectionError):
            log.warning("%s %s: CSV export cut short: %s: %s", request.method, request.path,
                        type(exc).__name__, exc)
        if request.transport is not None:
            request.transport.close()
        return response
    await response.write_eof()
    return response


def csv_columns(fields: tuple[str, ...] | None, all_fields: tuple[str, ...]) -> tuple[str, ...]:
    return fields if fields is not None else all_fields
