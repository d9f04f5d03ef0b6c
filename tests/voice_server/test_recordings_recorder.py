import asyncio
import uuid

import numpy as np
import pytest

from media.frames import Party
from storage.recording_store import RecordingTruncatedError
from tests.voice_server.recording_world import db, make_world, node, tone_frames  # noqa: F401
from voice_server.app_keys import CALL_SESSIONS
from voice_server.call_session import CallInfo
from voice_server.recordings import RECORDINGS


def _stereo(data: bytes):
    pcm = np.frombuffer(data, "<i2")
    return pcm[0::2], pcm[1::2]


async def _wait_for(predicate, timeout_s=20.0):
    for _ in range(int(timeout_s / 0.05)):
        if await predicate():
            return
        await asyncio.sleep(0.05)
    raise AssertionError("condition not reached")


async def test_a_call_is_recorded_encrypted_and_aligned(node, db):
    client, app = node
    world = await make_world(db)
    sessions = app[CALL_SESSIONS]
    service = app[RECORDINGS]
    session = await sessions.open(
        CallInfo(world.call_id, world.org_id, "simulator", "outbound", rep_id=world.rep)
    )
    # The rep talks for 3 s; the customer joins at 1 s and stops at 2 s.
    for rep_frame, i in zip(tone_frames(Party.REP, 3.0), range(10_000)):
        session.push_audio(rep_frame)
        if 50 <= i < 100:
            cust = next(tone_frames(Party.CUSTOMER, 0.02, start_ms=i * 20))
            session.push_audio(cust)
    await sessions.close(world.call_id)
    row = await db.fetchrow("SELECT * FROM recordings WHERE call_id = $1", uuid.UUID(world.call_id))
    assert row["status"] == "complete" and row["channels"] == 2 and row["sample_rate"] == 8000
    assert row["byte_length"] == 3 * 8000 * 4 and row["duration_ms"] == 3000
    raw = service.store.path_of(row["id"]).read_bytes()
    assert b"\x00" * 64 not in raw[256:]  # even the silences are ciphertext, not zeros on disk
    with service.store.open(row["id"]) as reader:
        rep, cust = _stereo(reader.read_all())
    assert len(rep) == 24000
    assert (rep.reshape(-1, 160)[:, 0] == np.arange(150)).all()
    assert (cust[:8000] == 0).all() and (cust[16000:] == 0).all()
    assert (cust[8000:16000].reshape(-1, 160)[:, 0] == 1000 + np.arange(50, 100)).all()


async def test_mixed_calls_are_mono_and_a_call_without_audio_has_no_recording(node, db):
    client, app = node
    world = await make_world(db)
    sessions = app[CALL_SESSIONS]
    session = await sessions.open(CallInfo(world.call_id, world.org_id, "simulator", "outbound"))
    for frame in tone_frames(Party.MIXED, 1.0):
        session.push_audio(frame)
    await sessions.close(world.call_id)
    row = await db.fetchrow("SELECT * FROM recordings WHERE call_id = $1", uuid.UUID(world.call_id))
    assert row["channels"] == 1 and row["byte_length"] == 16000
    silent = await make_world(db)
    await sessions.open(CallInfo(silent.call_id, silent.org_id, "simulator", "outbound"))
    await sessions.close(silent.call_id)
    assert (
        await db.fetchval(
            "SELECT count(*) FROM recordings WHERE call_id = $1", uuid.UUID(silent.call_id)
        )
        == 0
    )


async def test_a_call_id_without_a_call_row_does_not_harm_the_call(node, db):
    client, app = node
    world = await make_world(db)
    sessions = app[CALL_SESSIONS]
    ghost = str(uuid.uuid4())
    session = await sessions.open(CallInfo(ghost, world.org_id, "simulator", "outbound"))
    for frame in tone_frames(Party.REP, 0.5):
        session.push_audio(frame)
    await sessions.close(ghost)  # no exception; the recorder gave up on its own
    assert session.stats.frames[Party.REP] == 25


async def test_card_number_spans_are_silenced_live_and_after_the_call(node, db):
    client, app = node
    world = await make_world(db)
    sessions = app[CALL_SESSIONS]
    service = app[RECORDINGS]
    session = await sessions.open(CallInfo(world.call_id, world.org_id, "simulator", "outbound"))
    frames = list(tone_frames(Party.REP, 4.0, value_at=lambda ts: 500))
    for frame in frames[:150]:  # 3 s in; chunks are 0.5 s, so 0.2-0.9 s is on disk already
        session.push_audio(frame)
    await _wait_for(lambda: _durable(service, world.call_id, 2 * 8000 * 4))
    assert await service.silence_call(world.call_id, 200, 900)  # written chunks: rewritten
    assert await service.silence_call(world.call_id, 2900, 3200)  # open chunk and the future
    for frame in frames[150:]:
        session.push_audio(frame)
    await sessions.close(world.call_id)
    assert await service.silence_call(world.call_id, 3500, 3600)  # after the call: on disk
    row = await db.fetchrow("SELECT * FROM recordings WHERE call_id = $1", uuid.UUID(world.call_id))
    with service.store.open(row["id"]) as reader:
        rep, cust = _stereo(reader.read_all())
    silent = np.zeros(len(rep), bool)
    for lo, hi in [(200, 900), (2900, 3200), (3500, 3600)]:
        silent[lo * 8 : hi * 8] = True
    assert (rep[silent] == 0).all() and (rep[~silent] == 500).all()


async def _durable(service, call_id, at_least):
    recorder = service.live.get(call_id)
    return recorder is not None and recorder.durable_bytes >= at_least


async def test_recordings_left_open_by_a_dead_process_are_recovered(node, db):
    client, app = node
    world = await make_world(db)
    service = app[RECORDINGS]
    # What a killed process leaves: an open row, and a file without its final chunk.
    from crm_core.recordings.rows import NewRecording, insert_recording
    from storage.recording_store import AudioFormat

    rid = uuid.uuid4()
    await insert_recording(
        db,
        NewRecording(
            str(rid),
            world.org_id,
            world.call_id,
            service.store.storage_key(rid),
            "k1",
            2,
            8000,
            16000,
            "dead",
        ),
    )
    await db.execute(
        "UPDATE recordings SET heartbeat_at = now() - interval '1 hour' WHERE id = $1", rid
    )
    writer = service.store.create(rid, AudioFormat(8000, 2), 16000)
    writer.append(bytes(range(256)) * 200)  # 51200 bytes: 3 chunks written, the rest lost
    writer.abandon()
    with pytest.raises(RecordingTruncatedError):
        service.store.open(rid)

    # The node's recovery job (every stale_s / 2, one node at a time) finds it on its own.
    async def finished():
        row = await db.fetchrow("SELECT * FROM recordings WHERE id = $1", rid)
        return (
            row["status"] == "incomplete"
            and row["finalized_at"] is not None
            and (
                await db.fetchval(
                    "SELECT ended_abnormally FROM calls WHERE id = $1", row["call_id"]
                )
            )
        )

    await _wait_for(finished)
    row = await db.fetchrow("SELECT * FROM recordings WHERE id = $1", rid)
    assert row["byte_length"] == 48000
    call = await db.fetchrow("SELECT * FROM calls WHERE id = $1", uuid.UUID(world.call_id))
    assert call["ended_abnormally"] and call["status"] == "failed"
    with service.store.open(rid) as reader:
        assert reader.read_all() == (bytes(range(256)) * 200)[:48000]
    audit = await db.fetchrow(
        "SELECT * FROM audit_log WHERE action = 'recording.recovered' AND resource_id = $1",
        world.call_id,
    )
    assert audit["actor_kind"] == "system"
    assert await service.recover_abandoned(stale_s=2) == []


async def test_retention_purges_old_recordings_and_audits(node, db):
    client, app = node
    world = await make_world(db)
    sessions = app[CALL_SESSIONS]
    service = app[RECORDINGS]
    session = await sessions.open(CallInfo(world.call_id, world.org_id, "simulator", "outbound"))
    for frame in tone_frames(Party.REP, 1.0):
        session.push_audio(frame)
    await sessions.close(world.call_id)
    row = await db.fetchrow("SELECT * FROM recordings WHERE call_id = $1", uuid.UUID(world.call_id))
    assert await service.purge_expired(default_days=0) == 0  # the org keeps recordings forever
    await db.execute(
        "UPDATE organizations SET settings = settings || '{\"recording_retention_days\": 30}'"
        " WHERE id = $1",
        uuid.UUID(world.org_id),
    )
    assert await service.purge_expired(default_days=0) == 0  # not old enough yet
    await db.execute(
        "UPDATE recordings SET created_at = now() - interval '31 days' WHERE id = $1", row["id"]
    )
    assert await service.purge_expired(default_days=0) == 1
    assert not service.store.exists(row["id"])
    after = await db.fetchrow("SELECT * FROM recordings WHERE id = $1", row["id"])
    assert after["status"] == "deleted" and after["deleted_at"] is not None
    assert (
        await db.fetchval(
            "SELECT count(*) FROM audit_log WHERE action = 'recording.purged' AND resource_id = $1",
            world.call_id,
        )
        == 1
    )


async def test_redaction_spans_silence_card_numbers_where_the_words_were(node, db):
    from dataclasses import dataclass

    @dataclass(frozen=True)
    class Span:  # the shape of coaching.redaction.RedactedSpan that matters here
        kind: str
        start_ms: int
        end_ms: int

    client, app = node
    world = await make_world(db)
    sessions = app[CALL_SESSIONS]
    service = app[RECORDINGS]
    session = await sessions.open(CallInfo(world.call_id, world.org_id, "simulator", "outbound"))
    for frame in tone_frames(Party.CUSTOMER, 5.0, value_at=lambda ts: 300):
        session.push_audio(frame)
    spans = [Span("card_number", 1000, 2500), Span("email", 3000, 3500), Span("cvv", 4000, 4200)]
    assert await service.silence_spans(world.call_id, spans) == 2
    await sessions.close(world.call_id)
    row = await db.fetchrow("SELECT * FROM recordings WHERE call_id = $1", uuid.UUID(world.call_id))
    with service.store.open(row["id"]) as reader:
        rep, cust = _stereo(reader.read_all())
    ms = np.arange(len(cust)) // 8
    silenced = ((ms >= 850) & (ms < 2650)) | ((ms >= 3850) & (ms < 4350))
    assert (cust[silenced] == 0).all() and (cust[~silenced] == 300).all()


async def test_pii_reported_by_the_calls_transcription_is_silenced_in_the_recording(node, db):
    from coaching.records import SegmentInput, WordTiming
    from coaching.redaction import Redactor

    class Transcription:
        """Stands where CallIntelligence sits: a consumer that reports the PII it redacts."""

        def __init__(self) -> None:
            self.pii_listeners = []
            self.redactor = Redactor()

        def on_audio(self, frame):
            pass

        def on_dtmf(self, digit, at_ms, duration_ms):
            pass

        async def close(self, abnormal):
            pass

        def final(self, words):
            segment = SegmentInput(
                "s1",
                "customer",
                " ".join(w[0] for w in words),
                words[0][1],
                words[-1][2],
                tuple(WordTiming(*w) for w in words),
            )
            spans = list(self.redactor.redact_segment(segment).spans)
            for listener in self.pii_listeners:
                listener(spans)

    client, app = node
    world = await make_world(db)
    sessions = app[CALL_SESSIONS]
    transcription = Transcription()

    def attach(session):  # as voice_server.live_intelligence wires CallIntelligence
        transcription.pii_listeners.append(
            lambda spans: session.recorder.silence_redacted(spans) if session.recorder else None)
        return transcription

    sessions.consumer_factories.insert(0, attach)
    try:
        session = await sessions.open(
            CallInfo(world.call_id, world.org_id, "simulator", "outbound")
        )
    finally:
        sessions.consumer_factories.pop(0)
    frames = list(tone_frames(Party.CUSTOMER, 6.0, value_at=lambda ts: 300))
    for frame in frames[:200]:  # 4 s in; the card number was said at 2.0-3.9 s
        session.push_audio(frame)
    digits = [
        ("4111", 2000, 2400),
        ("1111", 2500, 2900),
        ("1111", 3000, 3400),
        ("1111", 3500, 3900),
    ]
    transcription.final([("my", 1000, 1200), ("card", 1200, 1500), ("is", 1500, 1700), *digits])
    for frame in frames[200:]:
        session.push_audio(frame)
    await sessions.close(world.call_id)
    assert app[RECORDINGS].spans_silenced == 1
    row = await db.fetchrow("SELECT * FROM recordings WHERE call_id = $1", uuid.UUID(world.call_id))
    with app[RECORDINGS].store.open(row["id"]) as reader:
        rep, cust = _stereo(reader.read_all())
    ms = np.arange(len(cust)) // 8
    card = (ms >= 2000 - 150) & (ms < 3900 + 150)
    assert (cust[card] == 0).all() and (cust[~card] == 300).all()


async def test_a_call_that_goes_quiet_still_gets_its_audio_written(node, db):
    import time

    client, app = node
    world = await make_world(db)
    sessions = app[CALL_SESSIONS]
    service = app[RECORDINGS]
    session = await sessions.open(CallInfo(world.call_id, world.org_id, "simulator", "outbound"))
    both = zip(tone_frames(Party.REP, 0.7, value_at=lambda ts: 9), tone_frames(Party.CUSTOMER, 0.7))
    for rep_frame, customer_frame in both:  # 0.7 s: one chunk (0.5 s) and a bit
        session.push_audio(rep_frame)
        session.push_audio(customer_frame)
    recorder = service.live[world.call_id]
    await _wait_for(lambda: _durable(service, world.call_id, 16000))
    assert recorder.durable_bytes < 32000  # the rest waits in the open chunk
    stall = service.options.stall_s
    recorder.advance_if_stalled(time.monotonic() + stall + 0.5)  # nothing for stall_s + 0.5 s
    await _wait_for(lambda: _durable(service, world.call_id, 32000))
    await sessions.close(world.call_id)
    row = await db.fetchrow("SELECT * FROM recordings WHERE call_id = $1", uuid.UUID(world.call_id))
    with service.store.open(row["id"]) as reader:
        rep, cust = _stereo(reader.read_all())
    assert (rep[:5600] == 9).all() and (rep[5600:] == 0).all() and len(rep) >= 9600


async def test_recording_metrics_are_exported(node, db):
    client, app = node
    world = await make_world(db)
    sessions = app[CALL_SESSIONS]
    session = await sessions.open(CallInfo(world.call_id, world.org_id, "simulator", "outbound"))
    for frame in tone_frames(Party.MIXED, 0.5):
        session.push_audio(frame)
    await sessions.close(world.call_id)
    text = await (await client.get("/metrics")).text()
    assert 'coachline_recordings_finished_total{status="complete"} 1.0' in text
    assert (
        "coachline_recording_bytes_total 8000.0" in text and "coachline_recordings_live 0.0" in text
    )


async def test_recordings_this_node_left_open_are_recovered_at_once_whatever_their_heartbeat(
    node, db
):
    from crm_core.recordings.rows import NewRecording, insert_recording

    client, app = node
    world = await make_world(db)
    service = app[RECORDINGS]
    other_world = await make_world(db)  # a call has one recording: the other node's is another call
    mine, other = uuid.uuid4(), uuid.uuid4()
    for rid, node_id, w in (
        (mine, service.options.node_id, world),
        (other, "another-live-node", other_world),
    ):
        await insert_recording(
            db,
            NewRecording(
                str(rid),
                w.org_id,
                w.call_id,
                service.store.storage_key(rid),
                "k1",
                2,
                8000,
                16000,
                node_id,
            ),
        )
    # The other node keeps renewing its heartbeat (here: far ahead, so no staleness check claims it).
    await db.execute(
        "UPDATE recordings SET heartbeat_at = now() + interval '1 hour' WHERE id = $1", other
    )
    recovered = await service.recover_abandoned(stale_s=3600, own_node=True)
    assert [r.recording_id for r in recovered] == [str(mine)]  # its file never existed: 0 bytes
    statuses = dict(
        await db.fetch(
            "SELECT id, status FROM recordings WHERE id = ANY($1::uuid[])", [mine, other]
        )
    )
    assert statuses == {
        mine: "incomplete",
        other: "recording",
    }  # a fresh heartbeat elsewhere is left alone
