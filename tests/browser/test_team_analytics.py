"""The team analytics page: its numbers equal the hand computation, and each links to its calls."""

from __future__ import annotations

from datetime import UTC, datetime

from playwright.async_api import expect

from tests.browser.world import screenshot, sign_in
from tests.crm_core.team_calls import CALL_A, CALL_B, CALL_C, store_scripted_call
from voice_server.app_keys import RUNTIME


def at(day: int) -> datetime:
    return datetime(2025, 3, day, 10, 0, tzinfo=UTC)


async def test_manager_reads_the_team_figures_and_drills_down(site, browser_context, tmp_path):
    pool, org = site.app[RUNTIME].pool, site.org
    call_a, _ = await store_scripted_call(pool, org.org_id, org.rep, at(3), CALL_A)
    call_b, _ = await store_scripted_call(pool, org.org_id, org.rep, at(12), CALL_B)
    await store_scripted_call(pool, org.org_id, org.other_rep, at(4), CALL_C)  # another team's rep

    page = await sign_in(browser_context, site, org.manager_email, "/app/analytics")
    await page.goto(f"{site.url}/app/analytics?from=2025-03-01&to=2025-03-31")
    table = page.locator("#figures")
    rita = table.locator("tbody tr").filter(has_text="Rita Rep")
    await expect(table.locator("tbody tr")).to_have_count(1)  # Walt is in the other team
    # calls A and B (tests/crm_core/team_calls.py): talk 14 s + 11 s, share 25000/36000,
    # 3 questions, prompts 3 of 4 followed, checklist 2 of 4, patience (1000*2 + 1000)/3 ms
    expected = {
        "Calls": "2",
        "Talk time": "0:25",
        "Talk share": "69 %",
        "Questions": "3",
        "Prompts followed": "3 / 4",
        "Checklist": "50 %",
        "Patience": "1.0 s",
        "Longest monologue (avg)": "0:07",
        "Interruptions": "0",
        "Competitors": "1",
        "Objections": "2",
    }
    for column, text in expected.items():
        await expect(rita.locator(f'td[data-col="{column}"]')).to_have_text(text)
    # the weekly trend charts are drawn (Chart.js served by the node)
    await expect(page.locator("#chart-calls")).to_be_visible()
    await page.wait_for_function(
        "() => window.Chart && ['chart-calls', 'chart-shares', 'chart-sentiment']"
        ".every((id) => window.Chart.getChart(document.getElementById(id)))"
    )
    await expect(page.locator(".grid-charts canvas")).to_have_count(3)
    await screenshot(page, "analytics-1280", tmp_path)

    # the number of prompts followed opens the calls where a prompt was not followed: call B
    await rita.locator('td[data-col="Prompts followed"] a').click()
    await expect(page.locator("#drill-calls tbody tr")).to_have_count(1)
    await expect(page.locator("#drill-calls tbody tr")).to_have_attribute("data-call", call_b)
    await page.go_back()
    await rita.locator('td[data-col="Calls"] a').click()
    rows = page.locator("#drill-calls tbody tr")
    await expect(rows).to_have_count(2)
    assert [await r.get_attribute("data-call") for r in await rows.all()] == [call_b, call_a]

    # a 360 px side panel: nothing pushes the page sideways (the table scrolls in its box)
    await page.set_viewport_size({"width": 360, "height": 800})
    await page.goto(f"{site.url}/app/analytics?from=2025-03-01&to=2025-03-31")
    await expect(rita.locator('td[data-col="Calls"]')).to_have_text("2")
    await expect(page.locator("#chart-sentiment")).to_be_visible()
    assert await page.evaluate("() => document.documentElement.scrollWidth") <= 360
    await screenshot(page, "analytics-360", tmp_path)
