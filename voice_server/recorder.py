"""Records live calls into the encrypted store as the audio arrives.

``RecordingService.consumer_for`` is a ``CallSessions`` consumer factory: each
call gets a ``CallRecorder`` that lines frames up with ``media.recording``
(on the event loop: cheap numpy work) and hands finished blocks to a worker
task, which encrypts and writes them in a thread so disk I/O never blocks the
loop. Each chunk holds ``chunk_s`` seconds of audio and is written as soon as
it is full, so a crash loses at most that much (plus the jitter window).

A ``recordings`` row follows each recording: 'recording' while it is written
(renewed by ``renew``), 'complete' when the call ends, 'incomplete' when the
process died mid-call — ``recover_abandoned`` (run at start-up and then
periodically, on one node) seals such files and marks their calls as ended
abnormally.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass

import asyncpg

from crm_core.calls.records import mark_call_ended
from crm_core.recordings import rows
from media.frames import AudioFrame
from media.recording import ChannelLayout, RecordingAligner, RecordingOptions
from storage.recording_store import AudioFormat, RecordingError, RecordingNotFound, RecordingStore
from voice_server.call_session import CallSession
from voice_server.logs import call_id_var

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class RecorderOptions:
    sample_rate: int = 8000
    chunk_s: float = 2.0
    max_lag_ms: int = 500
    block_ms: int = 100
    # Audio waiting for a stalled disk beyond this many seconds is replaced by
    # silence: the call's timeline stays right and memory stays bounded.
    max_queued_s: float = 30.0
    # After this long without any frame, the silent time (minus this much of jitter
    # tolerance) is written, so held audio reaches the disk even when a call goes quiet.
    stall_s: float = 2.0
    node_id: str = ""


@dataclass(frozen=True, slots=True)
class RecoveredRecording:
    recording_id: str
    call_id: str
    byte_length: int


_CLOSE = object()
# PCI: spoken card numbers and security codes never stay in a recording.
SILENCED_KINDS = frozenset({"card_number", "cvv"})
SILENCE_PAD_MS = 150


class CallRecorder:
    """The recording consumer of one call (see ``AudioConsumer`` in call_session)."""

    def __init__(self, service: RecordingService, session: CallSession) -> None:
        self._service = service
        self.info = session.info
        self.recording_id = str(uuid.uuid4())
        self._aligner: RecordingAligner | None = None
        self._audio: AudioFormat | None = None
        self._queue: asyncio.Queue = asyncio.Queue()
        self._queued_bytes = 0
        self._worker: asyncio.Task | None = None
        self._writer = None
        self.failed = False
        self.dropped_bytes = 0
        self._last_frame_at = 0.0
        self._last_end_ms = 0.0

    # -- AudioConsumer ---------------------------------------------------------------------
    def on_audio(self, frame: AudioFrame) -> None:
        if self.failed:
            return
        if self._aligner is None:
            self._start(ChannelLayout.for_party(frame.party))
        self._last_frame_at = time.monotonic()
        self._last_end_ms = max(self._last_end_ms, frame.end_ms)
        blocks = self._aligner.push(frame)
        if blocks:
            self._enqueue(blocks)

    def advance_if_stalled(self, now: float) -> None:
        """No audio for a while: the call clock went on, so write that time as silence.

        Without this, audio held for the open chunk would wait for the next
        frame. Audio arriving later for time already written is dropped, so
        only time older than ``stall_s`` (the jitter we tolerate) is declared.
        """
        if self._aligner is None or self.failed:
            return
        idle = now - self._last_frame_at
        stall_s = self._service.options.stall_s
        if idle >= stall_s:
            blocks = self._aligner.advance_to(self._last_end_ms + (idle - stall_s) * 1000)
            if blocks:
                self._enqueue(blocks)

    def on_dtmf(self, digit: str, at_ms: int, duration_ms: int) -> None:
        """Nothing to do: in-band tones are in the audio; RFC 4733 digits are events, not sound."""

    async def close(self, abnormal: bool) -> None:
        if self._aligner is None or self._worker is None:
            if self._service.live.get(self.info.call_id) is self:
                del self._service.live[self.info.call_id]
            return
        tail = self._aligner.finish()
        if tail and not self.failed:
            self._enqueue([tail])
        self._queue.put_nowait(_CLOSE)
        await asyncio.shield(self._worker)

    # -- silencing (PCI) ---------------------------------------------------------------------
    def silence(self, start_ms: float, end_ms: float) -> None:
        """Silence call-clock ``start_ms``..``end_ms`` on every channel, wherever that audio is now."""
        if self._aligner is None or self.failed:
            return
        written = self._aligner.silence(start_ms, end_ms)
        if written is not None:
            self._queue.put_nowait(("silence", written, 0))

    def silence_redacted(self, spans) -> None:
        """A ``PiiRedaction.listeners`` entry: silence card numbers / CVVs over their word
        times (``RedactedSpan``: kind, start_ms, end_ms), widened for ASR timing."""
        for span in spans:
            if span.kind in SILENCED_KINDS and span.end_ms > span.start_ms:
                self.silence(max(0, span.start_ms - SILENCE_PAD_MS), span.end_ms + SILENCE_PAD_MS)
                self._service.spans_silenced += 1

    # -- internals ---------------------------------------------------------------------------
    def _start(self, layout: ChannelLayout) -> None:
        opts = self._service.options
        self._aligner = RecordingAligner(
            layout, RecordingOptions(opts.sample_rate, opts.block_ms, opts.max_lag_ms)
        )
        self._audio = AudioFormat(opts.sample_rate, layout.channels)
        self._service.live.setdefault(self.info.call_id, self)
        self._worker = asyncio.get_running_loop().create_task(
            self._run(), name=f"recorder-{self.info.call_id}"
        )

    def _enqueue(self, blocks: list[bytes]) -> None:
        limit = self._service.options.max_queued_s * self._audio.bytes_per_second
        size = sum(len(b) for b in blocks)
        if self._queued_bytes + size > limit:
            if not self.dropped_bytes:
                log.error(
                    "recording %s: disk too slow, replacing audio with silence", self.recording_id
                )
            self.dropped_bytes += size
            self._queue.put_nowait(("silence-bytes", size, 0))
            return
        self._queued_bytes += size
        self._queue.put_nowait(("blocks", blocks, size))

    @property
    def durable_bytes(self) -> int:
        return self._writer.durable_bytes if self._writer is not None else 0

    def progress(self) -> tuple[int, int]:
        durable = self.durable_bytes
        return durable, durable * 1000 // self._audio.bytes_per_second

    async def _run(self) -> None:
        token = call_id_var.set(self.info.call_id)
        try:
            try:
                await self._open()
            except asyncpg.UniqueViolationError:
                # A call has one recording; whatever opened this session must not replace it.
                log.error("call already has a recording; this session is not recorded")
                self.failed = True
                return
            except (asyncpg.PostgresError, asyncpg.InterfaceError, OSError, RecordingError,
                    ValueError) as exc:
                # No recording for this call; the call itself goes on untouched.
                log.error("cannot start recording: %s", exc)
                self.failed = True
                return
            status = await self._write_until_closed()
            await self._finish_row(status)
        finally:
            if self._service.live.get(self.info.call_id) is self:
                del self._service.live[self.info.call_id]
            call_id_var.reset(token)

    async def _write_until_closed(self) -> str:
        writer = self._writer
        try:
            while True:
                item = await self._queue.get()
                if item is _CLOSE:
                    break
                kind, payload, counted = item
                if kind == "blocks":
                    await asyncio.to_thread(writer.append, b"".join(payload))
                elif kind == "silence-bytes":
                    await asyncio.to_thread(writer.append, bytes(payload))
                else:
                    await asyncio.to_thread(self._silence_written, *payload)
                self._queued_bytes -= counted
            await asyncio.to_thread(writer.close)
            return "complete"
        except Exception:
            log.exception("recording %s failed; keeping what was written", self.recording_id)
            self.failed = True
            writer.abandon()
            try:
                await asyncio.to_thread(self._service.store.seal, uuid.UUID(self.recording_id))
            except (RecordingError, OSError):
                log.exception("could not seal recording %s", self.recording_id)
            return "incomplete"

    async def _finish_row(self, status: str) -> None:
        length = self._writer.durable_bytes
        totals = self._service.totals
        totals[status] += 1
        totals["bytes"] += length
        totals["late_samples_dropped"] += self._aligner.stats.late_samples_dropped
        totals["bytes_replaced_by_silence"] += self.dropped_bytes
        try:
            async with self._service.pool().acquire() as conn:
                await rows.finish_recording(
                    conn,
                    self.recording_id,
                    status=status,
                    byte_length=length,
                    duration_ms=length * 1000 // self._audio.bytes_per_second,
                )
        except (asyncpg.PostgresError, asyncpg.InterfaceError, OSError) as exc:
            # The row stays 'recording'; recovery finishes it once its heartbeat is stale.
            log.error("could not mark recording %s %s: %s", self.recording_id, status, exc)

    async def _open(self) -> None:
        service = self._service
        rid = uuid.UUID(self.recording_id)
        chunk = int(service.options.chunk_s * self._audio.bytes_per_second)
        chunk -= chunk % self._audio.frame_bytes
        # The row first: if the process dies right after, recovery still finds the recording.
        async with service.pool().acquire() as conn:
            await rows.insert_recording(
                conn,
                rows.NewRecording(
                    recording_id=self.recording_id,
                    org_id=self.info.org_id,
                    call_id=self.info.call_id,
                    storage_key=service.store.storage_key(rid),
                    key_id=service.store.keyring.current_id,
                    channels=self._audio.channels,
                    sample_rate=self._audio.sample_rate,
                    chunk_size=chunk,
                    node_id=service.options.node_id,
                ),
            )
        self._writer = await asyncio.to_thread(service.store.create, rid, self._audio, chunk)
        log.info(
            "recording %s started (%d channel(s), %d Hz)",
            self.recording_id,
            self._audio.channels,
            self._audio.sample_rate,
        )

    def _silence_written(self, start: int, end: int) -> None:
        """Zero bytes the aligner already gave out: in the open chunk in memory, else on disk."""
        writer = self._writer
        durable = writer.durable_bytes
        lo, hi = max(start, durable), min(end, writer.total_bytes)
        if lo < hi:
            writer.pending[lo - durable : hi - durable] = bytes(hi - lo)
        if start < durable:
            self._service.store.silence(uuid.UUID(self.recording_id), start, min(end, durable))


class RecordingService:
    """The recorders of this node, and the jobs that look after recordings."""

    def __init__(
        self, store: RecordingStore, pool: Callable[[], asyncpg.Pool], options: RecorderOptions
    ) -> None:
        self.store = store
        self.pool = pool
        self.options = options
        self.live: dict[str, CallRecorder] = {}
        self.spans_silenced = 0
        self.totals: Counter[str] = Counter()  # cumulative, for /metrics

    def consumer_for(self, session: CallSession) -> CallRecorder:
        recorder = CallRecorder(self, session)
        session.recorder = recorder
        return recorder

    def advance_stalled(self) -> None:
        now = time.monotonic()
        for recorder in list(self.live.values()):
            recorder.advance_if_stalled(now)

    async def renew(self) -> None:
        """Heartbeat and progress of the recordings this node is writing."""
        progress = {
            r.recording_id: r.progress() for r in list(self.live.values()) if r._writer is not None
        }
        if progress:
            async with self.pool().acquire() as conn:
                await rows.renew_recordings(conn, progress)

    async def silence_call(self, call_id: str, start_ms: float, end_ms: float) -> bool:
        """Silence a span of a call's recording, live or finished (e.g. a card number's words)."""
        call_id = str(uuid.UUID(str(call_id)))  # ValueError for ids that cannot be calls
        live = self.live.get(call_id)
        if live is not None:
            live.silence(start_ms, end_ms)
            return True
        async with self.pool().acquire() as conn:
            row = await rows.playable_recording_of_call(conn, call_id)
        if row is None:
            return False
        frame = row["channels"] * 2
        lo = round(start_ms * row["sample_rate"] / 1000) * frame
        hi = min(round(end_ms * row["sample_rate"] / 1000) * frame, row["byte_length"])
        if lo < hi:
            await asyncio.to_thread(self.store.silence, row["id"], lo, hi)
        return True

    async def silence_spans(self, call_id: str, spans) -> int:
        """Silence the recording over redaction spans (``coaching.redaction.RedactedSpan``: kind,
        start_ms, end_ms) of the kinds in ``SILENCED_KINDS``; returns how many were silenced.

        ASR word times are approximate, so each span is widened by ``SILENCE_PAD_MS``.
        """
        done = 0
        for span in spans:
            if span.kind not in SILENCED_KINDS or span.end_ms <= span.start_ms:
                continue
            if await self.silence_call(
                call_id, max(0, span.start_ms - SILENCE_PAD_MS), span.end_ms + SILENCE_PAD_MS
            ):
                done += 1
        self.spans_silenced += done
        return done

    async def recover_abandoned(
        self, stale_s: float, *, own_node: bool = False
    ) -> list[RecoveredRecording]:
        """Finish recordings whose writer died: seal the file, mark row incomplete and call abnormal.

        ``own_node``: also every recording this node's id left open that it is not writing now
        (at start-up: what the previous process of this node left, without waiting ``stale_s``).
        """
        async with self.pool().acquire() as conn:
            claimed = await rows.claim_abandoned(
                conn,
                stale_s,
                exclude=[r.recording_id for r in self.live.values()],
                node_id=self.options.node_id if own_node else None,
            )
        recovered = []
        for row in claimed:
            rid: uuid.UUID = row["id"]
            try:
                length = (await asyncio.to_thread(self.store.seal, rid)).plaintext_bytes
            except RecordingNotFound:
                length = 0  # the process died between the row and the file
            except (RecordingError, LookupError, ValueError, OSError) as exc:
                log.error("recording %s could not be sealed: %s", rid, exc)
                length = row["byte_length"]
            bytes_per_second = row["sample_rate"] * row["channels"] * 2
            async with self.pool().acquire() as conn, conn.transaction():
                await rows.finish_recording(
                    conn,
                    str(rid),
                    status="incomplete",
                    byte_length=length,
                    duration_ms=length * 1000 // bytes_per_second,
                )
                await mark_call_ended(conn, str(row["call_id"]), abnormal=True)
                await rows.write_audit(
                    conn,
                    rows.AuditEntry(
                        org_id=str(row["org_id"]),
                        action="recording.recovered",
                        actor_kind="system",
                        resource_id=str(row["call_id"]),
                        detail={
                            "recording_id": str(rid),
                            "byte_length": length,
                            "reason": "the recording process died mid-call",
                        },
                    ),
                )
            log.warning(
                "recording %s of call %s recovered as incomplete (%d bytes)",
                rid,
                row["call_id"],
                length,
            )
            recovered.append(RecoveredRecording(str(rid), str(row["call_id"]), length))
            self.totals["recovered"] += 1
        return recovered

    async def purge_expired(self, default_days: int) -> int:
        """Crypto-shred recordings past their organization's retention; each purge is audited."""
        async with self.pool().acquire() as conn:
            expired = await rows.expired_recordings(conn, default_days)
        for row in expired:
            await asyncio.to_thread(self.store.delete, row["id"])
            async with self.pool().acquire() as conn, conn.transaction():
                await rows.mark_deleted(conn, str(row["id"]))
                await rows.write_audit(
                    conn,
                    rows.AuditEntry(
                        org_id=str(row["org_id"]),
                        action="recording.purged",
                        actor_kind="system",
                        resource_id=str(row["call_id"]),
                        detail={
                            "recording_id": str(row["id"]),
                            "reason": "retention period ended",
                            "created_at": row["created_at"].isoformat(),
                        },
                    ),
                )
        if expired:
            log.info("purged %d recording(s) past retention", len(expired))
        self.totals["purged"] += len(expired)
        return len(expired)

    async def close(self) -> None:
        """Finish every recording still open (the node is stopping): its file is complete up to now."""
        for recorder in list(self.live.values()):
            await recorder.close(abnormal=True)
