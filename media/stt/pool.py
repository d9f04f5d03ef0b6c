"""One speech engine shared by every live call, and the scheduler that decides what it decodes next.

Decoding is CPU-heavy, so it runs on a small thread pool (one worker by
default: CTranslate2 already uses every core for one batch), never on the
event loop.  The scheduler:

- serves finals before partials, oldest first, batching up to
  ``max_batch`` of them into one encoder/decoder call (a batch of four
  short utterances costs far less than four separate decodes);
- keeps at most one pending partial per stream: a newer partial replaces
  the older one, whose caller gets ``None`` (it would be stale anyway);
- drops partials that waited longer than ``max_partial_wait_ms``, so
  under load calls get fewer partials but every final is decoded;
- reports its queue lag (how long the oldest pending request has waited)
  in ``stats()`` for the server's metrics.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from typing import Self

from media.stt.decoder import DecoderOptions, WhisperDecoder
from media.stt.engine import DecodeRequest, DecodeResult, SpeechDecoder
from media.stt.models import DEFAULT_MODEL, locate_model
from media.vad import SileroVadModel

log = logging.getLogger(__name__)


class PoolClosedError(RuntimeError):
    """A request was made to a pool that has been closed."""


def cpu_parallelism(cores: int, workers: int = 0, threads: int = 0) -> tuple[int, int]:
    """(decode workers, CTranslate2 threads per worker) for ``cores`` CPU cores; 0 means "choose".

    Several single-threaded decodes side by side beat one decode spread over every core for a
    small model: on 2 cores, 2 workers x 1 thread gave 82-99 ms per utterance of throughput and
    157-185 ms CPU against 147 ms and 245 ms for 1 x 2 (less time lost syncing threads), and in
    the stt bench a final p95 of 593 ms against 889 ms for one call. So by default there is one
    worker per core, up to 4 (each holds its own copy of the model), sharing the cores between
    them."""
    cores = max(1, cores)
    workers = workers or min(cores, 4)
    threads = threads or max(1, cores // workers)
    return workers, threads


@dataclass(frozen=True, slots=True)
class PoolOptions:
    workers: int = 1  # decode threads; >1 only helps with a GPU or many cores
    max_batch: int = 4  # finals per encoder/decoder call
    max_partial_batch: int = 2  # partials per call: small, so a final arriving meanwhile waits less
    max_partial_wait_ms: int = 1000  # older partial requests are dropped, not decoded


@dataclass(frozen=True, slots=True)
class PoolStats:
    queue_lag_ms: float  # age of the oldest request still waiting now
    finals_pending: int
    partials_pending: int
    finals_decoded: int
    partials_decoded: int
    partials_superseded: int  # replaced by a newer partial of the same stream before decoding
    partials_dropped: int  # waited too long (load shedding)
    batches: int
    mean_batch_size: float
    busy_seconds: float  # wall time spent decoding
    wait_p50_ms: float  # queue wait of recently dispatched finals
    wait_p95_ms: float
    decode_errors: int


@dataclass(slots=True)
class _Job:
    stream_id: str
    request: DecodeRequest
    final: bool
    future: asyncio.Future
    submitted: float


class SpeechModelPool:
    """Construct once per server; share with every ``StreamingTranscriber``.

    ``decoder`` is any ``SpeechDecoder``; ``from_model`` builds the Whisper one.

    Must be used from one event loop (the server's); ``submit`` is
    synchronous so the audio hot path can call it.
    """

    def __init__(
        self,
        decoder: SpeechDecoder,
        options: PoolOptions | None = None,
        *,
        vad_model: SileroVadModel | None = None,
    ):
        self.decoder = decoder
        self.options = options or PoolOptions()
        if self.options.workers < 1 or self.options.max_batch < 1:
            raise ValueError("PoolOptions.workers and max_batch must be at least 1")
        self.vad_model = vad_model or SileroVadModel()
        self._executor = ThreadPoolExecutor(self.options.workers, thread_name_prefix="stt-decode")
        self._finals: deque[_Job] = deque()
        self._partials: dict[str, _Job] = {}
        self._wakeup: asyncio.Event | None = None
        self._runners: list[asyncio.Task] = []
        self._closed = False
        self._finals_decoded = self._partials_decoded = 0
        self._superseded = self._dropped = self._errors = 0
        self._batches = self._batched_items = 0
        self._busy = 0.0
        self._waits: deque[float] = deque(maxlen=500)

    @classmethod
    def from_model(
        cls,
        name: str = DEFAULT_MODEL,
        *,
        decoder_options: DecoderOptions | None = None,
        options: PoolOptions | None = None,
    ) -> SpeechModelPool:
        """Load a packaged model (``tiny.en``, ``base``) or a CTranslate2 directory; takes ~1 s."""
        options = options or PoolOptions()
        decoder_options = decoder_options or DecoderOptions()
        if decoder_options.num_workers < options.workers:
            # each pool worker needs its own CTranslate2 worker, or their decodes queue inside it
            decoder_options = replace(decoder_options, num_workers=options.workers)
        return cls(WhisperDecoder(locate_model(name), decoder_options), options)

    def submit(self, stream_id: str, request: DecodeRequest, *, final: bool) -> asyncio.Future:
        """Queue a decode; the future gets a ``DecodeResult``, or ``None`` for a dropped partial."""
        if self._closed:
            raise PoolClosedError("the speech model pool is closed")
        loop = asyncio.get_running_loop()
        self._start(loop)
        job = _Job(stream_id, request, final, loop.create_future(), time.monotonic())
        if final:
            self._finals.append(job)
        else:
            older = self._partials.pop(stream_id, None)
            if older is not None:
                self._superseded += 1
                _resolve(older.future, None)
            self._partials[stream_id] = job
        self._wakeup.set()
        return job.future

    async def decode(self, stream_id: str, request: DecodeRequest, *, final: bool) -> DecodeResult | None:
        return await self.submit(stream_id, request, final=final)

    def forget(self, stream_id: str) -> None:
        """Drop a closing stream's pending partial (its finals are still decoded)."""
        job = self._partials.pop(stream_id, None)
        if job is not None:
            _resolve(job.future, None)

    @property
    def closed(self) -> bool:
        return self._closed

    def stats(self) -> PoolStats:
        now = time.monotonic()
        oldest = [j.submitted for j in self._finals if not j.future.done()]
        oldest += [j.submitted for j in self._partials.values()]
        waits = sorted(self._waits)
        return PoolStats(
            queue_lag_ms=1000 * (now - min(oldest)) if oldest else 0.0,
            finals_pending=len(self._finals),
            partials_pending=len(self._partials),
            finals_decoded=self._finals_decoded,
            partials_decoded=self._partials_decoded,
            partials_superseded=self._superseded,
            partials_dropped=self._dropped,
            batches=self._batches,
            mean_batch_size=self._batched_items / self._batches if self._batches else 0.0,
            busy_seconds=self._busy,
            wait_p50_ms=_quantile(waits, 0.5),
            wait_p95_ms=_quantile(waits, 0.95),
            decode_errors=self._errors,
        )

    async def close(self) -> None:
        """Finish queued finals, drop queued partials, stop the workers."""
        if self._closed:
            return
        self._closed = True
        for job in self._partials.values():
            _resolve(job.future, None)
        self._partials.clear()
        if self._wakeup is not None:
            self._wakeup.set()
        if self._runners:
            await asyncio.gather(*self._runners, return_exceptions=True)
        self._executor.shutdown(wait=True)

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *exc) -> None:
        await self.close()

    def _start(self, loop: asyncio.AbstractEventLoop) -> None:
        if self._runners:
            return
        self._wakeup = asyncio.Event()
        self._runners = [loop.create_task(self._run()) for _ in range(self.options.workers)]

    def _next_batch(self) -> list[_Job]:
        if self._finals:
            # one final per stream per batch keeps a chatty party from delaying everyone else
            batch, seen, rest = [], set(), deque()
            while self._finals and len(batch) < self.options.max_batch:
                job = self._finals.popleft()
                if job.future.done():  # cancelled by its stream (an early final made stale)
                    continue
                if job.stream_id in seen:
                    rest.append(job)
                else:
                    seen.add(job.stream_id)
                    batch.append(job)
            self._finals.extendleft(reversed(rest))
            if batch:
                return batch
        now = time.monotonic()
        limit = self.options.max_partial_wait_ms / 1000
        for stream_id, job in list(self._partials.items()):
            if now - job.submitted > limit:
                del self._partials[stream_id]
                self._dropped += 1
                _resolve(job.future, None)
        oldest = sorted(self._partials.values(), key=lambda j: j.submitted)
        oldest = oldest[: min(self.options.max_batch, self.options.max_partial_batch)]
        for job in oldest:
            del self._partials[job.stream_id]
        return oldest

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            batch = self._next_batch()
            if not batch:
                if self._closed:
                    return
                self._wakeup.clear()
                await self._wakeup.wait()
                continue
            started = time.monotonic()
            for job in batch:
                if job.final:
                    self._waits.append(1000 * (started - job.submitted))
            try:
                results = await loop.run_in_executor(
                    self._executor, self.decoder.decode, [j.request for j in batch]
                )
            except Exception as exc:  # a bad batch must not stop the pool for every other call
                self._errors += 1
                log.exception("speech decode of %d utterances failed", len(batch))
                for job in batch:
                    if not job.future.done():
                        job.future.set_exception(exc)
                continue
            finally:
                self._busy += time.monotonic() - started
            self._batches += 1
            self._batched_items += len(batch)
            for job, result in zip(batch, results):
                if job.final:
                    self._finals_decoded += 1
                else:
                    self._partials_decoded += 1
                _resolve(job.future, result)


def copy_outcome(source: asyncio.Future, target: asyncio.Future) -> None:
    """Settle ``target`` as ``source`` settled (result, exception or cancellation), unless it
    already is: for a future handed out before the decode that will answer it exists."""
    if target.done():
        return
    if source.cancelled():
        target.cancel()
    elif source.exception() is not None:
        target.set_exception(source.exception())
    else:
        target.set_result(source.result())


def _resolve(future: asyncio.Future, value) -> None:
    if not future.done():
        future.set_result(value)


def _quantile(sorted_values: list[float], q: float) -> float:
    if not sorted_values:
        return 0.0
    return sorted_values[min(len(sorted_values) - 1, int(q * len(sorted_values)))]
