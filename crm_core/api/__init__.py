"""The CRM REST API under /api/v1: mount it with ``crm_core.api.routes.add_api_routes``.

The package itself imports nothing, so its modules may import each other by name
(``from crm_core.api import leads``) without going round through this file.
"""
