"""Webhooks out: deliver outbox events to the organisations' endpoints, signed and retried.

Two steps, each safe to run on every node at once:

1. **Fan-out.** Outbox rows not yet fanned out are locked with
   ``FOR UPDATE SKIP LOCKED``; each becomes one ``webhook_deliveries`` row per
   active endpoint of its organisation whose patterns match (only endpoints
   that existed when the event was written), and the row is marked
   ``webhooks_fanned_out_at`` in the same transaction. ``UNIQUE (endpoint_id,
   event_id)`` makes a repeat harmless.
2. **Delivery.** Due deliveries are *claimed* in one short transaction
   (``SKIP LOCKED``; status ``delivering``, attempt counted, ``next_attempt_at``
   pushed past the HTTP timeout), then POSTed with no database lock held.
   The outcome is written only if the claim is still ours (same attempt
   number). So two dispatchers never send the same attempt; if a node dies
   mid-request, the claim lapses and another node retries it: delivery is
   at-least-once, and every request carries the event id for de-duplication.

Failures back off exponentially with jitter (honouring a receiver's
``Retry-After`` on 429/503) until ``max_attempts``, then the delivery is
dead-lettered (``status = 'dead'``). Every attempt is logged in
``webhook_delivery_attempts``.
"""

from __future__ import annotations

import asyncio
import json
import logging
import random
import socket
import time
from dataclasses import dataclass
from datetime import datetime
from fnmatch import fnmatchcase
from typing import Any

import aiohttp
import asyncpg
from aiohttp.abc import AbstractResolver, ResolveResult

from crm_core.webhooks.endpoints import WebhookUrlError, is_public_address, validate_url
from crm_core.webhooks.signing import SIGNATURE_HEADER, signature_header

log = logging.getLogger(__name__)

USER_AGENT = "Coachline-Webhooks/1"


@dataclass(frozen=True, slots=True)
class WebhookOptions:
    max_attempts: int = 8
    timeout_s: float = 10.0
    allow_private_urls: bool = False
    base_backoff_s: float = 10.0  # first retry after 5-10 s, then doubling
    max_backoff_s: float = 6 * 3600.0
    batch_size: int = 50
    concurrency: int = 8
    poll_every_s: float = 1.0
    # How long a claim lasts before another node may take the delivery over.
    claim_margin_s: float = 30.0
    max_response_bytes: int = 4096  # of the receiver's body kept in the log


class PrivateAddressRefused(OSError):
    """DNS resolved a webhook host to a non-public address and the settings forbid that."""


class PublicOnlyResolver(AbstractResolver):
    """Resolves like aiohttp's threaded resolver, then refuses any non-public address.

    Checking at connect time (not only when the URL is saved) stops a name
    that is re-pointed at an internal address later (DNS rebinding).
    """

    def __init__(self) -> None:
        self._inner = aiohttp.ThreadedResolver()

    async def resolve(self, host: str, port: int = 0,
                      family: socket.AddressFamily = socket.AF_INET) -> list[ResolveResult]:
        results = await self._inner.resolve(host, port, family)
        for result in results:
            if not is_public_address(result["host"]):
                raise PrivateAddressRefused(f"{host} resolves to non-public address {result['host']}")
        return results

    async def close(self) -> None:
        await self._inner.close()


@dataclass(frozen=True, slots=True)
class ClaimedDelivery:
    id: int
    org_id: str
    endpoint_id: str
    url: str
    secret: str
    endpoint_active: bool
    event_id: str
    event_type: str
    payload: dict[str, Any]
    event_created_at: datetime
    attempt: int


@dataclass(frozen=True, slots=True)
class AttemptOutcome:
    ok: bool
    status: int | None
    error: str | None
    retry_after_s: float | None = None
    final: bool = False  # no point retrying (endpoint removed, URL refused)


def event_body(claim: ClaimedDelivery) -> bytes:
    """The JSON a receiver gets; identical on every attempt (only the signature's time changes)."""
    return json.dumps({
        "id": claim.event_id,
        "type": claim.event_type,
        "created_at": claim.event_created_at.isoformat(),
        "org_id": claim.org_id,
        "data": claim.payload,
    }, separators=(",", ":"), sort_keys=True, default=str).encode()


def backoff_s(attempt: int, options: WebhookOptions, rng: random.Random | None = None) -> float:
    """Delay before attempt ``attempt + 1``: base·2^(attempt-1), capped, with "equal jitter"
    (half fixed, half random) so retries spread out but never come back immediately."""
    ceiling = min(options.max_backoff_s, options.base_backoff_s * 2 ** max(0, attempt - 1))
    return ceiling / 2 + (rng or random).uniform(0, ceiling / 2)


class WebhookDispatcher:
    """Fans outbox events out to endpoints and delivers them. Run one per node."""

    def __init__(self, pool: asyncpg.Pool, options: WebhookOptions | None = None,
                 *, session: aiohttp.ClientSession | None = None) -> None:
        self._pool = pool
        self.options = options or WebhookOptions()
        self._session = session
        self._own_session = session is None
        self._limit = asyncio.Semaphore(self.options.concurrency)

    # -- lifecycle -----------------------------------------------------------------------
    def _client(self) -> aiohttp.ClientSession:
        if self._session is None:
            connector = aiohttp.TCPConnector(
                limit=self.options.concurrency * 2,
                resolver=None if self.options.allow_private_urls else PublicOnlyResolver(),
            )
            self._session = aiohttp.ClientSession(
                connector=connector,
                timeout=aiohttp.ClientTimeout(total=self.options.timeout_s,
                                              connect=min(5.0, self.options.timeout_s)),
                headers={"User-Agent": USER_AGENT},
            )
        return self._session

    async def close(self) -> None:
        if self._own_session and self._session is not None:
            await self._session.close()
            self._session = None

    async def run(self, stop: asyncio.Event) -> None:
        """Fan out and deliver until ``stop`` is set; database errors are logged and retried."""
        while not stop.is_set():
            busy = False
            try:
                fanned = await self.fan_out()
                delivered = await self.deliver_due()
                busy = fanned >= self.options.batch_size or delivered >= self.options.batch_size
            except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError, asyncio.TimeoutError) as exc:
                log.warning("webhook dispatcher: database unavailable: %s", exc)
            except Exception:  # noqa: BLE001 - the loop must outlive any one bad pass
                log.exception("webhook dispatcher pass failed")
            if not busy:
                try:
                    await asyncio.wait_for(stop.wait(), self.options.poll_every_s)
                except asyncio.TimeoutError:
                    pass

    async def run_once(self) -> tuple[int, int]:
        """One fan-out pass and one delivery pass: (deliveries created, attempts made)."""
        return await self.fan_out(), await self.deliver_due()

    # -- step 1: outbox -> deliveries -----------------------------------------------------
    async def fan_out(self) -> int:
        async with self._pool.acquire() as conn, conn.transaction():
            events = await conn.fetch(
                """
                SELECT id, event_id, org_id, type, created_at FROM outbox
                WHERE webhooks_fanned_out_at IS NULL
                ORDER BY id LIMIT $1 FOR UPDATE SKIP LOCKED
                """,
                self.options.batch_size,
            )
            if not events:
                return 0
            org_ids = list({e["org_id"] for e in events if e["org_id"] is not None})
            endpoints = await conn.fetch(
                "SELECT id, org_id, event_types, created_at FROM webhook_endpoints "
                "WHERE active AND org_id = any($1::uuid[])",
                org_ids,
            ) if org_ids else []
            rows = []
            for event in events:
                for endpoint in endpoints:
                    if (endpoint["org_id"] == event["org_id"]
                            and endpoint["created_at"] <= event["created_at"]
                            and _matches(event["type"], endpoint["event_types"])):
                        rows.append((event["org_id"], endpoint["id"], event["id"], event["event_id"],
                                     event["type"]))
            if rows:
                await conn.executemany(
                    """
                    INSERT INTO webhook_deliveries (org_id, endpoint_id, outbox_id, event_id, event_type)
                    VALUES ($1, $2, $3, $4, $5) ON CONFLICT (endpoint_id, event_id) DO NOTHING
                    """,
                    rows,
                )
            await conn.execute(
                "UPDATE outbox SET webhooks_fanned_out_at = now() WHERE id = any($1::bigint[])",
                [e["id"] for e in events],
            )
            return len(rows)

    # -- step 2: deliveries -> HTTP -------------------------------------------------------
    async def claim_due(self) -> list[ClaimedDelivery]:
        claim_s = self.options.timeout_s + self.options.claim_margin_s
        async with self._pool.acquire() as conn:
            rows = await conn.fetch(
                """
                WITH due AS (
                    SELECT id FROM webhook_deliveries
                    WHERE status IN ('pending', 'delivering') AND next_attempt_at <= now()
                    ORDER BY next_attempt_at, id LIMIT $1 FOR UPDATE SKIP LOCKED
                ), claimed AS (
                    UPDATE webhook_deliveries d
                    SET status = 'delivering', attempts = d.attempts + 1, last_attempt_at = now(),
                        next_attempt_at = now() + make_interval(secs => $2)
                    FROM due WHERE d.id = due.id
                    RETURNING d.*
                )
                SELECT c.id, c.org_id, c.endpoint_id, c.event_id, c.event_type, c.attempts,
                       e.url, e.secret, e.active, o.payload, o.created_at AS event_created_at
                FROM claimed c
                JOIN webhook_endpoints e ON e.id = c.endpoint_id
                JOIN outbox o ON o.id = c.outbox_id
                """,
                self.options.batch_size, claim_s,
            )
        return [
            ClaimedDelivery(
                id=r["id"], org_id=str(r["org_id"]), endpoint_id=str(r["endpoint_id"]), url=r["url"],
                secret=r["secret"], endpoint_active=r["active"], event_id=str(r["event_id"]),
                event_type=r["event_type"], payload=r["payload"] if isinstance(r["payload"], dict)
                else json.loads(r["payload"]), event_created_at=r["event_created_at"],
                attempt=r["attempts"],
            )
            for r in rows
        ]

    async def deliver_due(self) -> int:
        claims = await self.claim_due()
        results = await asyncio.gather(*(self._deliver_and_record(c) for c in claims),
                                       return_exceptions=True)
        for claim, result in zip(claims, results):
            if isinstance(result, Exception):
                # The outcome was not stored: the claim lapses and the delivery is retried.
                log.warning("webhook delivery %s: could not record attempt %d: %s",
                            claim.id, claim.attempt, result)
        return len(claims)

    async def _deliver_and_record(self, claim: ClaimedDelivery) -> None:
        async with self._limit:
            started = time.perf_counter()
            outcome = await self.attempt(claim)
            duration_ms = int((time.perf_counter() - started) * 1000)
        await self._record(claim, outcome, duration_ms)

    async def attempt(self, claim: ClaimedDelivery) -> AttemptOutcome:
        """One HTTP POST of ``claim``; never raises for anything the receiver does."""
        if not claim.endpoint_active:
            return AttemptOutcome(False, None, "endpoint disabled", final=True)
        try:
            validate_url(claim.url, allow_private=self.options.allow_private_urls)
        except WebhookUrlError as exc:
            return AttemptOutcome(False, None, f"url refused: {exc}", final=True)
        body = event_body(claim)
        headers = {
            "Content-Type": "application/json",
            SIGNATURE_HEADER: signature_header(claim.secret, body),
            "Coachline-Event-Id": claim.event_id,
            "Coachline-Event-Type": claim.event_type,
            "Coachline-Delivery-Id": str(claim.id),
            "Coachline-Delivery-Attempt": str(claim.attempt),
        }
        try:
            async with self._client().post(claim.url, data=body, headers=headers,
                                           allow_redirects=False) as response:
                text = await response.content.read(self.options.max_response_bytes)
                if 200 <= response.status < 300:
                    return AttemptOutcome(True, response.status, None)
                return AttemptOutcome(
                    False, response.status,
                    f"HTTP {response.status}: {text.decode('utf-8', 'replace')[:200]}",
                    retry_after_s=_retry_after(response),
                )
        except asyncio.TimeoutError:
            return AttemptOutcome(False, None, f"timed out after {self.options.timeout_s:g} s")
        except aiohttp.ClientError as exc:
            cause = exc.__cause__ or getattr(exc, "os_error", None)
            return AttemptOutcome(False, None, f"{type(exc).__name__}: {cause or exc}"[:500])
        except (OSError, ValueError) as exc:  # sockets and URL parsing outside aiohttp's wrapping
            return AttemptOutcome(False, None, f"{type(exc).__name__}: {exc}"[:500])

    async def _record(self, claim: ClaimedDelivery, outcome: AttemptOutcome, duration_ms: int) -> None:
        if outcome.ok:
            status, delay = "succeeded", 0.0
        elif outcome.final or claim.attempt >= self.options.max_attempts:
            status, delay = "dead", 0.0
        else:
            status = "pending"
            delay = backoff_s(claim.attempt, self.options)
            if outcome.retry_after_s is not None:
                delay = min(self.options.max_backoff_s, max(delay, outcome.retry_after_s))
        async with self._pool.acquire() as conn, conn.transaction():
            updated = await conn.fetchval(
                """
                UPDATE webhook_deliveries
                SET status = $3, response_status = $4, last_error = $5,
                    next_attempt_at = now() + make_interval(secs => $6),
                    delivered_at = CASE WHEN $3 = 'succeeded' THEN now() ELSE delivered_at END
                WHERE id = $1 AND attempts = $2 AND status = 'delivering'
                RETURNING id
                """,
                claim.id, claim.attempt, status, outcome.status, outcome.error, delay,
            )
            await conn.execute(
                """
                INSERT INTO webhook_delivery_attempts (delivery_id, attempt, response_status, error, duration_ms)
                VALUES ($1, $2, $3, $4, $5)
                """,
                claim.id, claim.attempt, outcome.status, outcome.error, duration_ms,
            )
        if updated is None:
            log.warning("webhook delivery %s attempt %s finished after its claim lapsed",
                        claim.id, claim.attempt)
        elif status == "dead":
            log.warning("webhook delivery %s to %s dead-lettered after %d attempts: %s",
                        claim.id, claim.url, claim.attempt, outcome.error)


def _matches(event_type: str, patterns: list[str]) -> bool:
    return any(fnmatchcase(event_type, p) for p in patterns)


def _retry_after(response: aiohttp.ClientResponse) -> float | None:
    if response.status not in (429, 503):
        return None
    value = response.headers.get("Retry-After", "")
    return float(value) if value.isdigit() else None
