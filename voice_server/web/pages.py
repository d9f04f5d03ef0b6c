"""Server side of the browser screens.

The screens themselves are small ES modules under ``static/`` that talk to
the REST API and the live feed; the server only renders two HTML pages:
the sign-in form and the app shell (which embeds who is signed in). Both
carry a strict Content-Security-Policy: no inline script, no third parties.
"""

from __future__ import annotations

import html
import json
from collections.abc import Awaitable, Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from urllib.parse import quote, urlsplit

from aiohttp import web

# Who sees the live floor (/app/floor); the feed behind it (/ws/floor) applies the same rule.
from crm_core.calls.floor import FLOOR_ROLES
from voice_server.web.vendor import add_vendor_routes

STATIC_DIR = Path(__file__).parent / "static"

SECURITY_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
        "media-src 'self' blob:; connect-src 'self' ws: wss:; frame-ancestors 'none'; "
        "base-uri 'none'; form-action 'self'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "Cache-Control": "no-store",
}


@dataclass(frozen=True, slots=True)
class SignedInUser:
    """What the shell tells the screens about the browser's user."""

    user_id: str
    org_id: str
    role: str
    name: str
    email: str


SessionLookup = Callable[[web.Request], Awaitable[SignedInUser | None]]


def _page(title: str, body: str, *, script: str) -> web.Response:
    text = f"""<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{html.escape(title)} · Coachline</title>
<link rel="icon" href="data:,">
<link rel="stylesheet" href="/static/app.css">
<script type="module" src="/static/{script}"></script>
</head>
<body>
{body}
</body>
</html>
"""
    return web.Response(text=text, content_type="text/html", headers=SECURITY_HEADERS)


def _safe_next(value: str | None) -> str:
    """Only same-site paths under /app: never an open redirect."""
    if not value:
        return "/app"
    parts = urlsplit(value)
    if parts.scheme or parts.netloc or not parts.path.startswith("/app") or "\\" in value:
        return "/app"
    return value


def _script_json(data: dict) -> str:
    # JSON inside <script> must not be able to close the element.
    return json.dumps(data).replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


def add_page_routes(app: web.Application, session_user: SessionLookup) -> None:
    async def root(_request: web.Request) -> web.StreamResponse:
        raise web.HTTPFound("/app")

    async def login(request: web.Request) -> web.Response:
        next_path = _safe_next(request.query.get("next"))
        if await session_user(request) is not None:
            raise web.HTTPFound(next_path)
        body = f"""<main class="signin">
<form id="signin" class="panel" method="post" action="/auth/token" data-next="{html.escape(next_path)}">
<h1>Sign in to Coachline</h1>
<label for="email">Email</label>
<input id="email" name="email" type="email" autocomplete="username" required autofocus>
<label for="password">Password</label>
<input id="password" name="password" type="password" autocomplete="current-password" required>
<p class="error" role="alert" id="signin-error" hidden></p>
<button type="submit">Sign in</button>
</form>
</main>"""
        return _page("Sign in", body, script="login.js")

    async def shell(request: web.Request) -> web.Response:
        user = await session_user(request)
        if user is None:
            target = request.path_qs
            raise web.HTTPFound(f"/login?next={quote(target, safe='')}")
        if request.path.rstrip("/") == "/app/floor" and user.role not in FLOOR_ROLES:
            raise web.HTTPFound("/app")  # the floor is for managers and admins
        links = [("/app/live", "Live call"), ("/app/calls", "Calls"),
                 ("/app/leads", "Leads"), ("/app/deals", "Deals")]
        links.append(("/app/analytics", "Analytics"))
        if user.role in FLOOR_ROLES:
            links.insert(1, ("/app/floor", "Floor"))
        if user.role == "admin":
            links.append(("/app/admin", "Admin"))
        nav = "".join(f'<a href="{href}">{label}</a>' for href, label in links)
        body = f"""<header class="top">
<strong>Coachline</strong>
<nav aria-label="Main">{nav}</nav>
<span class="who">{html.escape(user.name or user.email)} · {html.escape(user.role)}</span>
<button type="button" id="signout">Sign out</button>
</header>
<main id="main" tabindex="-1"></main>
<script id="me" type="application/json">{_script_json(asdict(user))}</script>"""
        return _page("Coachline", body, script="app.js")

    async def floor(_request: web.Request) -> web.StreamResponse:
        raise web.HTTPFound("/app/floor")

    async def admin(_request: web.Request) -> web.StreamResponse:
        raise web.HTTPFound("/app/admin")

    app.router.add_get("/", root)
    app.router.add_get("/floor", floor)
    app.router.add_get("/admin", admin)
    app.router.add_get("/login", login)
    app.router.add_get("/app", shell)
    app.router.add_get("/app/{tail:.*}", shell)
    app.router.add_static("/static/", STATIC_DIR, name="static", append_version=False)

    async def analytics(_request: web.Request) -> web.StreamResponse:
        raise web.HTTPFound("/app/analytics")

    app.router.add_get("/analytics", analytics)
    add_vendor_routes(app, SECURITY_HEADERS)
