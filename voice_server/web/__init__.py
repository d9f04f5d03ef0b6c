"""The browser screens: sign-in page, the app shell and its static files, the API reference."""

from voice_server.web.api_docs import add_api_docs_routes
from voice_server.web.pages import SignedInUser, add_page_routes

__all__ = ["SignedInUser", "add_api_docs_routes", "add_page_routes"]
