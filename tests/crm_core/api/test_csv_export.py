"""Lists as CSV over HTTP: the JSON list's rows (filters, reach, sort), every page, capped, RFC 4180, no formulas."""

import csv
import io
import json

import pytest

from crm_core.api.schemas.leads import Lead

CAP = 1500  # above one export page (1000 rows), so the export must follow its cursor


@pytest.fixture
def world_env() -> dict[str, str]:
    return {"COACHLINE_CSV_EXPORT_MAX_ROWS": str(CAP)}


def _rows(text: str) -> list[list[str]]:
    return list(csv.reader(io.StringIO(text, newline="")))


async def _json_ids(world, person, params: dict[str, str]) -> list[str]:
    ids, cursor = [], None
    while True:
        resp, page = await world.request("GET", "/api/v1/leads", as_=person,
                                         params={**params, "limit": "200", **({"cursor": cursor} if cursor else {})})
        assert resp.status == 200, page
        ids += [row["id"] for row in page["data"]]
        if (cursor := page["next_cursor"]) is None:
            return ids


async def test_an_export_streams_the_json_lists_rows_through_every_page_up_to_the_cap(world):
    org = await world.make_org()
    async with world.pool.acquire() as conn:
        await conn.execute(
            """INSERT INTO leads (org_id, owner_id, first_name, last_name, status, created_at)
               SELECT $1, $2, 'Bulk', 'N' || lpad(i::text, 5, '0'), CASE WHEN i % 10 = 0 THEN 'contacted' ELSE 'new' END,
                      now() - i * interval '1 second'
               FROM generate_series(1, 1800) AS i""", org.id, org.rep.user_id)
    hidden = await world.create_lead(org.outsider_rep, last_name="N00002x")  # not the rep's to see
    query = {"status": "new", "sort": "-last_name"}
    expected = await _json_ids(world, org.rep, query)
    assert len(expected) == 1620 and hidden["id"] not in expected

    resp, body = await world.request("GET", "/api/v1/leads", as_=org.rep, params=query,
                                     headers={"Accept": "text/csv"})
    assert resp.status == 200 and body is None
    assert resp.content_type == "text/csv" and resp.charset == "utf-8"
    assert resp.headers["X-Export-Row-Cap"] == str(CAP) and resp.headers["Vary"] == "Accept"
    assert "Content-Length" not in resp.headers and resp.headers["Transfer-Encoding"] == "chunked"
    assert resp.headers["Content-Disposition"] == 'attachment; filename="leads.csv"'
    raw = await resp.read()
    rows = _rows(raw.decode())
    assert rows[0] == list(Lead.model_fields)
    assert [row[0] for row in rows[1:]] == expected[:CAP]
    assert all(dict(zip(rows[0], row, strict=True))["status"] == "new" for row in rows[1:])

    # from a cursor on: the rest of the JSON list
    resp, page = await world.request("GET", "/api/v1/leads", as_=org.rep, params={**query, "limit": "200"})
    resp = await world.client.get("/api/v1/leads", headers=org.rep.auth,
                                  params={**query, "format": "csv", "cursor": page["next_cursor"]})
    assert [row[0] for row in _rows(await resp.text())[1:]] == expected[200:200 + CAP]


async def test_cells_are_rfc_4180_and_never_formulas(world):
    org = await world.make_org()
    lead = await world.create_lead(org.rep, email="ada@example.com")
    hostile = {"first_name": "=1+2", "last_name": "+SUM(A1)", "title": "-2+3", "industry": "@cmd",
               "source": "\tx", "territory": "\rx", "company": 'Acme, "Big"\r\nCorp'}
    async with world.pool.acquire() as conn:
        await conn.execute("""UPDATE leads SET first_name = $2, last_name = $3, title = $4, industry = $5,
                              source = $6, territory = $7, company = $8 WHERE id = $1""",
                           lead["id"], *hostile.values())
    columns = ["first_name", "last_name", "title", "industry", "source", "territory", "company",
               "score_reasons", "ai_score", "phone"]
    resp = await world.client.get("/api/v1/leads", headers=org.rep.auth,
                                  params={"format": "csv", "fields": ",".join(columns)})
    assert resp.status == 200 and resp.content_type == "text/csv"
    raw = (await resp.read()).decode()
    assert raw.endswith("\r\n") and '"Acme, ""Big""\r\nCorp"' in raw
    header, row = _rows(raw)
    assert header == ["id", *[name for name in Lead.model_fields if name in columns]]
    got = dict(zip(header, row, strict=True))
    assert got["id"] == lead["id"]
    for name, value in hostile.items():
        assert got[name] == (value if name == "company" else "'" + value), name
    assert json.loads(got["score_reasons"]) == lead["score_reasons"]
    assert float(got["ai_score"]) == lead["ai_score"] and got["phone"] == ""


async def test_format_and_accept_choose_json_or_csv_and_bad_requests_stay_json_errors(world):
    org = await world.make_org()
    await world.create_lead(org.rep)
    for headers, params, media in (
        ({"Accept": "text/csv"}, {"format": "json"}, "application/json"),
        ({"Accept": "application/json, text/csv"}, {}, "application/json"),
        ({"Accept": "*/*"}, {}, "application/json"),
        ({"Accept": "text/csv;q=0.9, application/json;q=0.5"}, {}, "text/csv"),
        ({"Accept": "text/csv, */*"}, {}, "text/csv"),
        ({}, {"format": "csv"}, "text/csv"),
    ):
        resp, _ = await world.request("GET", "/api/v1/deals", as_=org.rep, headers=headers, params=params)
        assert resp.status == 200 and resp.content_type == media, (headers, params)

    resp, err = await world.request("GET", "/api/v1/leads", as_=org.rep, params={"format": "xml"})
    assert resp.status == 422 and err["error"]["code"] == "invalid_format"
    resp, err = await world.request("GET", "/api/v1/leads", as_=org.rep, params={"format": "csv", "colour": "red"})
    assert resp.status == 400 and err["error"]["code"] == "invalid_filter"
    resp, err = await world.request("GET", "/api/v1/leads", as_=org.rep, params={"format": "csv", "fields": "pw"})
    assert resp.status == 422 and err["error"]["code"] == "invalid_fields"

    # every list, also one a handler answers whole and one whose rows are completed per page
    resp, hook = await world.request("POST", "/api/v1/webhooks", as_=org.admin,
                                     json={"url": "https://hooks.example.com/x"})
    assert resp.status == 201, hook
    for path in ("/api/v1/webhooks", f"/api/v1/webhooks/{hook['id']}/deliveries", "/api/v1/activities",
                 "/api/v1/users", "/api/v1/scoring/lead-models"):
        resp, _ = await world.request("GET", path, as_=org.admin, params={"format": "csv"})
        assert resp.status == 200 and resp.content_type == "text/csv", path
        assert _rows(await resp.text())[0][0] in ("id", "version"), path
    resp = await world.client.get("/api/v1/webhooks", headers=org.admin.auth, params={"format": "csv"})
    assert [row[0] for row in _rows(await resp.text())[1:]] == [hook["id"]]
