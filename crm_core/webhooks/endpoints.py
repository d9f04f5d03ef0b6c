"""Webhook endpoints an organisation registers, and which URLs they may point at.

An endpoint is a URL, a signing secret (``whsec_…``, shown to the caller
when created or rotated), the event types it wants (shell-style patterns
such as ``crm.lead.*``) and an active flag. The REST routes
(``/api/v1/webhooks``) are the API's; these are the functions they call.

URL policy: only ``http``/``https``, no credentials in the URL, and unless
``allow_private`` is set, no loopback, private, link-local or otherwise
non-public address in any spelling (``crm_core.webhooks.addresses``), whether
written literally or reached through DNS (the dispatcher checks resolved
addresses at connect time too, so a name that later resolves inward is still
refused).
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import datetime
from fnmatch import fnmatchcase
from typing import Any
from urllib.parse import urlsplit

import asyncpg
import yarl

from crm_core.webhooks.addresses import (
    NotAnAddress,
    host_address,
    inward_addresses,
    is_local_name,
    is_public_address,
    is_public_ip,
)

__all__ = ["is_public_address"]  # delivery checks resolved addresses with it


class WebhookUrlError(ValueError):
    """The URL may not be used for webhooks (scheme, form, or a non-public address)."""


class WebhookEndpointNotFound(LookupError):
    pass


_EVENT_TYPE_CHARS = set("abcdefghijklmnopqrstuvwxyz0123456789._-*")


@dataclass(frozen=True, slots=True)
class WebhookEndpoint:
    id: str
    org_id: str
    url: str
    event_types: list[str]
    active: bool
    description: str | None
    created_at: datetime
    updated_at: datetime
    secret: str | None = None  # only filled when created or rotated

    def wants(self, event_type: str) -> bool:
        return any(fnmatchcase(event_type, pattern) for pattern in self.event_types)

    def to_json(self) -> dict[str, Any]:
        data = {
            "id": self.id, "url": self.url, "event_types": self.event_types, "active": self.active,
            "description": self.description, "created_at": self.created_at.isoformat(),
            "updated_at": self.updated_at.isoformat(),
        }
        if self.secret is not None:
            data["secret"] = self.secret
        return data


def _hosts(url: str, split_host: str) -> set[str]:
    """The host as ``urlsplit`` reads it and as aiohttp will connect to it (yarl applies IDNA/NFKC
    mapping: ``１２７.０.０.１`` and ``127。0。0。1`` both become ``127.0.0.1``)."""
    hosts = {split_host}
    try:
        connected = yarl.URL(url).host
    except (ValueError, UnicodeError) as exc:
        raise WebhookUrlError(f"url host cannot be encoded: {exc}") from None
    if connected:
        hosts.add(connected)
    return hosts


def validate_url(url: str, *, allow_private: bool = False) -> str:
    """Return ``url`` if webhooks may be sent to it, else raise ``WebhookUrlError``."""
    if not isinstance(url, str) or len(url) > 2048:
        raise WebhookUrlError("url must be text of at most 2048 characters")
    try:
        parts = urlsplit(url.strip())
        port = parts.port
    except ValueError as exc:
        raise WebhookUrlError(f"url is malformed: {exc}") from None
    if parts.scheme not in ("http", "https"):
        raise WebhookUrlError(f"url must be http:// or https://, got {parts.scheme or 'no'} scheme")
    if not parts.hostname:
        raise WebhookUrlError("url has no host")
    if parts.username is not None or parts.password is not None:
        raise WebhookUrlError("url must not carry credentials; the signature authenticates us")
    if port == 0:
        raise WebhookUrlError("url port must not be 0")
    if not allow_private:
        for host in _hosts(url.strip(), parts.hostname):
            try:
                address = host_address(host)
            except NotAnAddress as exc:
                raise WebhookUrlError(f"url host {exc}") from None
            if address is not None and not is_public_ip(address):
                raise WebhookUrlError(f"url points at a non-public address ({host} is {address})")
            if address is None and is_local_name(host):
                raise WebhookUrlError(f"url points at a local name ({host})")
    return url.strip()


async def check_resolved_url(url: str, *, allow_private: bool = False) -> None:
    """Refuse (``WebhookUrlError``) a URL whose host resolves to a non-public address now.

    Delivery resolves again and connects only to addresses it has checked, so a name
    re-pointed inward later (DNS rebinding) is refused then; this check tells the caller at
    once. A name that does not resolve yet is left to delivery.
    """
    if allow_private:
        return
    parts = urlsplit(url)
    for host in _hosts(url, parts.hostname or ""):
        if host and host_address(host) is None:
            inward = await inward_addresses(host, parts.port or 443)
            if inward:
                raise WebhookUrlError(f"url host {host} resolves to non-public address {inward[0]}")


def validate_event_types(event_types: list[str] | None) -> list[str]:
    if event_types is None:
        return ["*"]
    if not isinstance(event_types, list) or not event_types or len(event_types) > 50:
        raise ValueError("event_types must be a list of 1 to 50 patterns")
    cleaned = []
    for pattern in event_types:
        if not isinstance(pattern, str) or not pattern or len(pattern) > 100 \
                or not set(pattern) <= _EVENT_TYPE_CHARS:
            raise ValueError(f"invalid event type pattern {pattern!r} (lowercase, dots, '*')")
        cleaned.append(pattern)
    return cleaned


def new_secret() -> str:
    return "whsec_" + secrets.token_urlsafe(32)


def _endpoint(row: asyncpg.Record, secret: str | None = None) -> WebhookEndpoint:
    return WebhookEndpoint(
        id=str(row["id"]), org_id=str(row["org_id"]), url=row["url"], event_types=list(row["event_types"]),
        active=row["active"], description=row["description"], created_at=row["created_at"],
        updated_at=row["updated_at"], secret=secret,
    )


async def create_endpoint(
    conn: asyncpg.Connection,
    org_id: str,
    url: str,
    event_types: list[str] | None = None,
    *,
    description: str | None = None,
    allow_private: bool = False,
) -> WebhookEndpoint:
    url = validate_url(url, allow_private=allow_private)
    types = validate_event_types(event_types)
    secret = new_secret()
    row = await conn.fetchrow(
        """
        INSERT INTO webhook_endpoints (org_id, url, secret, event_types, description)
        VALUES ($1, $2, $3, $4, $5) RETURNING *
        """,
        org_id, url, secret, types, description,
    )
    return _endpoint(row, secret)


async def get_endpoint(conn: asyncpg.Connection, org_id: str, endpoint_id: str) -> WebhookEndpoint:
    row = await conn.fetchrow(
        "SELECT * FROM webhook_endpoints WHERE org_id = $1 AND id = $2", org_id, endpoint_id
    )
    if row is None:
        raise WebhookEndpointNotFound(endpoint_id)
    return _endpoint(row)


async def list_endpoints(conn: asyncpg.Connection, org_id: str) -> list[WebhookEndpoint]:
    rows = await conn.fetch(
        "SELECT * FROM webhook_endpoints WHERE org_id = $1 ORDER BY created_at, id", org_id
    )
    return [_endpoint(r) for r in rows]


async def update_endpoint(
    conn: asyncpg.Connection,
    org_id: str,
    endpoint_id: str,
    *,
    url: str | None = None,
    event_types: list[str] | None = None,
    active: bool | None = None,
    description: str | None = None,
    allow_private: bool = False,
) -> WebhookEndpoint:
    row = await conn.fetchrow(
        """
        UPDATE webhook_endpoints SET
            url = coalesce($3, url), event_types = coalesce($4, event_types),
            active = coalesce($5, active), description = coalesce($6, description), updated_at = now()
        WHERE org_id = $1 AND id = $2 RETURNING *
        """,
        org_id, endpoint_id,
        None if url is None else validate_url(url, allow_private=allow_private),
        None if event_types is None else validate_event_types(event_types),
        active, description,
    )
    if row is None:
        raise WebhookEndpointNotFound(endpoint_id)
    return _endpoint(row)


async def rotate_secret(conn: asyncpg.Connection, org_id: str, endpoint_id: str) -> WebhookEndpoint:
    secret = new_secret()
    row = await conn.fetchrow(
        "UPDATE webhook_endpoints SET secret = $3, updated_at = now() WHERE org_id = $1 AND id = $2 RETURNING *",
        org_id, endpoint_id, secret,
    )
    if row is None:
        raise WebhookEndpointNotFound(endpoint_id)
    return _endpoint(row, secret)


async def delete_endpoint(conn: asyncpg.Connection, org_id: str, endpoint_id: str) -> None:
    deleted = await conn.fetchval(
        "DELETE FROM webhook_endpoints WHERE org_id = $1 AND id = $2 RETURNING id", org_id, endpoint_id
    )
    if deleted is None:
        raise WebhookEndpointNotFound(endpoint_id)


async def list_deliveries(
    conn: asyncpg.Connection, org_id: str, endpoint_id: str, *, limit: int = 50
) -> list[dict[str, Any]]:
    """The delivery log of one endpoint, newest first, each with its attempts."""
    rows = await conn.fetch(
        """
        SELECT d.id, d.event_id, d.event_type, d.status, d.attempts, d.next_attempt_at,
               d.response_status, d.last_error, d.delivered_at, d.created_at,
               coalesce((SELECT jsonb_agg(jsonb_build_object(
                   'attempt', a.attempt, 'response_status', a.response_status, 'error', a.error,
                   'duration_ms', a.duration_ms, 'attempted_at', a.attempted_at) ORDER BY a.attempt)
                 FROM webhook_delivery_attempts a WHERE a.delivery_id = d.id), '[]'::jsonb) AS log
        FROM webhook_deliveries d
        WHERE d.org_id = $1 AND d.endpoint_id = $2
        ORDER BY d.created_at DESC, d.id DESC LIMIT $3
        """,
        org_id, endpoint_id, max(1, min(limit, 500)),
    )
    return [dict(r) for r in rows]


async def delivery_attempts(conn: asyncpg.Connection, delivery_ids: list[int]) -> dict[int, list[dict[str, Any]]]:
    """The attempts of each delivery in ``delivery_ids``, oldest first (the log of one page)."""
    if not delivery_ids:
        return {}
    rows = await conn.fetch(
        """
        SELECT delivery_id, attempt, response_status, error, duration_ms, attempted_at
        FROM webhook_delivery_attempts WHERE delivery_id = ANY($1::bigint[])
        ORDER BY delivery_id, attempt
        """,
        delivery_ids,
    )
    log: dict[int, list[dict[str, Any]]] = {i: [] for i in delivery_ids}
    for row in rows:
        entry = dict(row)
        log[entry.pop("delivery_id")].append(entry)
    return log
