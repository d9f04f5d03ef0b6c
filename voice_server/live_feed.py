"""Live call events pushed to browsers over WebSocket.

One ``LiveFeedHub`` per node reads the event bus once (a fan-out
subscription) and routes each call's events to the sockets watching it, so a
rep connected to node A sees a call whose media lands on node B. Routes:

* ``GET /ws/live`` — the signed-in rep's own calls: a call appears by itself
  when it starts (``call.started``), then its transcript and prompts follow;
* ``GET /ws/calls/{call_id}`` — one call, for whoever may view it.

Each socket has a bounded queue: a browser that cannot keep up loses
partial transcripts first and is disconnected (close code 1013) rather than
letting memory grow; it reconnects and receives a snapshot of the call so far.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections import OrderedDict, deque
from dataclasses import dataclass, field
from typing import Protocol

from aiohttp import WSCloseCode, web

from crm_core.calls.live_events import (
    ALL_PATTERNS,
    CALL_ENDED,
    CALL_STARTED,
    COACHING_PROMPT,
    INSIGHT_METRICS,
    INSIGHT_SENTIMENT,
    TRANSCRIPT_FINAL,
    TRANSCRIPT_PARTIAL,
)
from storage.events import Event, EventBus

log = logging.getLogger(__name__)

FEED_PATTERNS = ALL_PATTERNS
_SNAPSHOT_TYPES = (CALL_STARTED, TRANSCRIPT_FINAL, COACHING_PROMPT, INSIGHT_METRICS,
                   INSIGHT_SENTIMENT, CALL_ENDED)
_SNAPSHOT_LEN = 400
_QUEUE_LEN = 500
_SEEN_IDS = 20_000
_ENDED_CALLS_KEPT = 200


@dataclass(frozen=True, slots=True)
class Viewer:
    user_id: str
    org_id: str
    role: str  # rep | manager | admin
    team_id: str | None = None


@dataclass(frozen=True, slots=True)
class CallRef:
    call_id: str
    org_id: str | None
    rep_id: str | None


class FeedAccess(Protocol):
    """Who is asking, and whether they may watch a call (the CRM's rules)."""

    async def viewer(self, request: web.Request) -> Viewer | None: ...

    async def may_watch(self, viewer: Viewer, call: CallRef) -> bool: ...

    async def live_calls_of(self, viewer: Viewer) -> list[CallRef]: ...


# eq=False: watchers live in a set, by identity (a generated __eq__ would make them unhashable)
@dataclass(eq=False)
class _Watcher:
    ws: web.WebSocketResponse
    viewer: Viewer
    own_calls_only: bool
    call_ids: set[str] = field(default_factory=set)
    queue: asyncio.Queue = field(default_factory=lambda: asyncio.Queue(_QUEUE_LEN))
    overflowed: bool = False

    def offer(self, message: dict) -> None:
        if self.overflowed:
            return
        try:
            self.queue.put_nowait(message)
        except asyncio.QueueFull:
            if message["type"] == TRANSCRIPT_PARTIAL:
                return  # partials are superseded by finals; dropping them is harmless
            self.overflowed = True


# Raw (unmasked) transcript text never goes to a browser feed; it is read
# through the REST API by those with the right to see it.
_PRIVATE_FIELDS = ("text_raw",)


def _message(event: Event) -> dict:
    payload = {k: v for k, v in event.payload.items() if k not in _PRIVATE_FIELDS}
    return {"type": event.type, "id": event.id, "at": event.occurred_at, **payload}


class LiveFeedHub:
    def __init__(self, bus: EventBus, access: FeedAccess) -> None:
        self._bus = bus
        self._access = access
        self._calls: dict[str, CallRef] = {}
        self._snapshots: dict[str, deque] = {}
        self._ended: deque[str] = deque()
        self._watchers: set[_Watcher] = set()
        self._seen: OrderedDict[str, None] = OrderedDict()
        self._tasks: list[asyncio.Task] = []
        self._subs: list = []
        self.delivered = 0

    async def start(self) -> None:
        for pattern in FEED_PATTERNS:
            sub = await self._bus.subscribe(pattern)
            self._subs.append(sub)
            self._tasks.append(asyncio.create_task(self._pump(sub), name=f"live-feed:{pattern}"))

    async def close(self) -> None:
        for sub in self._subs:
            await sub.close()
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        for watcher in list(self._watchers):
            await watcher.ws.close(code=WSCloseCode.GOING_AWAY, message=b"server shutting down")

    async def _pump(self, sub) -> None:
        async for delivery in sub:
            try:
                self.route(delivery.event)
            except Exception:
                log.exception("live feed could not route %s", delivery.event.type)

    def route(self, event: Event) -> None:
        if event.id in self._seen:
            return  # at-least-once delivery: the same event may come twice
        self._seen[event.id] = None
        if len(self._seen) > _SEEN_IDS:
            self._seen.popitem(last=False)
        call_id = event.payload.get("call_id")
        if not call_id:
            return
        if event.type == CALL_STARTED:
            ref = CallRef(call_id, event.org_id, event.payload.get("rep_id"))
            self._calls[call_id] = ref
            for watcher in self._watchers:
                if (watcher.own_calls_only and ref.rep_id == watcher.viewer.user_id
                        and ref.org_id == watcher.viewer.org_id):
                    watcher.call_ids.add(call_id)
        message = _message(event)
        if event.type in _SNAPSHOT_TYPES:
            self._snapshots.setdefault(call_id, deque(maxlen=_SNAPSHOT_LEN)).append(message)
        for watcher in self._watchers:
            if call_id in watcher.call_ids:
                watcher.offer(message)
                self.delivered += 1
        if event.type == CALL_ENDED:
            self._ended.append(call_id)
            while len(self._ended) > _ENDED_CALLS_KEPT:
                old = self._ended.popleft()
                self._snapshots.pop(old, None)
                self._calls.pop(old, None)

    async def handle_own_calls(self, request: web.Request) -> web.StreamResponse:
        return await self._serve(request, call_id=None)

    async def handle_one_call(self, request: web.Request) -> web.StreamResponse:
        return await self._serve(request, call_id=request.match_info["call_id"])

    async def _serve(self, request: web.Request, call_id: str | None) -> web.StreamResponse:
        viewer = await self._access.viewer(request)
        if viewer is None:
            raise web.HTTPUnauthorized(text=json.dumps({"error": {"code": "unauthenticated",
                                       "message": "sign in or send a valid token"}}),
                                       content_type="application/json")
        refs: list[CallRef]
        if call_id is None:
            refs = await self._access.live_calls_of(viewer)
        else:
            ref = self._calls.get(call_id) or CallRef(call_id, None, None)
            if not await self._access.may_watch(viewer, ref):
                # The same answer as for a call that does not exist: no probing for ids.
                raise web.HTTPNotFound(text=json.dumps({"error": {"code": "not_found",
                                       "message": "no such call"}}), content_type="application/json")
            refs = [ref]
        ws = web.WebSocketResponse(heartbeat=20, max_msg_size=64 * 1024)
        await ws.prepare(request)
        watcher = _Watcher(ws, viewer, own_calls_only=call_id is None,
                           call_ids={r.call_id for r in refs})
        self._watchers.add(watcher)
        sender = asyncio.create_task(self._send_loop(watcher))
        try:
            for ref in refs:
                for message in list(self._snapshots.get(ref.call_id, ())):
                    watcher.offer({**message, "replay": True})
            await ws.send_json({"type": "feed.ready", "calls": sorted(watcher.call_ids)})
            async for _msg in ws:
                pass  # the feed is one-way; pings are handled by aiohttp
        finally:
            self._watchers.discard(watcher)
            sender.cancel()
            await asyncio.gather(sender, return_exceptions=True)
        return ws

    async def _send_loop(self, watcher: _Watcher) -> None:
        ws = watcher.ws
        try:
            while not ws.closed:
                if watcher.overflowed:
                    await ws.close(code=WSCloseCode.TRY_AGAIN_LATER, message=b"too slow; reconnect")
                    return
                message = await watcher.queue.get()
                await ws.send_json(message)
        except (ConnectionResetError, RuntimeError):
            pass
