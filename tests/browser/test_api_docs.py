"""``/docs`` in Chromium: Swagger UI renders the API's document under the strict CSP, from this node only."""

from __future__ import annotations

from urllib.parse import urlsplit

import pytest
from playwright.async_api import expect


@pytest.fixture
def site_env() -> dict[str, str]:
    return {"COACHLINE_STT_ENABLED": "false"}  # nothing here speaks


async def test_the_api_reference_renders_an_operation_without_sign_in(
    site, browser_context, page_health
):
    page = await browser_context.new_page()
    hosts: set[str] = set()
    page.on("request", lambda request: hosts.add(urlsplit(request.url).netloc))
    response = await page.goto(f"{site.url}/docs")  # a fresh context: nobody is signed in
    assert response is not None and response.status == 200
    assert "script-src 'self'" in response.headers["content-security-policy"]

    await expect(page.locator(".info .title")).to_contain_text("Coachline CRM API")
    create_lead = page.locator("#operations-leads-post_leads")
    await create_lead.locator(".opblock-summary").click()
    await expect(create_lead.locator(".opblock-description-wrapper").first).to_contain_text(
        "Idempotency-Key"
    )
    # the generated example is shown as the request body, and the documented headers are listed
    await expect(create_lead.locator(".body-param__example")).to_contain_text(
        "Analytical Engines Ltd"
    )
    await expect(create_lead.locator(".responses-wrapper")).to_contain_text("RateLimit-Remaining")

    # nothing came from anywhere but this node (no CDN, no validator badge, no fonts)
    assert hosts == {urlsplit(site.url).netloc}, hosts
