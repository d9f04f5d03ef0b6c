"""The browser screens: sign-in page, the app shell and its static files."""

from voice_server.web.pages import SignedInUser, add_page_routes

__all__ = ["SignedInUser", "add_page_routes"]
