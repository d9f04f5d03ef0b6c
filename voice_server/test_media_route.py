"""A test-only media WebSocket that feeds a ``CallSession`` — no carrier needed.

Enabled only with ``COACHLINE_TEST_MEDIA_ROUTE=1`` (never in production): the
crash test of the recorder streams audio into a real ``coachline serve``
process through it. Protocol on ``GET /test/media``:

* first a text message ``{"call_id", "org_id", "rep_id"?, "carrier"?, "direction"?}``;
* then binary messages: 9-byte header ``>BII`` (party 0 rep / 1 customer /
  2 mixed, call-clock timestamp in ms, sample rate) followed by PCM16 LE;
* a text message ``{"end": true}`` ends the call normally; a dropped socket
  ends it abnormally. Each binary message is acknowledged with nothing;
  ``{"ping": n}`` is answered ``{"pong": n}`` so a client knows all before it was handled.
"""

from __future__ import annotations

import json
import logging
import struct

import numpy as np
from aiohttp import WSMsgType, web

from media.frames import AudioFormatError, AudioFrame, Party
from voice_server.app_keys import CALL_SESSIONS
from voice_server.call_session import CallInfo

log = logging.getLogger(__name__)
_HEADER = struct.Struct(">BII")
_PARTIES = (Party.REP, Party.CUSTOMER, Party.MIXED)


def add_test_media_route(app: web.Application) -> None:
    log.warning(
        "test media route /test/media is ON (COACHLINE_TEST_MEDIA_ROUTE); never enable in production"
    )
    app.router.add_get("/test/media", test_media_stream)


async def test_media_stream(request: web.Request) -> web.WebSocketResponse:
    ws = web.WebSocketResponse(max_msg_size=1 << 20)
    await ws.prepare(request)
    sessions = request.app[CALL_SESSIONS]
    first = await ws.receive()
    try:
        start = json.loads(first.data)
        info = CallInfo(
            call_id=start["call_id"],
            org_id=start["org_id"],
            carrier=start.get("carrier", "simulator"),
            direction=start.get("direction", "outbound"),
            rep_id=start.get("rep_id"),
        )
    except (TypeError, ValueError, KeyError) as exc:
        await ws.close(code=4400, message=f"bad start message: {exc}".encode()[:120])
        return ws
    session = await sessions.open(info)
    ended_normally = False
    async for msg in ws:
        if msg.type == WSMsgType.BINARY:
            try:
                party, ts_ms, rate = _HEADER.unpack_from(msg.data)
                pcm = np.frombuffer(msg.data[_HEADER.size :], "<i2").astype(np.int16)
                session.push_audio(AudioFrame(pcm, rate, _PARTIES[party], ts_ms))
            except (struct.error, IndexError, ValueError, AudioFormatError) as exc:
                await ws.send_json({"error": str(exc)})
        elif msg.type == WSMsgType.TEXT:
            body = json.loads(msg.data)
            if body.get("end"):
                ended_normally = True
                break
            if "ping" in body:
                await ws.send_json({"pong": body["ping"]})
    await sessions.close(
        info.call_id,
        abnormal=not ended_normally,
        reason="" if ended_normally else "media stream lost",
    )
    if not ws.closed:
        await ws.close()
    return ws
