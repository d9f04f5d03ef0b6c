"""Sign-in and sign-out in the browser: cookies, redirects, errors."""

from __future__ import annotations

import re

from playwright.async_api import expect

from tests.browser.world import PASSWORD


async def test_sign_in_sets_a_safe_session_and_sign_out_ends_it(site, browser_context, page_health):
    page_health.allow(r"status of 401 .*/auth/token")  # the wrong password below
    page = await browser_context.new_page()
    await page.goto(f"{site.url}/app/calls")
    await expect(page).to_have_url(re.compile(r"/login\?next=(%2F|/)app(%2F|/)calls$"))

    await page.get_by_label("Email").fill(site.org.manager_email)
    await page.get_by_label("Password").fill("not the password")
    await page.get_by_role("button", name="Sign in").click()
    await expect(page.get_by_role("alert")).to_have_text("wrong email or password")

    await page.get_by_label("Password").fill(PASSWORD)
    await page.get_by_label("Password").press("Enter")  # the keyboard submits the form too
    await expect(page).to_have_url(f"{site.url}/app/calls")
    await expect(page.get_by_role("heading", name="Calls")).to_be_visible()
    await expect(page.locator("header .who")).to_have_text("Maya Manager · manager")
    cookies = {c["name"]: c for c in await browser_context.cookies()}
    session, csrf = cookies["coachline_session"], cookies["coachline_csrf"]
    assert session["httpOnly"] and session["sameSite"] == "Lax"
    assert not csrf["httpOnly"]  # the page reads it to prove same-origin writes
    assert await page.evaluate("() => document.cookie.includes('coachline_session')") is False

    await page.get_by_role("button", name="Sign out").click()
    await expect(page).to_have_url(f"{site.url}/login")
    await page.goto(f"{site.url}/app")
    await expect(page).to_have_url(re.compile(r"/login\?next="))
    # The old session token is revoked, not only forgotten by the browser.
    await browser_context.add_cookies([{**session, "expires": -1}])
    response = await page.request.post(f"{site.url}/auth/token",
                                       headers={"X-CSRF-Token": csrf["value"]})
    assert response.status == 401


async def test_sign_in_never_redirects_off_site(site, browser_context):
    page = await browser_context.new_page()
    await page.goto(f"{site.url}/login?next=https://evil.example/app")
    await page.get_by_label("Email").fill(site.org.rep_email)
    await page.get_by_label("Password").fill(PASSWORD)
    await page.get_by_role("button", name="Sign in").click()
    await expect(page).to_have_url(f"{site.url}/app")
    await expect(page.get_by_role("heading", name="Live call")).to_be_visible()
