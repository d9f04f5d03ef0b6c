"""The call library: transcript search (ranking, snippets, reach, bad queries), list filters, comments."""

from __future__ import annotations

import uuid

from crm_core.api.call_search import marked_parts, masked_parts, snippet_html
from crm_core.calls.records import NewCall, SegmentRow, add_final_segments, create_call


async def _call(world, org, rep, lines, *, summary=None, duration_s=None):
    """A call of ``rep`` with final segments ``lines`` [(party, start_ms, text)]."""
    async with world.pool.acquire() as conn:
        row = await create_call(conn, NewCall(org.id, "twilio", "inbound", external_id=uuid.uuid4().hex,
                                              rep_id=rep.user_id))
        await add_final_segments(conn, org.id, str(row["id"]), [
            SegmentRow(f"s{i}", party, start, start + 900, text, [])
            for i, (party, start, text) in enumerate(lines)])
        if summary is not None or duration_s is not None:
            await conn.execute("UPDATE calls SET summary = $2, duration_s = $3 WHERE id = $1",
                               row["id"], summary, duration_s)
    return str(row["id"])


async def _search(world, who, **params):
    resp, page = await world.request("GET", "/api/v1/calls", as_=who, params=params)
    assert resp.status == 200, page
    return page


async def test_search_ranks_calls_and_names_the_matching_segments(world):
    org = await world.make_org()
    once = await _call(world, org, org.rep, [("rep", 0, "Hello there"),
                                             ("customer", 4000, "Your pricing seems high")])
    twice = await _call(world, org, org.rep, [("customer", 1000, "Pricing is the problem"),
                                              ("rep", 3000, "Let us talk about the weather"),
                                              ("customer", 9000, "Again, the pricing worries us")])
    await _call(world, org, org.rep, [("customer", 0, "Nothing relevant here")])

    page = await _search(world, org.manager, q="pricing")
    assert [c["id"] for c in page["data"]] == [twice, once]  # two mentions outrank one
    best = page["data"][0]["search"]
    assert best["rank"] > page["data"][1]["search"]["rank"] > 0
    assert best["matched_segments"] == 2
    assert [(m["segment_key"], m["start_ms"]) for m in best["matches"]] == [("s0", 1000), ("s2", 9000)]
    # stemming: "prices"/"priced" are not "pricing", but "worries" finds "worry"
    assert [c["id"] for c in (await _search(world, org.manager, q="worry"))["data"]] == [twice]
    hit = [p for p in best["matches"][0]["snippet"] if p["hit"]]
    assert [p["text"] for p in hit] == ["Pricing"]
    assert best["matches"][0]["snippet_html"] == "<mark>Pricing</mark> is the problem"
    # a phrase matches the words in order only
    assert [c["id"] for c in (await _search(world, org.manager, q='"pricing seems"'))["data"]] == [once]
    # filters and the search combine: the list's own filters still apply
    assert (await _search(world, org.manager, q="pricing", duration_min_s="1"))["data"] == []


async def test_ranked_pages_are_cut_on_rank_and_id(world):
    org = await world.make_org()
    ids = set()
    for n in range(1, 6):
        ids.add(await _call(world, org, org.rep, [("customer", i * 1000, "budget talk") for i in range(n)]))
    for n in range(3):  # equal ranks: the id breaks the tie
        ids.add(await _call(world, org, org.rep, [("customer", 0, "budget talk")]))
    seen, cursor, ranks = [], None, []
    while True:
        params = {"q": "budget", "limit": "3", **({"cursor": cursor} if cursor else {})}
        page = await _search(world, org.manager, **params)
        seen += [c["id"] for c in page["data"]]
        ranks += [(c["search"]["rank"], c["id"]) for c in page["data"]]
        cursor = page["next_cursor"]
        if not cursor:
            break
    assert sorted(seen) == sorted(ids) and len(seen) == len(ids)
    assert ranks == sorted(ranks, reverse=True)
    # another order may be asked for; sort=rank without a search may not
    by_date = await _search(world, org.manager, q="budget", sort="-created_at", limit="200")
    assert len(by_date["data"]) == len(ids)
    resp, err = await world.request("GET", "/api/v1/calls", as_=org.manager, params={"sort": "-rank"})
    assert (resp.status, err["error"]["code"]) == (400, "invalid_sort")
    resp, err = await world.request("GET", "/api/v1/calls", as_=org.manager,
                                    params={"q": "budget", "cursor": page_cursor_of_other_sort(by_date)})
    assert resp.status == 400


def page_cursor_of_other_sort(page):
    return page["next_cursor"] or "eyJ4IjoxfQ"


async def test_snippets_escape_what_was_said(world):
    org = await world.make_org()
    said = 'the <script>alert("x")</script> pricing <mark>plan</mark> & <img src=x onerror=alert(1)>'
    call_id = await _call(world, org, org.rep, [("customer", 0, said)])
    page = await _search(world, org.admin, q="pricing")
    (match,) = page["data"][0]["search"]["matches"]
    assert page["data"][0]["id"] == call_id
    html_ = match["snippet_html"]
    # ts_headline drops what its parser reads as tags; what is left of the text is escaped
    assert "<" not in html_.replace("<mark>", "").replace("</mark>", "")
    assert ">" not in html_.replace("<mark>", "").replace("</mark>", "")
    assert "&lt;img src=x onerror" in html_ and "&amp;" in html_
    assert html_.count("<mark>") == 1 and "<mark>pricing</mark>" in html_
    assert [p["text"] for p in match["snippet"] if p["hit"]] == ["pricing"]
    # the highlight marks are control characters stripped from the text first: saying them marks nothing
    sneaky = await _call(world, org, org.rep, [("customer", 0, "budget \x01owned\x02 budget")])
    page = await _search(world, org.admin, q="budget")
    (match,) = next(c for c in page["data"] if c["id"] == sneaky)["search"]["matches"]
    assert [p["text"] for p in match["snippet"] if p["hit"]] == ["budget", "budget"]


def test_masking_a_marked_snippet_masks_numbers_split_by_marks():
    parts = marked_parts("call me on \x01555\x02-0123-4567 or \x01ada\x02@example.com")
    masked = masked_parts(parts)
    text = "".join(t for t, _ in masked)
    assert text == "call me on ########### or [email]"
    assert [t for t, hit in masked if hit] == ["###########", "[email]"]
    assert snippet_html(masked) == "call me on <mark>###########</mark> or <mark>[email]</mark>"


async def test_search_reach_is_the_calls_lists(world):
    org, other_org = await world.make_org(), await world.make_org()
    secret = "zanzibar"
    mine = await _call(world, org, org.rep, [("customer", 0, f"we ship to {secret}")])
    teammate = await _call(world, org, org.other_rep, [("customer", 0, f"{secret} again")])
    no_team = await _call(world, org, org.outsider_rep, [("customer", 0, f"{secret} too")])
    foreign = await _call(world, other_org, other_org.rep, [("customer", 0, f"{secret} abroad")])

    async def found(who):
        return {c["id"] for c in (await _search(world, who, q=secret, limit="200"))["data"]}

    assert await found(org.rep) == {mine}  # a rep: their own calls only
    assert await found(org.manager) == {mine, teammate}  # a manager: their team, not the teamless rep
    assert await found(org.admin) == {mine, teammate, no_team}  # never another organization's
    assert await found(other_org.admin) == {foreign}
    assert await found(other_org.rep) == {foreign}


async def test_bad_queries_are_4xx(world):
    org = await world.make_org()
    await _call(world, org, org.rep, [("customer", 0, "hello")])
    for q in ("", "   ", "the and of", "x" * 201, "&|!():*", "\x00pricing"):
        resp, err = await world.request("GET", "/api/v1/calls", as_=org.admin, params={"q": q})
        assert resp.status == 400, (q, err)
        assert err["error"]["code"] == "invalid_query", (q, err)
    # tsquery operators typed by a person are just words
    for q in ("pricing & | !", "'a':*", '"unclosed', "-", "or or", "a <-> b"):
        resp, err = await world.request("GET", "/api/v1/calls", as_=org.admin, params={"q": q})
        assert resp.status in (200, 400), (q, err)
    resp, err = await world.request("GET", "/api/v1/calls?q=a&q=b", as_=org.admin)
    assert resp.status == 400


async def test_without_raw_transcripts_personal_data_can_neither_be_read_nor_found(world):
    org = await world.make_org()
    call_id = await _call(world, org, org.rep, [("customer", 0, "reach me at 4155550123 about pricing")])
    page = await _search(world, org.manager, q="pricing")  # managers hold no transcripts:raw
    (match,) = page["data"][0]["search"]["matches"]
    assert "4155550123" not in match["snippet_html"] and "##########" in match["snippet_html"]
    resp, err = await world.request("GET", "/api/v1/calls", as_=org.manager, params={"q": "4155550123"})
    assert (resp.status, err["error"]["code"]) == (400, "invalid_query")
    page = await _search(world, org.admin, q="4155550123")  # an admin reads raw transcripts
    assert [c["id"] for c in page["data"]] == [call_id]


async def test_library_filters(world):
    org = await world.make_org()
    async with world.pool.acquire() as conn:
        west = str(await conn.fetchval("INSERT INTO teams (org_id, name) VALUES ($1, 'West') RETURNING id", org.id))
    west_rep = await world.make_person(org.id, "rep", west, f"west-{uuid.uuid4().hex[:6]}@x.test")
    short = await _call(world, org, org.rep, [], duration_s=30,
                        summary={"competitors": ["Gong"], "checklist_missed": ["disclosure"]})
    long = await _call(world, org, org.rep, [], duration_s=600,
                       summary={"competitors": [], "checklist_missed": []})
    odd = await _call(world, org, west_rep, [], duration_s=120,
                      summary={"competitors": "not a list", "checklist_missed": {"x": 1}})
    unsummarised = await _call(world, org, west_rep, [])

    async def listed(**params):
        return {c["id"] for c in (await _search(world, org.admin, limit="200", **params))["data"]}

    assert await listed(team_id=org.team_id) == {short, long}
    assert await listed(team_id=west) == {odd, unsummarised}
    assert await listed(duration_min_s="60") == {long, odd}
    assert await listed(duration_max_s="120") == {short, odd}
    assert await listed(duration_min_s="60", duration_max_s="300") == {odd}
    assert await listed(competitor="gong") == {short}
    assert await listed(competitor="Chorus,GONG") == {short}
    assert await listed(checklist_missed="disclosure") == {short}
    assert await listed(checklist_complete="false") == {short}
    assert await listed(checklist_complete="true") == {long, odd}
    resp, err = await world.request("GET", "/api/v1/calls", as_=org.admin, params={"duration_min_s": "long"})
    assert (resp.status, err["error"]["code"]) == (400, "invalid_filter")
    resp, err = await world.request("GET", "/api/v1/calls", as_=org.admin, params={"team_id": "west"})
    assert resp.status == 400
    # a manager filtering by another team sees none of its calls
    assert {c["id"] for c in (await _search(world, org.manager, team_id=west))["data"]} == set()


async def test_comments_on_a_moment(world):
    org = await world.make_org()
    call_id = await _call(world, org, org.rep, [("rep", 0, "hello"), ("customer", 2000, "too expensive")])
    path = f"/api/v1/calls/{call_id}/comments"
    resp, made = await world.request("POST", path, as_=org.manager,
                                     json={"at_ms": 2000, "segment_key": "s1", "body": "Ask about budget here"})
    assert resp.status == 201, made
    assert (made["author_id"], made["at_ms"], made["segment_key"]) == (org.manager.user_id, 2000, "s1")
    resp, reply = await world.request("POST", path, as_=org.rep, json={"at_ms": 0, "body": "Will do"})
    assert resp.status == 201, reply
    # the rep on the call sees the manager's comment, in call-clock order
    resp, page = await world.request("GET", path, as_=org.rep)
    assert [c["body"] for c in page["data"]] == ["Will do", "Ask about budget here"]
    # out of the call's reach: 404, for reading and for writing
    for who in (org.other_rep, org.outsider_rep):
        for method, body in (("GET", None), ("POST", {"at_ms": 1, "body": "x"})):
            resp, _ = await world.request(method, path, as_=who, json=body)
            assert resp.status == 404, (who.email, method)
    other = await world.make_org()
    resp, _ = await world.request("GET", path, as_=other.admin)
    assert resp.status == 404
    # only the author deletes; another who sees the comment is refused, an unknown one is 404
    resp, err = await world.request("DELETE", f"{path}/{made['id']}", as_=org.rep)
    assert (resp.status, err["error"]["code"]) == (403, "not_author")
    resp, _ = await world.request("DELETE", f"{path}/{made['id']}", as_=other.admin)
    assert resp.status == 404
    resp, _ = await world.request("DELETE", f"{path}/{uuid.uuid4()}", as_=org.manager)
    assert resp.status == 404
    resp, _ = await world.request("DELETE", f"{path}/{made['id']}", as_=org.manager)
    assert resp.status == 204
    resp, page = await world.request("GET", path, as_=org.rep)
    assert [c["body"] for c in page["data"]] == ["Will do"]
    # bad bodies: 422, nothing stored
    for body in ({"at_ms": -1, "body": "x"}, {"at_ms": 0, "body": ""}, {"at_ms": 0, "body": "   "},
                 {"at_ms": 0, "body": "x" * 2001}, {"at_ms": "5", "body": "x"}, {"body": "x"},
                 {"at_ms": 0, "body": "x", "extra": 1}):
        resp, err = await world.request("POST", path, as_=org.manager, json=body)
        assert resp.status == 422, (body, err)
    # audited: who added and deleted what, on which call and moment (not the text)
    async with world.pool.acquire() as conn:
        audit = await conn.fetch(
            "SELECT action, actor_id::text, after, before FROM audit_log WHERE org_id = $1"
            " AND resource_type = 'call_comment' ORDER BY id", uuid.UUID(org.id))
    assert [(a["action"], a["actor_id"]) for a in audit] == [
        ("call_comment.create", org.manager.user_id), ("call_comment.create", org.rep.user_id),
        ("call_comment.delete", org.manager.user_id)]
    assert audit[2]["before"] == {"call_id": call_id, "at_ms": 2000, "segment_key": "s1"}


async def test_a_leads_erasure_deletes_the_comments_on_its_calls(world):
    org = await world.make_org()
    lead = await world.create_lead(org.rep, phone="+15550199")
    async with world.pool.acquire() as conn:
        row = await create_call(conn, NewCall(org.id, "twilio", "inbound", external_id=uuid.uuid4().hex,
                                              rep_id=org.rep.user_id, lead_id=lead["id"]))
    other = await _call(world, org, org.rep, [("customer", 0, "hello")])
    for call_id in (str(row["id"]), other):
        resp, _ = await world.request("POST", f"/api/v1/calls/{call_id}/comments", as_=org.manager,
                                      json={"at_ms": 0, "body": "She said her budget is 40k"})
        assert resp.status == 201
    resp, _ = await world.request("POST", f"/api/v1/leads/{lead['id']}/erasure", as_=org.admin)
    assert resp.status == 200, resp.status
    async with world.pool.acquire() as conn:
        left = await conn.fetch("SELECT call_id::text FROM call_comments WHERE org_id = $1", uuid.UUID(org.id))
    assert [r["call_id"] for r in left] == [other]  # the other call's comment stays
