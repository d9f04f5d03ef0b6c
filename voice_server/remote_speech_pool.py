"""A media node's speech pool that sends its decodes to speech workers over Redis Streams.

It has the interface ``StreamingTranscriber`` uses (``submit``, ``forget``,
``stats``, ``closed``, ``close``, ``vad_model``), so transcribers work with it
unchanged. Modes (``COACHLINE_STT_REMOTE``):

- ``auto``: remote while a worker's heartbeat is fresh, else the node's own
  pool; a final that gets no reply in time (a worker died mid-decode) is
  decoded locally instead, so no final is lost; a partial that times out is
  dropped (the next one supersedes it anyway).
- ``required``: always remote, no model loaded on the node; finals wait for a
  worker (another worker claims a dead one's requests).
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections import deque
from dataclasses import dataclass
from typing import Literal, Self

import redis.asyncio as aioredis
from redis.exceptions import RedisError

from media.stt.engine import DecodeRequest
from media.stt.pool import PoolClosedError, PoolStats, SpeechModelPool, copy_outcome
from media.vad import SileroVadModel
from voice_server import speech_wire as wire

log = logging.getLogger(__name__)

RemoteMode = Literal["auto", "required"]
_REQUIRED_FINAL_TRIES = 6  # final timeouts a final waits out in required mode before failing


class SpeechWorkersUnavailable(RuntimeError):
    """No speech worker answered (``COACHLINE_STT_REMOTE=required``, no local fallback)."""


@dataclass(slots=True)
class _Pending:
    stream_id: str
    request: DecodeRequest
    final: bool
    future: asyncio.Future
    sent: float  # monotonic
    timeout_at: float  # monotonic
    timeouts: int = 0


@dataclass(frozen=True, slots=True)
class RemoteStats:
    sent: int
    replies: int
    local_fallbacks: int  # finals decoded locally after a remote timeout or error
    local_direct: int  # requests routed locally because no worker was alive
    partials_timed_out: int
    hop_p50_ms: float  # round trip minus the worker's own time (queue + decode)
    hop_p95_ms: float
    worker_alive: bool


class RemoteSpeechPool:
    def __init__(
        self,
        redis: aioredis.Redis,
        node_id: str,
        local: SpeechModelPool | None,
        *,
        mode: RemoteMode = "auto",
        final_timeout_s: float = 5.0,
        partial_timeout_s: float = 1.0,
        vad_model: SileroVadModel | None = None,
    ) -> None:
        if mode == "auto" and local is None:
            raise ValueError("COACHLINE_STT_REMOTE=auto needs a local pool to fall back to")
        self.redis = redis
        self.node_id = node_id
        self._replies = wire.replies_key(node_id)
        self.local = local
        self.mode = mode
        self.final_timeout_s = final_timeout_s
        self.partial_timeout_s = partial_timeout_s
        self.vad_model = vad_model or (local.vad_model if local is not None else SileroVadModel())
        self._pending: dict[str, _Pending] = {}
        self._partial_of: dict[str, str] = {}  # stream id -> request id of its pending partial
        self._tasks: list[asyncio.Task] = []
        self._sends: set[asyncio.Task] = set()
        self._closed = False
        self.worker_alive = False
        self._started: asyncio.Event | None = None
        self._sent = self._replies_n = self._fallbacks = self._direct = self._partial_timeouts = 0
        self._hops: deque[float] = deque(maxlen=2000)
        self._worker_ms: deque[float] = deque(maxlen=2000)

    async def start(self) -> Self:
        """Begin reading replies and watching the workers' heartbeat."""
        # the node id is stable across restarts: replies meant for a previous process are stale
        await self.redis.delete(self._replies)
        await self._check_alive()
        self._tasks = [
            asyncio.create_task(self._read_replies(), name="speech-replies"),
            asyncio.create_task(self._watch(), name="speech-watch"),
        ]
        return self

    # --- the pool interface

    def submit(self, stream_id: str, request: DecodeRequest, *, final: bool) -> asyncio.Future:
        if self._closed:
            raise PoolClosedError("the speech model pool is closed")
        if self.mode == "auto" and not self.worker_alive:
            self._direct += 1
            return self.local.submit(stream_id, request, final=final)
        loop = asyncio.get_running_loop()
        future = loop.create_future()
        if not final:
            older = self._partial_of.pop(stream_id, None)
            if older is not None:
                self._resolve(older, None)
        request_id = uuid.uuid4().hex
        now = time.monotonic()
        timeout = self.final_timeout_s if final else self.partial_timeout_s
        self._pending[request_id] = _Pending(stream_id, request, final, future, now, now + timeout)
        if not final:
            self._partial_of[stream_id] = request_id
        message = wire.encode_request(
            wire.WireRequest(
                request_id,
                self.node_id,
                stream_id,
                final,
                int(1000 * (time.time() + self.partial_timeout_s)),
                request,
            )
        )
        task = loop.create_task(self._send(request_id, message))
        self._sends.add(task)
        task.add_done_callback(self._sends.discard)
        return future

    async def decode(self, stream_id: str, request: DecodeRequest, *, final: bool):
        return await self.submit(stream_id, request, final=final)

    def forget(self, stream_id: str) -> None:
        request_id = self._partial_of.pop(stream_id, None)
        if request_id is not None:
            self._resolve(request_id, None)
        if self.local is not None:
            self.local.forget(stream_id)

    @property
    def closed(self) -> bool:
        return self._closed

    def stats(self) -> PoolStats:
        """The local pool's figures plus what waits on workers (queue lag counts remote waits)."""
        now = time.monotonic()
        finals = sum(1 for p in self._pending.values() if p.final)
        oldest = min((p.sent for p in self._pending.values()), default=None)
        remote_lag = 1000 * (now - oldest) if oldest is not None else 0.0
        hops = sorted(self._hops)
        if self.local is not None:
            base = self.local.stats()
        else:
            base = PoolStats(0.0, 0, 0, 0, 0, 0, 0, 0, 0.0, 0.0, 0.0, 0.0, 0)
        return PoolStats(
            queue_lag_ms=max(base.queue_lag_ms, remote_lag),
            finals_pending=base.finals_pending + finals,
            partials_pending=base.partials_pending + len(self._pending) - finals,
            finals_decoded=base.finals_decoded,
            partials_decoded=base.partials_decoded,
            partials_superseded=base.partials_superseded,
            partials_dropped=base.partials_dropped + self._partial_timeouts,
            batches=base.batches,
            mean_batch_size=base.mean_batch_size,
            busy_seconds=base.busy_seconds,
            wait_p50_ms=base.wait_p50_ms if self.local is not None else _quantile(hops, 0.5),
            wait_p95_ms=base.wait_p95_ms if self.local is not None else _quantile(hops, 0.95),
            decode_errors=base.decode_errors,
        )

    def remote_stats(self) -> RemoteStats:
        hops = sorted(self._hops)
        return RemoteStats(
            self._sent,
            self._replies_n,
            self._fallbacks,
            self._direct,
            self._partial_timeouts,
            _quantile(hops, 0.5),
            _quantile(hops, 0.95),
            self.worker_alive,
        )

    def hop_samples_ms(self) -> list[float]:
        """Recent hops (round trip minus the worker's own time), oldest first."""
        return list(self._hops)

    def worker_samples_ms(self) -> list[float]:
        """The workers' own time (queue + decode) of the same replies."""
        return list(self._worker_ms)

    async def close(self) -> None:
        """Stop waiting on workers: pending finals are decoded locally, then the local pool closes."""
        if self._closed:
            return
        self._closed = True
        # the loops see _closed within one read block: cancelling a blocked redis-py read can
        # leave the task stuck in its cancellation clean-up
        await asyncio.gather(*self._tasks, *self._sends, return_exceptions=True)
        try:
            await self.redis.delete(self._replies)
        except (RedisError, OSError):
            pass  # it expires on its own
        for request_id, pending in list(self._pending.items()):
            if pending.final and self.local is not None:
                self._fall_back(request_id)
            else:
                self._resolve(request_id, None)
        if self.local is not None:
            await self.local.close()

    async def __aenter__(self) -> Self:
        return await self.start()

    async def __aexit__(self, *exc) -> None:
        await self.close()

    # --- internals

    async def _send(self, request_id: str, message: dict) -> None:
        try:
            await self.redis.xadd(
                wire.REQUESTS, message, maxlen=wire.REQUESTS_MAXLEN, approximate=True
            )
            self._sent += 1
        except (RedisError, OSError) as exc:
            log.warning(
                "speech request not sent (%s); decoding on this node", exc.__class__.__name__
            )
            self.worker_alive = False  # until the next heartbeat check says otherwise
            self._time_out(request_id)

    def _resolve(self, request_id: str, value) -> _Pending | None:
        pending = self._pending.pop(request_id, None)
        if pending is None:
            return None
        if not pending.final and self._partial_of.get(pending.stream_id) == request_id:
            del self._partial_of[pending.stream_id]
        if not pending.future.done():
            pending.future.set_result(value)
        return pending

    def _fall_back(self, request_id: str) -> None:
        pending = self._pending.pop(request_id)
        self._fallbacks += 1
        if pending.future.done():  # cancelled by its stream meanwhile
            return
        local = self.local.submit(pending.stream_id, pending.request, final=True)
        local.add_done_callback(lambda d: copy_outcome(d, pending.future))
        pending.future.add_done_callback(lambda f: local.cancel() if f.cancelled() else None)

    def _time_out(self, request_id: str) -> None:
        pending = self._pending.get(request_id)
        if pending is None:
            return
        if pending.final and self.local is not None:
            self._fall_back(request_id)
        elif pending.final and pending.timeouts < _REQUIRED_FINAL_TRIES - 1:
            # required mode: the request stays queued for the next worker (one claims a dead
            # worker's requests), so keep waiting a while
            pending.timeouts += 1
            pending.timeout_at = time.monotonic() + self.final_timeout_s
            log.warning(
                "no speech worker answered a final in %.1f s; still waiting", self.final_timeout_s
            )
        elif pending.final:
            # bounded: a call must still be able to end when no worker ever comes back
            self._pending.pop(request_id)
            if not pending.future.done():
                pending.future.set_exception(
                    SpeechWorkersUnavailable(
                        f"no speech worker answered a final in {_REQUIRED_FINAL_TRIES} x "
                        f"{self.final_timeout_s:.1f} s"
                    )
                )
        else:
            self._partial_timeouts += 1
            self._resolve(request_id, None)

    async def _check_alive(self) -> None:
        try:
            self.worker_alive = bool(await self.redis.exists(wire.ALIVE))
        except (RedisError, OSError):
            self.worker_alive = False

    async def _watch(self) -> None:
        last_check = 0.0
        while not self._closed:
            now = time.monotonic()
            for request_id, pending in list(self._pending.items()):
                if pending.future.done():  # cancelled by its transcriber
                    self._pending.pop(request_id, None)
                elif now >= pending.timeout_at:
                    self._time_out(request_id)
            if now - last_check >= 0.5:
                last_check = now
                await self._check_alive()
                if not self.worker_alive and self.local is not None:
                    # every worker's heartbeat expired: nobody will answer what is pending
                    for request_id in list(self._pending):
                        self._time_out(request_id)
            await asyncio.sleep(0.05)

    async def _read_replies(self) -> None:
        last_id = b"0-0"
        backoff = 0.1
        while not self._closed:
            try:
                reply = await self.redis.xread({self._replies: last_id}, count=100, block=250)
                backoff = 0.1
            except (RedisError, OSError) as exc:
                log.warning("speech replies read failed (%s); retrying", exc.__class__.__name__)
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 5.0)
                continue
            now = time.monotonic()
            done = []
            for _, entries in reply or ():
                for entry_id, fields in entries:
                    last_id = entry_id
                    done.append(entry_id)
                    self._on_reply(fields, now)
            if done:
                try:
                    await self.redis.xdel(self._replies, *done)
                except (RedisError, OSError):
                    pass  # the stream's MAXLEN and TTL bound it anyway

    def _on_reply(self, fields, now: float) -> None:
        try:
            reply = wire.decode_reply(fields)
        except wire.WireError as exc:
            log.warning("dropped a malformed speech reply: %s", exc)
            return
        pending = self._pending.get(reply.request_id)
        if pending is None:  # timed out and decoded locally, or superseded
            return
        self._replies_n += 1
        self._hops.append(max(0.0, 1000 * (now - pending.sent) - reply.worker_ms))
        self._worker_ms.append(reply.worker_ms)
        if reply.error is not None:
            log.warning("speech worker failed a decode (%s)", reply.error)
            if pending.final and self.local is not None:
                self._fall_back(reply.request_id)
                return
            if pending.final:  # required mode: a worker error is an error
                self._pending.pop(reply.request_id)
                if not pending.future.done():
                    pending.future.set_exception(RuntimeError(f"speech worker: {reply.error}"))
                return
        self._resolve(reply.request_id, reply.result)


def _quantile(sorted_values: list[float], q: float) -> float:
    if not sorted_values:
        return 0.0
    return sorted_values[min(len(sorted_values) - 1, int(q * len(sorted_values)))]
