"""/api/v1/webhooks: admins register the URLs that receive the organisation's events.

The handlers are thin: ``crm_core.webhooks.endpoints`` owns the rules (URL
policy, event patterns, secrets) and ``crm_core.webhooks.delivery`` the delivery.
The signing secret is returned once, on create and on rotate; it is never
written to the audit log.
"""

from __future__ import annotations

from typing import Any

from crm_core.api.access import require
from crm_core.api.endpoint import Endpoint
from crm_core.api.listing import Collection, Filter, SortKey, SqlParams, fetch_page
from crm_core.api.records import parse_uuid
from crm_core.api.reply import Call, Reply
from crm_core.api.schemas.webhooks import (
    Webhook,
    WebhookCreate,
    WebhookCreated,
    WebhookDelivery,
    WebhookUpdate,
)
from crm_core.api_errors import NotFound, Unprocessable
from crm_core.changes import ChangeSet
from crm_core.webhooks.endpoints import (
    WebhookEndpoint,
    WebhookEndpointNotFound,
    WebhookUrlError,
    check_resolved_url,
    create_endpoint,
    delete_endpoint,
    delivery_attempts,
    get_endpoint,
    list_endpoints,
    rotate_secret,
    update_endpoint,
    validate_url,
)

MANAGE = "webhooks:manage"

# The delivery log is the one list keyed by a bigserial: its cursor's tie-breaker is that id.
DELIVERIES = Collection(
    filters=(
        Filter("status", "enum", "d.status = ANY({})", "Delivery state.", many=True,
               choices=("pending", "delivering", "succeeded", "dead")),
        Filter("event_type", "text", "d.event_type = {}", "The event's type, e.g. crm.lead.created."),
        Filter("created_after", "datetime", "d.created_at > {}", "Queued after this time."),
        Filter("created_before", "datetime", "d.created_at < {}", "Queued before this time."),
    ),
    sorts=(SortKey("created_at", "d.created_at", "timestamptz"),),
    id_type="bigint",
)


def _public(endpoint: WebhookEndpoint) -> dict:
    return Webhook.model_validate(endpoint).model_dump(mode="json")


def _endpoint_id(call: Call) -> str:
    return parse_uuid(call.path_id(), "webhook")


def _refused(exc: ValueError) -> Unprocessable:
    code = "invalid_url" if isinstance(exc, WebhookUrlError) else "invalid_event_types"
    return Unprocessable(str(exc), {"field": "url" if code == "invalid_url" else "event_types"}, code=code)


async def _check_resolution(call: Call, url: str) -> None:
    """A 422 now for a name that resolves inward (delivery checks again at every connection)."""
    allow = call.context.options.webhooks_allow_private_urls
    try:
        validate_url(url, allow_private=allow)  # a malformed URL is refused by the call below
    except WebhookUrlError:
        return
    try:
        await check_resolved_url(url, allow_private=allow)
    except WebhookUrlError as exc:
        raise _refused(exc) from None


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
    await _check_resolution(call, body.url)
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
    if body.url is not None:
        await _check_resolution(call, body.url)
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


async def list_webhook_deliveries(call: Call) -> Reply:
    require(call.me, MANAGE)
    endpoint_id = _endpoint_id(call)
    async with call.pool.acquire() as conn:
        try:
            await get_endpoint(conn, call.me.org_id, endpoint_id)  # 404 for others' endpoints
        except WebhookEndpointNotFound:
            raise NotFound("no such webhook", {"id": endpoint_id}) from None
    params = SqlParams()
    base = [f"d.org_id = {params.add(call.me.org_id)}", f"d.endpoint_id = {params.add(endpoint_id)}::uuid"]

    async def with_attempts(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
        async with call.pool.acquire() as conn:
            log = await delivery_attempts(conn, [row["id"] for row in rows])
        return [WebhookDelivery.model_validate({**row, "log": log[row["id"]]}).model_dump(mode="json")
                for row in rows]

    return Reply(await fetch_page(call, DELIVERIES, params, base, table="webhook_deliveries", alias="d",
                                  to_item=dict, finish=with_attempts))


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
             response=WebhookDelivery, paginated=True, query=DELIVERIES.query_params(),
             errors=(400, 401, 403, 404)),
)
