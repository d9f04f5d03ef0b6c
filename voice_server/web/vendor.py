"""Third-party browser libraries the screens use, served from this server (no CDN).

They are Debian packages (scripts/apt-run.txt, the Dockerfile), installed where Debian puts
browser libraries; a server without one still serves every screen, and the screen that wants
the library says it is missing instead of drawing (e.g. the analytics charts).
"""

from __future__ import annotations

from pathlib import Path

from aiohttp import web

# URL under /vendor/ -> the file (Chart.js 3, UMD build, from Debian's libjs-chart.js)
VENDOR_FILES = {
    "chart.min.js": Path("/usr/share/javascript/chart.js/chart.min.js"),
}


def add_vendor_routes(
    app: web.Application, headers: dict[str, str], files: dict[str, Path] | None = None
) -> None:
    """``headers``: the pages' security headers, sent with each file too."""
    files = VENDOR_FILES if files is None else files

    async def vendor(request: web.Request) -> web.StreamResponse:
        path = files.get(request.match_info["name"])
        if path is None or not path.is_file():
            raise web.HTTPNotFound()
        sent = {
            **headers,
            "Cache-Control": "public, max-age=86400",
            "Content-Type": "text/javascript; charset=utf-8",
        }
        return web.FileResponse(path, headers=sent)

    app.router.add_get("/vendor/{name}", vendor)
