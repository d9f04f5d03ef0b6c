"""Wires call recording into the app: keyring and store, the recorder, its background jobs, the review API.

``setup_recordings(app)`` is the one call ``create_app`` makes. It mounts the
CRM API's recording review and GDPR routes (``crm_core.api.recordings`` and
``crm_core.api.privacy``) with a ``RecordingAccess`` this module fills in. On
start-up it loads the master keys (no key configured: calls are not recorded,
and the review API answers 503), hands the store to the routes, attaches a
recorder to every new call, finishes recordings a dead process left open,
renews this node's open recordings, and purges recordings past their
organization's retention (one node at a time).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable

import asyncpg
from aiohttp import web
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

from crm_core.api.privacy import add_privacy_routes
from crm_core.api.recording_status import add_recording_status_route
from crm_core.api.recordings import (
    RECORDING_ACCESS,
    Authenticate,
    RecordingAccess,
    add_recording_routes,
)
from crm_core.orgs import org_settings
from storage.errors import is_unavailable
from storage.keys import load_keyring
from storage.leases import run_singleton
from storage.recording_store import LocalRecordingStore
from voice_server.app_keys import CALL_SESSIONS, METRICS, RUNTIME, SETTINGS
from voice_server.call_recovery import NODE_IDENTITY
from voice_server.recorder import RecorderOptions, RecordingService
from voice_server.settings import Settings

log = logging.getLogger(__name__)

# The node's recorder, present once a recording key is loaded at start-up.
RECORDINGS = web.AppKey("recordings", RecordingService)


def recording_dir(settings: Settings):
    return settings.recording_dir or settings.data_dir / "recordings"


def build_store(settings: Settings) -> LocalRecordingStore | None:
    """The store for these settings, or None when no master key is configured (KeyringError if malformed)."""
    secret = settings.recording_key.get_secret_value() if settings.recording_key else None
    keyring = load_keyring(secret, settings.recording_key_file, data_dir=recording_dir(settings))
    if keyring is None:
        return None
    return LocalRecordingStore(recording_dir(settings), keyring)


def setup_recordings(app: web.Application, authenticate: Authenticate | None = None) -> None:
    access = RecordingAccess(reps_review_own_default=app[SETTINGS].recording_reps_review_own)
    add_recording_routes(app, access, authenticate)
    add_recording_status_route(app)
    add_privacy_routes(app, access)
    app.cleanup_ctx.append(_recording_lifecycle)


def _unless_org_declines(service: RecordingService, pool_source):
    """The recorder for each call, unless its organization turned recording off
    (``organizations.settings.recording_enabled``). If the setting cannot be read the call is
    recorded, as before there was one: a lost recording cannot be made afterwards."""

    async def recorder_for(session):
        try:
            settings = await asyncio.wait_for(org_settings(pool_source(), session.info.org_id), 2.0)
        except (asyncpg.PostgresError, OSError, TimeoutError) as exc:
            log.warning("call %s: organization settings unreadable (%s); recording it", session.call_id, exc)
            settings = {}
        if settings.get("recording_enabled") is False:
            log.info("call %s not recorded: its organization turned recording off", session.call_id)
            return None
        return service.consumer_for(session)

    return recorder_for


async def _recording_lifecycle(app: web.Application):
    settings: Settings = app[SETTINGS]
    store = build_store(settings) if settings.recording_enabled else None
    if store is None:
        log.warning(
            "call recording is off: set COACHLINE_RECORDING_KEY or COACHLINE_RECORDING_KEY_FILE"
        )
        yield
        return
    runtime = app[RUNTIME]
    identity = app[NODE_IDENTITY]  # claimed by voice_server.call_recovery, which runs first
    service = RecordingService(
        store,
        lambda: runtime.pool,
        RecorderOptions(
            sample_rate=settings.recording_sample_rate,
            chunk_s=settings.recording_chunk_s,
            max_lag_ms=settings.recording_max_lag_ms,
            stall_s=settings.recording_stall_s,
            node_id=identity.node_id,
        ),
    )
    app[RECORDINGS] = service
    app[RECORDING_ACCESS].store = service.store
    app[METRICS].registry.register(_RecordingMetrics(service))
    app[CALL_SESSIONS].consumer_factories.append(_unless_org_declines(service, lambda: runtime.pool))
    stop = asyncio.Event()
    stale_s = settings.recording_stale_s
    try:
        # What the previous process of this node (same node id) left open: finished now, its
        # call marked ended abnormally, instead of after ``stale_s``.
        recovered = await service.recover_abandoned(stale_s, own_node=identity.owns_previous_rows)
        if recovered:
            log.warning("node %s: finished %d recording(s) its previous process left open",
                        identity.node_id, len(recovered))
    except Exception:
        log.exception("could not recover this node's unfinished recordings at start-up")
    jobs = [
        asyncio.create_task(_every(stale_s / 3, service.renew, stop), name="recording-renew"),
        asyncio.create_task(
            _every(0.5, _sync(service.advance_stalled), stop), name="recording-stalls"
        ),
        asyncio.create_task(
            run_singleton(
                runtime.redis,
                "recording-recovery",
                lambda: _recover(service, stale_s),
                every_s=max(1.0, stale_s / 2),
                # outlives the gap between runs, so the holder keeps it instead of racing for it
                ttl_s=max(15.0, stale_s),
                stop=stop,
            ),
            name="recording-recovery",
        ),
        asyncio.create_task(
            run_singleton(
                runtime.redis,
                "recording-retention",
                lambda: service.purge_expired(settings.recording_retention_days),
                every_s=settings.recording_purge_every_s,
                ttl_s=60.0,
                stop=stop,
            ),
            name="recording-retention",
        ),
    ]
    log.info("call recording on: store %s, key id %s, node %s", store.root,
             store.keyring.current_id, identity.node_id)
    try:
        yield
    finally:
        stop.set()
        await service.close()
        for job in jobs:
            job.cancel()
        for job in jobs:
            with contextlib.suppress(asyncio.CancelledError):
                await job


class _RecordingMetrics:
    """Prometheus view of the recorder: live recordings and cumulative outcomes on this node."""

    def __init__(self, service: RecordingService) -> None:
        self._service = service

    def collect(self):
        yield GaugeMetricFamily(
            "coachline_recordings_live",
            "Recordings being written by this node.",
            value=len(self._service.live),
        )
        totals = self._service.totals
        finished = CounterMetricFamily(
            "coachline_recordings_finished", "Recordings finished, by status.", labels=["status"]
        )
        for status in ("complete", "incomplete", "recovered", "purged"):
            finished.add_metric([status], totals[status])
        yield finished
        yield CounterMetricFamily(
            "coachline_recording_bytes", "Plaintext PCM bytes recorded.", value=totals["bytes"]
        )
        yield CounterMetricFamily(
            "coachline_recording_late_samples_dropped",
            "Samples that arrived after their time was written.",
            value=totals["late_samples_dropped"],
        )
        yield CounterMetricFamily(
            "coachline_recording_bytes_replaced_by_silence",
            "Audio replaced by silence because the disk fell behind.",
            value=totals["bytes_replaced_by_silence"],
        )
        yield CounterMetricFamily(
            "coachline_recording_pii_spans_silenced",
            "Card numbers / CVVs silenced in recordings.",
            value=self._service.spans_silenced,
        )


async def _recover(service: RecordingService, stale_s: float) -> None:
    await service.recover_abandoned(stale_s)


def _sync(job: Callable[[], None]) -> Callable[[], Awaitable[None]]:
    async def run() -> None:
        job()

    return run


async def _every(period_s: float, job: Callable[[], Awaitable[None]], stop: asyncio.Event) -> None:
    while not stop.is_set():
        try:
            await job()
        except Exception as exc:
            if not is_unavailable(exc):
                log.exception("recording job failed")
            else:  # retried next period; a traceback each time would bury the cause
                log.warning("recording job skipped, a dependency is unavailable: %s: %s",
                            type(exc).__name__, exc)
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(stop.wait(), period_s)
