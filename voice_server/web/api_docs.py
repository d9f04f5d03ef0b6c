"""``/docs``: the API's OpenAPI document in Swagger UI, served from this node, under the strict CSP.

Swagger UI's files come from the ``swagger-ui-py`` package (its ``static`` folder; only the
bundle and its stylesheet are served), and our own ``static/docs.js`` starts it, since the
page may run no inline script. The viewer reads ``/api/v1/openapi.json``; it fetches nothing
from elsewhere (no validator badge, no fonts, no CDN). The page needs no sign-in: the document
describes the API and holds no data, and it is public already at /api/v1/openapi.json.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

from aiohttp import web

from voice_server.web.pages import SECURITY_HEADERS

# The only files of the package the page needs; nothing else under its folder is served.
VIEWER_FILES = {"swagger-ui-bundle.js": "text/javascript", "swagger-ui.css": "text/css"}
_PAGE = """<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>API reference · Coachline</title>
<link rel="icon" href="data:,">
<link rel="stylesheet" href="/docs/viewer/swagger-ui.css">
<script src="/docs/viewer/swagger-ui-bundle.js" defer></script>
<script src="/static/docs.js" defer></script>
</head>
<body>
<div id="swagger-ui" data-document="/api/v1/openapi.json">
<noscript>The API reference needs JavaScript; the document itself is
<a href="/api/v1/openapi.json">/api/v1/openapi.json</a>.</noscript>
</div>
</body>
</html>
"""


def viewer_dir() -> Path | None:
    """Swagger UI's static folder inside the installed ``swagger_ui`` package (not imported: it
    pulls in web-framework glue we do not use)."""
    spec = importlib.util.find_spec("swagger_ui")
    if spec is None or not spec.submodule_search_locations:
        return None
    folder = Path(next(iter(spec.submodule_search_locations))) / "static"
    return folder if all((folder / name).is_file() for name in VIEWER_FILES) else None


def add_api_docs_routes(app: web.Application) -> None:
    folder = viewer_dir()

    async def page(_request: web.Request) -> web.Response:
        if folder is None:
            raise web.HTTPServiceUnavailable(
                text="The API reference viewer (the swagger-ui-py package) is not installed; "
                "the document is at /api/v1/openapi.json."
            )
        return web.Response(text=_PAGE, content_type="text/html", headers=SECURITY_HEADERS)

    async def viewer_file(request: web.Request) -> web.StreamResponse:
        name = request.match_info["name"]
        if folder is None or name not in VIEWER_FILES:
            raise web.HTTPNotFound()
        # The files change only with the package version: a day's caching saves 1.6 MB per visit.
        return web.FileResponse(
            folder / name,
            headers={
                "Content-Type": VIEWER_FILES[name],
                "X-Content-Type-Options": "nosniff",
                "Cache-Control": "public, max-age=86400",
            },
        )

    app.router.add_get("/docs", page)
    app.router.add_get("/docs/viewer/{name}", viewer_file)
