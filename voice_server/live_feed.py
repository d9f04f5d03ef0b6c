"""Live call events pushed to browsers over WebSocket.

One ``LiveFeedHub`` per node reads the event bus once (a fan-out
subscription) and routes each call's events to the sockets watching it, so a
rep connected to node A sees a call whose media lands on node B. Routes:

* ``GET /ws/live`` — the signed-in rep's own calls: a call appears by itself
  when it starts (``call.started``), then its transcript and prompts follow;
* ``GET /ws/calls/{call_id}`` — one call, for whoever may view it;
* ``GET /ws/floor`` — the live floor of a manager (their teams' calls) or an admin (the
  organization's): each call in progress as a ``floor.call`` card (rep, customer, elapsed
  time), then only what the floor shows of it (talk metrics, sentiment, prompts) until its
  ``call.ended``. Transcripts are not sent there; a manager opens ``/ws/calls/{call_id}`` to
  listen in on one call.

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
    INSIGHT_CHECKLIST,
    INSIGHT_METRICS,
    INSIGHT_SENTIMENT,
    INSIGHT_SUMMARY,
    TRANSCRIPT_FINAL,
    TRANSCRIPT_PARTIAL,
)
from storage.events import Event, EventBus

log = logging.getLogger(__name__)

FEED_PATTERNS = ALL_PATTERNS
# A rep who reloads mid-call (or just after it) gets the checklist and the summary back too.
_SNAPSHOT_TYPES = (CALL_STARTED, TRANSCRIPT_FINAL, COACHING_PROMPT, INSIGHT_METRICS,
                   INSIGHT_SENTIMENT, INSIGHT_CHECKLIST, INSIGHT_SUMMARY, CALL_ENDED)
_SNAPSHOT_LEN = 400
_QUEUE_LEN = 500
_SEEN_IDS = 20_000
_ENDED_CALLS_KEPT = 200
# What the floor shows of a call; the latest of each is replayed when a call joins a floor.
_FLOOR_TYPES = frozenset((INSIGHT_METRICS, INSIGHT_SENTIMENT, COACHING_PROMPT, CALL_ENDED))


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

    def may_use_floor(self, viewer: Viewer) -> bool: ...

    async def floor_of(self, viewer: Viewer) -> list[dict]:
        """The cards of the calls in progress this viewer may see on the floor."""
        ...

    async def floor_card(self, call_id: str, org_id: str) -> dict | None:
        """One call's card if it is in progress (for any viewer of its organization)."""
        ...

    def on_floor(self, viewer: Viewer, card: dict) -> bool: ...


# eq=False: watchers live in a set, by identity (a generated __eq__ would make them unhashable)
@dataclass(eq=False)
class _Watcher:
    ws: web.WebSocketResponse
    viewer: Viewer
    own_calls_only: bool
    floor: bool = False
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
        self._announcing: set[asyncio.Task] = set()
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
        tasks = [*self._tasks, *self._announcing]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
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
            if any(w.floor and w.viewer.org_id == ref.org_id for w in self._watchers):
                self._announce_later(call_id, ref.org_id)
        message = _message(event)
        if event.type in _SNAPSHOT_TYPES:
            self._snapshots.setdefault(call_id, deque(maxlen=_SNAPSHOT_LEN)).append(message)
        for watcher in self._watchers:
            if call_id in watcher.call_ids:
                if watcher.floor and event.type not in _FLOOR_TYPES:
                    continue
                watcher.offer(message)
                self.delivered += 1
        if event.type == CALL_ENDED:
            for watcher in self._watchers:
                if watcher.floor:
                    watcher.call_ids.discard(call_id)  # it has left the floor
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

    # -- the floor ------------------------------------------------------------------------------

    def _announce_later(self, call_id: str, org_id: str | None) -> None:
        """Put a call that has just started on the floors that may see it (its card needs the
        database, so it is looked up off the routing path)."""
        if org_id is None:
            return
        task = asyncio.create_task(self._announce(call_id, org_id), name=f"floor:{call_id}")
        self._announcing.add(task)
        task.add_done_callback(self._announcing.discard)

    async def _announce(self, call_id: str, org_id: str) -> None:
        try:
            card = await self._access.floor_card(call_id, org_id)
        except Exception:
            # the floor's watchers see the call when they next connect; the call goes on
            log.warning("live floor could not look up call %s", call_id, exc_info=True)
            return
        if card is None:
            return
        for watcher in list(self._watchers):
            if watcher.floor and self._access.on_floor(watcher.viewer, card):
                self._join_floor(watcher, card)

    def _join_floor(self, watcher: _Watcher, card: dict) -> None:
        """Show a call on one floor: its card, then the latest of what the floor shows of it.

        Runs without awaiting, so no event of the call can slip between the replay and the
        live events that follow it.
        """
        call_id = card["call_id"]
        if call_id in watcher.call_ids:
            return
        snapshot = list(self._snapshots.get(call_id, ()))
        if any(m["type"] == CALL_ENDED for m in snapshot):
            return  # it ended while its card was looked up
        watcher.call_ids.add(call_id)
        public = {k: v for k, v in card.items() if k != "org_id"}
        watcher.offer({"type": "floor.call", "call_id": call_id, "card": public})
        latest: dict[tuple, dict] = {}
        for message in snapshot:
            if message["type"] in _FLOOR_TYPES:
                latest[(message["type"], message.get("party"))] = message
        for message in sorted(latest.values(), key=lambda m: m["at"]):
            watcher.offer({**message, "replay": True})

    async def handle_floor(self, request: web.Request) -> web.StreamResponse:
        viewer = await self._access.viewer(request)
        if viewer is None:
            raise web.HTTPUnauthorized(text=json.dumps({"error": {"code": "unauthenticated",
                                       "message": "sign in or send a valid token"}}),
                                       content_type="application/json")
        if not self._access.may_use_floor(viewer):
            raise web.HTTPForbidden(text=json.dumps({"error": {
                "code": "forbidden", "message": "the live floor is for managers and admins"}}),
                content_type="application/json")
        ws = web.WebSocketResponse(heartbeat=20, max_msg_size=64 * 1024)
        await ws.prepare(request)
        # Watch before listing: a call that starts while the list is read is announced to this
        # floor too (``_join_floor`` shows each call once).
        watcher = _Watcher(ws, viewer, own_calls_only=False, floor=True)
        self._watchers.add(watcher)
        sender = asyncio.create_task(self._send_loop(watcher))
        try:
            for card in await self._access.floor_of(viewer):
                self._join_floor(watcher, card)
            watcher.offer({"type": "feed.ready", "calls": sorted(watcher.call_ids)})
            async for _msg in ws:
                pass  # the floor is read-only
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
