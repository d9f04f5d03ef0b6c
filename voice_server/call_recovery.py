"""The node's identity, and ending the calls a dead node was carrying.

``setup_call_recovery(app)`` claims the node id (``voice_server.node_identity``)
before anything can take a call, and hands it to ``CallSessions`` so every call
this node takes media for is marked as carried by it (``crm_core.calls.nodes``).
At start-up, before the node is ready, it ends the calls its previous process
left open under that id (killed mid-call: no session will ever end them), with
or without a recording. While it runs it renews its heartbeat, and one node at
a time (a Redis lease) ends the calls of nodes whose heartbeat went stale.

Each call ended this way is published as ``call.ended`` (abnormal), as if its
session had ended abnormally, so live feeds and the call-event writer see it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

from aiohttp import web

from crm_core.calls import nodes
from crm_core.calls.live_events import CallEndedEvent
from storage.errors import is_unavailable
from storage.events import Event
from storage.leases import run_singleton
from voice_server.app_keys import CALL_SESSIONS, RUNTIME, SETTINGS
from voice_server.node_identity import NodeIdentity, claim_node_identity

log = logging.getLogger(__name__)

NODE_IDENTITY = web.AppKey("node_identity", NodeIdentity)

RESTARTED = "node restarted"
NODE_LOST = "node lost"


def setup_call_recovery(app: web.Application) -> None:
    """Add the lifecycle; it must run before any context that takes calls (the SIP edge)."""
    app.cleanup_ctx.append(_call_recovery_lifecycle)


async def _call_recovery_lifecycle(app: web.Application):
    settings = app[SETTINGS]
    runtime = app[RUNTIME]
    identity = claim_node_identity(settings.node_id, settings.data_dir)
    app[NODE_IDENTITY] = identity
    app[CALL_SESSIONS].node_id = identity.node_id
    stale_s = settings.node_stale_s
    try:
        async with runtime.pool.acquire() as conn:
            await nodes.beat(conn, identity.node_id)
            ended = (
                await nodes.end_calls_of_node(conn, identity.node_id)
                if identity.owns_previous_rows
                else []
            )
        await _announce(app, ended, RESTARTED)
        if ended:
            log.warning(
                "node %s: ended %d call(s) its previous process left open",
                identity.node_id,
                len(ended),
            )
    except Exception:
        log.exception("could not end the calls this node's previous process left open")
    stop = asyncio.Event()
    jobs = [
        asyncio.create_task(
            _every(stale_s / 3, lambda: _beat(app, identity.node_id), stop), name="node-heartbeat"
        ),
        asyncio.create_task(
            run_singleton(
                runtime.redis,
                "call-recovery",
                lambda: _end_dead_nodes_calls(app, identity.node_id, stale_s),
                every_s=max(1.0, stale_s / 2),
                ttl_s=max(15.0, stale_s),
                stop=stop,
            ),
            name="call-recovery",
        ),
    ]
    try:
        yield
    finally:
        stop.set()
        for job in jobs:
            job.cancel()
        for job in jobs:
            with contextlib.suppress(asyncio.CancelledError):
                await job
        identity.release()


async def _beat(app: web.Application, node_id: str) -> None:
    async with app[RUNTIME].pool.acquire() as conn:
        await nodes.beat(conn, node_id)


async def _end_dead_nodes_calls(app: web.Application, node_id: str, stale_s: float) -> None:
    async with app[RUNTIME].pool.acquire() as conn:
        ended = await nodes.end_calls_of_dead_nodes(conn, stale_s, this_node=node_id)
        await nodes.forget_dead_nodes(conn)
    if ended:
        log.warning("ended %d call(s) of node(s) silent for over %.0f s", len(ended), stale_s)
    await _announce(app, ended, NODE_LOST)


async def _announce(app: web.Application, ended, reason: str) -> None:
    """``call.ended`` for each call ended here; the database already holds the end."""
    bus = app[RUNTIME].bus
    if bus is None:
        return
    for row in ended:
        body = {
            "call_id": str(row["id"]),
            **CallEndedEvent(abnormal=True, reason=reason).to_payload(),
        }
        try:
            await bus.publish(Event(CallEndedEvent.event_type, body, org_id=str(row["org_id"])))
        except Exception as exc:  # noqa: BLE001 - the end is recorded; only the notice is lost
            log.warning("could not publish the end of call %s: %s", row["id"], exc)


async def _every(period_s: float, job, stop: asyncio.Event) -> None:
    while not stop.is_set():
        try:
            await job()
        except Exception as exc:
            if not is_unavailable(exc):
                log.exception("node heartbeat failed")
            else:  # retried next period; a traceback each time would bury the cause
                log.warning(
                    "node heartbeat skipped, a dependency is unavailable: %s: %s",
                    type(exc).__name__,
                    exc,
                )
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(stop.wait(), period_s)
