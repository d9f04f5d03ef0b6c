"""Playing audio into our media WebSockets as Twilio and Vonage would.

A stream is first built as a list of ``(tick, message)`` — tick = which 20 ms
slot it is sent in — so tests can drop, swap or corrupt messages before
``send_stream`` plays them, paced in real time or as fast as possible.
"""

from __future__ import annotations

import asyncio
import base64
import json
import uuid
from dataclasses import dataclass, field

import aiohttp
import numpy as np

from media.g711 import ulaw_encode

FRAME_MS = 20
Message = tuple[int, "str | bytes"]


@dataclass
class TwilioStream:
    """Two tracks of 8 kHz audio as one Twilio Media Stream (``<Start><Stream track=both_tracks>``)."""

    parameters: dict[str, str]  # our <Parameter>s: call_id, stream_token, …
    call_sid: str
    inbound: np.ndarray
    outbound: np.ndarray | None = None
    outbound_starts_ms: int = 0  # the far side answers later: its track starts later
    dtmf: dict[int, str] = field(default_factory=dict)  # tick -> digit (on the inbound track)
    account_sid: str = "AC" + "0" * 32
    stream_sid: str = field(default_factory=lambda: "MZ" + uuid.uuid4().hex)
    stop: bool = True

    def messages(self) -> list[Message]:
        out: list[Message] = [(0, json.dumps({"event": "connected", "protocol": "Call",
                                              "version": "1.0.0"}))]
        seq = 1
        out.append((0, json.dumps({
            "event": "start", "sequenceNumber": str(seq), "streamSid": self.stream_sid,
            "start": {
                "streamSid": self.stream_sid, "accountSid": self.account_sid,
                "callSid": self.call_sid, "tracks": ["inbound", "outbound"],
                "customParameters": self.parameters,
                "mediaFormat": {"encoding": "audio/x-mulaw", "sampleRate": 8000, "channels": 1},
            },
        })))
        frame = 8000 * FRAME_MS // 1000
        tracks = [("inbound", self.inbound, 0)]
        if self.outbound is not None:
            tracks.append(("outbound", self.outbound, self.outbound_starts_ms // FRAME_MS))
        ticks = max(first + -(-len(pcm) // frame) for _, pcm, first in tracks)
        chunks = {name: 0 for name, _, _ in tracks}
        for tick in range(ticks):
            for name, pcm, first in tracks:
                i = tick - first
                piece = pcm[i * frame:(i + 1) * frame]
                if i < 0 or len(piece) == 0:
                    continue
                chunks[name] += 1
                seq += 1
                out.append((tick, json.dumps({
                    "event": "media", "sequenceNumber": str(seq), "streamSid": self.stream_sid,
                    "media": {"track": name, "chunk": str(chunks[name]),
                              "timestamp": str(tick * FRAME_MS),
                              "payload": base64.b64encode(ulaw_encode(piece)).decode()},
                })))
            if tick in self.dtmf:
                seq += 1
                out.append((tick, json.dumps({
                    "event": "dtmf", "sequenceNumber": str(seq), "streamSid": self.stream_sid,
                    "dtmf": {"track": "inbound_track", "digit": self.dtmf[tick]},
                })))
        if self.stop:
            seq += 1
            out.append((ticks, json.dumps({
                "event": "stop", "sequenceNumber": str(seq), "streamSid": self.stream_sid,
                "stop": {"accountSid": self.account_sid, "callSid": self.call_sid},
            })))
        return out


@dataclass
class VonageStream:
    """One mixed channel of L16 audio as a Vonage websocket endpoint receives it."""

    headers: dict[str, str]  # the NCCO's websocket headers: call_id, stream_token, vonage_uuid
    pcm: np.ndarray
    sample_rate: int = 16000
    dtmf: dict[int, str] = field(default_factory=dict)

    def messages(self) -> list[Message]:
        out: list[Message] = [(0, json.dumps({
            "event": "websocket:connected",
            "content-type": f"audio/l16;rate={self.sample_rate}",
            **self.headers,
        }))]
        frame = self.sample_rate * FRAME_MS // 1000
        ticks = -(-len(self.pcm) // frame)
        for tick in range(ticks):
            piece = self.pcm[tick * frame:(tick + 1) * frame]
            if len(piece) < frame:  # Vonage frames are always whole
                piece = np.concatenate([piece, np.zeros(frame - len(piece), np.int16)])
            out.append((tick, piece.astype("<i2").tobytes()))
            if tick in self.dtmf:
                out.append((tick, json.dumps({"event": "websocket:dtmf", "digit": self.dtmf[tick],
                                              "duration": 250})))
        return out


async def send_stream(ws: aiohttp.ClientWebSocketResponse, messages: list[Message], *,
                      realtime: bool = True, close: bool = True) -> int:
    """Send ``messages`` on ``ws``, each in its 20 ms slot when ``realtime``; returns how many."""
    loop = asyncio.get_running_loop()
    started = loop.time()
    sent = 0
    for tick, message in messages:
        if realtime:
            delay = started + tick * FRAME_MS / 1000 - loop.time()
            if delay > 0:
                await asyncio.sleep(delay)
        if isinstance(message, bytes):
            await ws.send_bytes(message)
        else:
            await ws.send_str(message)
        sent += 1
    if close:
        await ws.close()
    return sent


async def play(url: str, messages: list[Message], *, realtime: bool = True,
               http: aiohttp.ClientSession | None = None,
               headers: dict[str, str] | None = None) -> int:
    """Open a WebSocket to ``url`` (with the upgrade ``headers``, e.g. Twilio's signature),
    send the stream, close it cleanly."""
    own = http is None
    http = http or aiohttp.ClientSession()
    try:
        async with http.ws_connect(url, max_msg_size=0, headers=headers) as ws:
            return await send_stream(ws, messages, realtime=realtime)
    finally:
        if own:
            await http.close()
