"""One live call: where a carrier edge's audio and events meet the rest of Coachline.

A transport (Twilio, Vonage, SIP) opens a ``CallSession`` through the app's
``CallSessions`` and pushes ``AudioFrame``s per party and DTMF digits into
it. The session hands frames to its audio consumers (the transcriber, the
recorder, …) and publishes the call's events on the bus (the records of
crm_core/calls/live_events.py). The call's recorder, when it has one, is
also held by name as ``session.recorder``.

``push_audio`` is on the media hot path: it is synchronous and consumers
must only queue work, never block.
"""

from __future__ import annotations

import inspect
import logging
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

from crm_core.calls.live_events import (
    CallDtmfEvent,
    CallEndedEvent,
    CallStartedEvent,
    LiveEvent,
)
from media.frames import AudioFrame
from storage.events import Event, EventBus
from voice_server.live_calls import LiveCalls
from voice_server.logs import call_id_var
from voice_server.publish_outage import PublishOutage

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class CallInfo:
    call_id: str
    org_id: str
    carrier: str
    direction: str
    external_id: str | None = None
    rep_id: str | None = None
    lead_id: str | None = None
    deal_id: str | None = None


class AudioConsumer(Protocol):
    def on_audio(self, frame: AudioFrame) -> None: ...

    def on_dtmf(self, digit: str, at_ms: int, duration_ms: int) -> None: ...

    async def close(self, abnormal: bool) -> None: ...


class Recorder(AudioConsumer, Protocol):
    """The consumer that records the call; the live path asks it to silence PII spans."""

    def silence_redacted(self, spans: list[Any]) -> None: ...


@dataclass
class CallStats:
    frames: Counter = field(default_factory=Counter)
    samples: Counter = field(default_factory=Counter)
    dtmf: list[tuple[str, int]] = field(default_factory=list)


class CallSession:
    def __init__(self, info: CallInfo, bus: EventBus, consumers: list[AudioConsumer] | None = None,
                 outage: PublishOutage | None = None) -> None:
        self.info = info
        self._bus = bus
        # Shared by the node's sessions, so an outage is logged once, not once per call.
        self._outage = outage or PublishOutage()
        self.consumers: list[AudioConsumer] = list(consumers or [])
        # The recording consumer among ``consumers``, set by the recording service's factory.
        self.recorder: Recorder | None = None
        self.stats = CallStats()
        self.started_at = time.time()
        self.ended = False

    @property
    def call_id(self) -> str:
        return self.info.call_id

    def push_audio(self, frame: AudioFrame) -> None:
        if self.ended:
            return
        self.stats.frames[frame.party] += 1
        self.stats.samples[frame.party] += len(frame.pcm)
        for consumer in self.consumers:
            try:
                consumer.on_audio(frame)
            except Exception:  # one broken consumer must not take the call down
                log.exception("audio consumer %s failed", type(consumer).__name__)

    async def push_dtmf(self, digit: str, at_ms: int, duration_ms: int = 0) -> None:
        if self.ended:
            return
        self.stats.dtmf.append((digit, at_ms))
        for consumer in self.consumers:
            try:
                consumer.on_dtmf(digit, at_ms, duration_ms)
            except Exception:
                log.exception("dtmf consumer %s failed", type(consumer).__name__)
        await self.emit(CallDtmfEvent(digit, at_ms, duration_ms))

    async def emit(self, event: LiveEvent) -> None:
        """Publish one live event of this call."""
        await self.publish(event.event_type, event.to_payload())

    async def publish(self, event_type: str, payload: dict) -> None:
        body = {"call_id": self.info.call_id, **payload}
        try:
            await self._bus.publish(Event(event_type, body, org_id=self.info.org_id))
        except Exception as exc:  # noqa: BLE001 - logged by the outage (a bug with its traceback)
            # The bus being down must not end the call; what matters is persisted elsewhere.
            self._outage.failed(event_type, exc)
        else:
            self._outage.succeeded()

    async def end(self, *, abnormal: bool = False, reason: str = "") -> None:
        if self.ended:
            return
        self.ended = True
        for consumer in self.consumers:
            try:
                await consumer.close(abnormal)
            except Exception:
                log.exception("closing consumer %s failed", type(consumer).__name__)
        await self.emit(CallEndedEvent(
            abnormal=abnormal, reason=reason,
            samples={str(p): n for p, n in self.stats.samples.items()},
        ))


# A factory may be async (e.g. it reads the organization's settings first).
ConsumerFactory = Callable[[CallSession], "AudioConsumer | None | Awaitable[AudioConsumer | None]"]


class CallSessions:
    """The live calls of this node; opening one registers it, ending it unregisters it."""

    def __init__(self, bus_source: Callable[[], EventBus], live: LiveCalls) -> None:
        self._bus_source = bus_source
        self._live = live
        self._sessions: dict[str, CallSession] = {}
        self.publish_outage = PublishOutage()
        # The id this node writes on the calls it takes media for (set at start-up, see
        # voice_server.call_recovery): if the node dies, the calls naming it are ended.
        self.node_id: str | None = None
        # Called for every new session; each may return a consumer to attach
        # (transcription, recording, tests' observers).
        self.consumer_factories: list[ConsumerFactory] = []

    def get(self, call_id: str) -> CallSession | None:
        return self._sessions.get(call_id)

    def __len__(self) -> int:
        return len(self._sessions)

    async def open(self, info: CallInfo) -> CallSession:
        if info.call_id in self._sessions:
            return self._sessions[info.call_id]
        session = CallSession(info, self._bus_source(), outage=self.publish_outage)
        for factory in self.consumer_factories:
            try:
                consumer = factory(session)
                if inspect.isawaitable(consumer):
                    consumer = await consumer
            except Exception:  # a call without transcription is better than no call
                log.exception("consumer factory %s failed for call %s",
                              getattr(factory, "__name__", factory), info.call_id)
                continue
            if consumer is not None:
                session.consumers.append(consumer)
        self._sessions[info.call_id] = session
        self._live.add(info.call_id)
        token = call_id_var.set(info.call_id)
        try:
            log.info("call started (%s %s)", info.carrier, info.direction)
        finally:
            call_id_var.reset(token)
        await session.emit(CallStartedEvent(info.carrier, info.direction, info.rep_id, info.lead_id))
        return session

    async def close(self, call_id: str, *, abnormal: bool = False, reason: str = "") -> None:
        session = self._sessions.pop(call_id, None)
        if session is None:
            return
        try:
            await session.end(abnormal=abnormal, reason=reason)
        finally:
            self._live.discard(call_id)

    async def close_all(self, reason: str) -> None:
        for call_id in list(self._sessions):
            await self.close(call_id, abnormal=True, reason=reason)


