"""The CRM REST API under /api/v1: mount it with ``add_api_routes(app, pool=..., bus=...)``."""

from crm_core.api.endpoint import QueryParam
from crm_core.api.openapi import ForeignOperation
from crm_core.api.routes import ENDPOINTS, add_api_routes, document_routes
from crm_core.api_context import ApiOptions

__all__ = ["ENDPOINTS", "ApiOptions", "ForeignOperation", "QueryParam", "add_api_routes", "document_routes"]
