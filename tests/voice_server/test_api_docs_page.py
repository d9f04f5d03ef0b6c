"""``/docs`` serves its page and the viewer's two files, and nothing else of the package."""

from __future__ import annotations

from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from voice_server.web.api_docs import VIEWER_FILES, add_api_docs_routes, viewer_dir


async def test_the_page_and_only_the_viewer_files_are_served():
    assert viewer_dir() is not None, "swagger-ui-py (a core dependency) is not installed"
    app = web.Application()
    add_api_docs_routes(app)
    async with TestClient(TestServer(app)) as client:
        page = await client.get("/docs")
        assert page.status == 200
        text = await page.text()
        assert (
            "<script>" not in text and "style=" not in text
        )  # nothing inline for the CSP to refuse
        assert "default-src 'self'" in page.headers["Content-Security-Policy"]
        for name, media_type in VIEWER_FILES.items():
            resp = await client.get(f"/docs/viewer/{name}")
            assert resp.status == 200 and resp.content_type == media_type, name
            assert len(await resp.read()) > 100_000
        # the package also holds Swagger Editor, source maps and templates: none is served
        for other in (
            "swagger-editor-bundle.js",
            "swagger-ui-bundle.js.map",
            "..%2F__init__.py",
            "index.css",
        ):
            assert (await client.get(f"/docs/viewer/{other}")).status == 404, other
