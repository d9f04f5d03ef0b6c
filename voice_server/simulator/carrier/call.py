"""One whole simulated carrier call against a running Coachline server.

Twilio: a signed voice webhook (as for a customer ringing our number), the
TwiML's ``<Stream>`` opened with a signed WebSocket upgrade and played as two
µ-law tracks (customer inbound, rep outbound), its ``<Parameter>``s (call id,
stream token) in ``start``, then a signed ``completed`` status callback. Vonage: a signed
answer webhook, the NCCO's websocket (opened with the endpoint's ``authorization``
as the upgrade's ``Authorization``, as Vonage does) fed one mixed 16 kHz L16
channel, then a signed ``completed`` event.
"""

from __future__ import annotations

import json
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp
import numpy as np

from media.resample import resample
from voice_server.simulator.carrier.media_players import TwilioStream, VonageStream, play
from voice_server.simulator.carrier.rest_fake import stream_from_twiml
from voice_server.simulator.carrier.signing import (
    twilio_form,
    twilio_socket_headers,
    vonage_headers,
    vonage_socket_headers,
)
from voice_server.simulator.carrier.wav import read_wav


class SimulationError(RuntimeError):
    pass


@dataclass
class SimulatedCall:
    carrier: str  # twilio | vonage
    server: str  # where to connect, e.g. http://127.0.0.1:8080
    rep_wav: Path
    customer_wav: Path
    to_number: str  # our number the customer rings
    from_number: str = "+15557770000"
    public_url: str | None = None  # the URL the server believes carriers use (default: server)
    twilio_auth_token: str = ""
    twilio_account_sid: str = "AC" + "0" * 32
    vonage_signature_secret: str = ""
    realtime: bool = True
    rep_starts_ms: int = 0  # the rep picks up this long after the stream starts
    external_id: str = field(default_factory=lambda: "CA" + uuid.uuid4().hex)


@dataclass
class SimulationReport:
    carrier: str
    call_id: str
    external_id: str
    messages_sent: int
    seconds: float


def _pcm_at(path: Path, rate: int) -> np.ndarray:
    pcm, source_rate = read_wav(path)
    return resample(pcm, source_rate, rate) if source_rate != rate else pcm


async def simulate_call(call: SimulatedCall) -> SimulationReport:
    public = (call.public_url or call.server).rstrip("/")
    server = call.server.rstrip("/")
    started = time.monotonic()
    async with aiohttp.ClientSession() as http:
        if call.carrier == "twilio":
            call_id, sent = await _twilio(http, call, server, public)
        elif call.carrier == "vonage":
            call_id, sent = await _vonage(http, call, server, public)
        else:
            raise SimulationError(f"unknown carrier {call.carrier!r} (twilio or vonage)")
    return SimulationReport(call.carrier, call_id, call.external_id, sent, time.monotonic() - started)


async def _twilio(http, call: SimulatedCall, server: str, public: str) -> tuple[str, int]:
    path = "/carriers/twilio/voice"
    params = {"CallSid": call.external_id, "AccountSid": call.twilio_account_sid,
              "From": call.from_number, "To": call.to_number, "Direction": "inbound",
              "CallStatus": "ringing"}
    body, headers = twilio_form(call.twilio_auth_token, public + path, params)
    async with http.post(server + path, data=body, headers=headers) as resp:
        if resp.status != 200:
            raise SimulationError(f"voice webhook answered {resp.status}: {await resp.text()}")
        twiml = await resp.text()
    stream_url, stream_params, _ = stream_from_twiml(twiml)
    if "call_id" not in stream_params:
        raise SimulationError(f"the server did not fork the call: {twiml}")
    stream = TwilioStream(stream_params, call.external_id, account_sid=call.twilio_account_sid,
                          inbound=_pcm_at(call.customer_wav, 8000),
                          outbound=_pcm_at(call.rep_wav, 8000), outbound_starts_ms=call.rep_starts_ms)
    messages = stream.messages()
    sent = await play(_ws(server, "/media/twilio"), messages, realtime=call.realtime, http=http,
                      headers=twilio_socket_headers(call.twilio_auth_token, stream_url))
    duration = str(max(1, messages[-1][0] * 20 // 1000))
    status_path = "/carriers/twilio/status"
    body, headers = twilio_form(call.twilio_auth_token, public + status_path,
                                {"CallSid": call.external_id, "CallStatus": "completed",
                                 "CallDuration": duration})
    async with http.post(server + status_path, data=body, headers=headers) as resp:
        if resp.status >= 300:
            raise SimulationError(f"status callback answered {resp.status}")
    return stream_params["call_id"], sent


async def _vonage(http, call: SimulatedCall, server: str, public: str) -> tuple[str, int]:
    call_uuid = str(uuid.uuid4())
    call.external_id = call_uuid
    answer = json.dumps({"to": call.to_number.lstrip("+"), "from": call.from_number.lstrip("+"),
                         "uuid": call_uuid, "conversation_uuid": "CON-" + str(uuid.uuid4())}).encode()
    async with http.post(server + "/carriers/vonage/answer", data=answer,
                         headers=vonage_headers(call.vonage_signature_secret, answer)) as resp:
        if resp.status != 200:
            raise SimulationError(f"answer webhook answered {resp.status}: {await resp.text()}")
        ncco = await resp.json()
    try:
        endpoint = ncco[0]["endpoint"][0]
        headers = endpoint["headers"]
    except (KeyError, IndexError, TypeError):
        # A conversation NCCO means the server dials the websocket leg through Vonage's REST
        # API (credentials configured): that needs the REST fake, not this player.
        raise SimulationError(f"the NCCO connects no websocket directly: {ncco}") from None
    rep, customer = _pcm_at(call.rep_wav, 16000), _pcm_at(call.customer_wav, 16000)
    offset = call.rep_starts_ms * 16
    mix = np.zeros(max(len(customer), offset + len(rep)), np.int32)
    mix[:len(customer)] += customer
    mix[offset:offset + len(rep)] += rep
    pcm = np.clip(mix, -32768, 32767).astype(np.int16)
    sent = await play(_ws(server, "/media/vonage"), VonageStream(headers, pcm).messages(),
                      realtime=call.realtime, http=http, headers=vonage_socket_headers(endpoint))
    body = json.dumps({"uuid": call_uuid, "status": "completed",
                       "duration": str(max(1, len(pcm) // 16000))}).encode()
    async with http.post(server + "/carriers/vonage/event", data=body,
                         headers=vonage_headers(call.vonage_signature_secret, body)) as resp:
        if resp.status >= 300:
            raise SimulationError(f"event webhook answered {resp.status}")
    return headers["call_id"], sent


def _ws(server: str, path: str) -> str:
    return server.replace("https://", "wss://", 1).replace("http://", "ws://", 1) + path
