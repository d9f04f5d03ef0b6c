"""/api/v1/webhooks: admins register the URLs that receive the organisation's events.

The handlers are thin: ``crm_core.webhook_endpoints`` owns the rules (URL
policy, event patterns, secrets) and ``crm_core.webhooks_out`` the delivery.
The signing secret is returned once, on create and on rotate; it is never
written to the audit log.
"""

from __future__ import annotations

from crm_core.api.access import require
from crm_core.api.endpoint import Call, Endpoint, QueryParam, Reply
from crm_core.api.models import (
    Webhook,
    WebhookCreate,
    WebhookCreated,
    WebhookDelivery,
    WebhookUpdate,
)
from crm_core.api.records import parse_uuid
from crm_core.api_errors import BadRequest, NotFound, Unprocessable
from crm_core.changes import ChangeSet
from crm_core.webhook_endpoints import (
    WebhookEndpoint,
    WebhookEndpointNotFound,
    WebhookUrlError,
    create_endpoint,
    delete_endpoint,
    get_endpoint,
    list_deliveries,
    list_endpoints,
    rotate_secret,
    update_endpoint,
)

MANAGE = "webhooks:manage"
MAX_DELIVERIES = 200


def _public(endpoint: WebhookEndpoint) -> dict:
    return Webhook.model_validate(endpoint).model_dump(mode="json")


def _endpoint_id(call: Call) -> str:
    return parse_uuid(call.path_id(), "webhook")


def _refused(exc: ValueError) -> Unprocessable:
    code = "invalid_url" if isinstance(exc, WebhookUrlError) else "invalid_event_types"
    return Unprocessable(str(exc), {"field": "url" if code == "invalid_url" else "event_types"}, code=code)


async def list_webhooks(call: Call) -> Reply:
    require(call.me, MANAGE)
    async with call.pool.acquire() as conn:
        endpoints = await list_endpoints(conn, call.me.org_id)
    # An organisation has a handful of endpoints: one page holds them all.
    return Reply({"data": [_public(e) for e in endpoints], "next_cursor": None})


async def create_webhook(call: Call) -> Reply:
    require(call.me, MANAGE)
    body: WebhookCreate = call.body
    me = call.me
    changes = ChangeSet(me.org_id, me.user_id)
    async with call.pool.acquire() as conn, conn.transaction():
        try:
            endpoint = await create_endpoint(
                conn, me.org_id, body.url, list(body.event_types), description=body.description,
                allow_private=call.context.options.webhooks_allow_private_urls,
            )
        except ValueError as exc:  # WebhookUrlError is a ValueError too
            raise _refused(exc) from None
        await changes.record(conn, action="webhook.create", resource_type="webhook", resource_id=endpoint.id,
                             after=_public(endpoint))
    assert endpoint.secret is not None
    return Reply(WebhookCreated(**_public(endpoint), secret=endpoint.secret), 201)


async def get_webhook(call: Call) -> Reply:
    require(call.me, MANAGE)
    endpoint_id = _endpoint_id(call)
    async with call.pool.acquire() as conn:
        try:
            endpoint = await get_endpoint(conn, call.me.org_id, endpoint_id)
        except WebhookEndpointNotFound:
            raise NotFound("no such webhook", {"id": endpoint_id}) from None
    return Reply(Webhook.model_validate(endpoint))


async def update_webhook(call: Call) -> Reply:
    require(call.me, MANAGE)
    body: WebhookUpdate = call.body
    me = call.me
    endpoint_id = _endpoint_id(call)
    changes = ChangeSet(me.org_id, me.user_id)
    async with call.pool.acquire() as conn, conn.transaction():
        try:
            before = await get_endpoint(conn, me.org_id, endpoint_id)
            endpoint = await update_endpoint(
                conn, me.org_id, endpoint_id, url=body.url,
                event_types=None if body.event_types is None else list(body.event_types),
                active=body.active, description=body.description,
                allow_private=call.context.options.webhooks_allow_private_urls,
            )
        except WebhookEndpointNotFound:
            raise NotFound("no such webhook", {"id": endpoint_id}) from None
        except ValueError as exc:
            raise _refused(exc) from None
        await changes.record(conn, action="webhook.update", resource_type="webhook", resource_id=endpoint.id,
                             before=_public(before), after=_public(endpoint))
    return Reply(Webhook.model_validate(endpoint))


async def rotate_webhook_secret(call: Call) -> Reply:
    require(call.me, MANAGE)
    me = call.me
    endpoint_id = _endpoint_id(call)
    changes = ChangeSet(me.org_id, me.user_id)
    async with call.pool.acquire() as conn, conn.transaction():
        try:
            endpoint = await rotate_secret(conn, me.org_id, endpoint_id)
        except WebhookEndpointNotFound:
            raise NotFound("no such webhook", {"id": endpoint_id}) from None
        await changes.record(conn, action="webhook.rotate_secret", resource_type="webhook",
                             resource_id=endpoint.id, after=_public(endpoint))
    assert endpoint.secret is not None
    return Reply(WebhookCreated(**_public(endpoint), secret=endpoint.secret))


async def delete_webhook(call: Call) -> Reply:
    require(call.me, MANAGE)
    me = call.me
    endpoint_id = _endpoint_id(call)
    changes = ChangeSet(me.org_id, me.user_id)
    async with call.pool.acquire() as conn, conn.transaction():
        try:
            before = await get_endpoint(conn, me.org_id, endpoint_id)
            await delete_endpoint(conn, me.org_id, endpoint_id)
        except WebhookEndpointNotFound:
            raise NotFound("no such webhook", {"id": endpoint_id}) from None
        await changes.record(conn, action="webhook.delete", resource_type="webhook", resource_id=endpoint_id,
                             before=_public(before))
    return Reply(None, 204)


def _limit(call: Call) -> int:
    raw = call.request.query.get("limit", "50")
    try:
        limit = int(raw)
    except ValueError:
        raise BadRequest("limit must be an integer", {"limit": raw}, code="invalid_limit") from None
    if not 1 <= limit <= MAX_DELIVERIES:
        raise BadRequest(f"limit must be 1..{MAX_DELIVERIES}", {"limit": limit}, code="invalid_limit")
    return limit


async def list_webhook_deliveries(call: Call) -> Reply:
    require(call.me, MANAGE)
    endpoint_id = _endpoint_id(call)
    limit = _limit(call)
    async with call.pool.acquire() as conn:
        try:
            await get_endpoint(conn, call.me.org_id, endpoint_id)  # 404 for others' endpoints
        except WebhookEndpointNotFound:
            raise NotFound("no such webhook", {"id": endpoint_id}) from None
        rows = await list_deliveries(conn, call.me.org_id, endpoint_id, limit=limit)
    data = [WebhookDelivery.model_validate(row).model_dump(mode="json") for row in rows]
    return Reply({"data": data, "next_cursor": None})


_DELIVERY_QUERY = (
    QueryParam("limit", {"type": "integer", "minimum": 1, "maximum": MAX_DELIVERIES, "default": 50},
               "How many deliveries, newest first."),
)

ENDPOINTS = (
    Endpoint("GET", "/api/v1/webhooks", list_webhooks, "List webhook endpoints (admin)", "webhooks",
             response=Webhook, paginated=True, errors=(400, 401, 403)),
    Endpoint("POST", "/api/v1/webhooks", create_webhook,
             "Register a webhook endpoint (admin); the signing secret is shown once", "webhooks",
             body=WebhookCreate, response=WebhookCreated, status=201, errors=(400, 401, 403, 409, 422)),
    Endpoint("GET", "/api/v1/webhooks/{id}", get_webhook, "Get a webhook endpoint (admin)", "webhooks",
             response=Webhook, errors=(401, 403, 404)),
    Endpoint("PATCH", "/api/v1/webhooks/{id}", update_webhook,
             "Change a webhook endpoint's URL, event types, description or active flag (admin)", "webhooks",
             body=WebhookUpdate, response=Webhook, errors=(400, 401, 403, 404, 422)),
    Endpoint("DELETE", "/api/v1/webhooks/{id}", delete_webhook, "Delete a webhook endpoint (admin)", "webhooks",
             status=204, errors=(401, 403, 404)),
    Endpoint("POST", "/api/v1/webhooks/{id}/rotate-secret", rotate_webhook_secret,
             "Replace a webhook endpoint's signing secret (admin); the new secret is shown once", "webhooks",
             response=WebhookCreated, errors=(400, 401, 403, 404, 409, 422)),
    Endpoint("GET", "/api/v1/webhooks/{id}/deliveries", list_webhook_deliveries,
             "A webhook endpoint's delivery log, newest first, with every attempt (admin)", "webhooks",
             response=WebhookDelivery, paginated=True, query=_DELIVERY_QUERY, errors=(400, 401, 403, 404)),
)
