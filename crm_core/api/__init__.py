"""The CRM REST API under /api/v1: mount it with ``add_api_routes(app, pool=..., bus=...)``."""

from crm_core.api.routes import ENDPOINTS, add_api_routes
from crm_core.api_context import ApiOptions

__all__ = ["ENDPOINTS", "ApiOptions", "add_api_routes"]
