"""The real app with the carrier edge, on a fresh database, for the carrier tests.

Calls' audio is observed by an ``AudioConsumer`` registered like any other
(transcriber, recorder): it keeps every frame per call and party.
"""

from __future__ import annotations

import asyncio
import json
from collections import defaultdict
from dataclasses import dataclass, field

import asyncpg
import numpy as np
import pytest_asyncio
from aiohttp.test_utils import TestClient, TestServer
from vonage_voice.models.connect_endpoints import WebsocketEndpoint

from crm_core.calls.stream_admissions import issue_stream_admission
from media.frames import AudioFrame, Party
from voice_server.app import create_app
from voice_server.app_keys import CALL_SESSIONS, METRICS
from voice_server.call_session import CallSession
from voice_server.runtime import Runtime
from voice_server.settings import load_settings
from voice_server.simulator.carrier.signing import twilio_socket_headers, vonage_socket_headers
from voice_server.transports.vonage_socket_auth import socket_authorization

PUBLIC_URL = "https://coachline.example.com"  # what carriers see; the test server is elsewhere
PUBLIC_WS_URL = "wss://coachline.example.com"
TWILIO_SID = "AC" + "0" * 32
TWILIO_TOKEN = "sim-auth-token"
VONAGE_SECRET = "vonage-signature-secret-for-the-tests-0123456789"
OUR_NUMBER = "+15550100000"
REP_PHONE = "+15550100111"


class SessionObserver:
    """Every frame, digit and ending of every call, as a consumer receives them."""

    def __init__(self) -> None:
        self.frames: dict[str, list[AudioFrame]] = defaultdict(list)
        self.dtmf: dict[str, list[tuple[str, int]]] = defaultdict(list)
        self.endings: dict[str, bool] = {}
        self.sessions: dict[str, CallSession] = {}
        self._ended: dict[str, asyncio.Event] = defaultdict(asyncio.Event)

    def __call__(self, session: CallSession) -> _Consumer:
        self.sessions[session.call_id] = session
        return _Consumer(self, session.call_id)

    async def ended(self, call_id: str, timeout: float = 20.0) -> bool:
        """Wait for the call to end; returns whether it ended abnormally."""
        await asyncio.wait_for(self._ended[call_id].wait(), timeout)
        return self.endings[call_id]

    def pcm(self, call_id: str, party: Party) -> np.ndarray:
        frames = [f for f in self.frames[call_id] if f.party == party]
        if not frames:
            return np.zeros(0, np.int16)
        return np.concatenate([f.pcm for f in frames])

    def party_frames(self, call_id: str, party: Party) -> list[AudioFrame]:
        return [f for f in self.frames[call_id] if f.party == party]


@dataclass
class _Consumer:
    observer: SessionObserver
    call_id: str

    def on_audio(self, frame: AudioFrame) -> None:
        self.observer.frames[self.call_id].append(frame)

    def on_dtmf(self, digit: str, at_ms: int, duration_ms: int) -> None:
        self.observer.dtmf[self.call_id].append((digit, at_ms))

    async def close(self, abnormal: bool) -> None:
        self.observer.endings[self.call_id] = abnormal
        self.observer._ended[self.call_id].set()


@dataclass
class CarrierApp:
    client: TestClient
    app: object
    pool: asyncpg.Pool
    observer: SessionObserver
    org_id: str
    rep_id: str
    settings: object
    extra: dict = field(default_factory=dict)
    stream_tokens: dict[str, str] = field(default_factory=dict)

    async def metric(self, name: str) -> str:
        return "\n".join(line for line in (await (await self.client.get("/metrics")).text()).splitlines()
                         if line.startswith(name))

    async def new_call(self, carrier: str, direction: str, external_id: str | None) -> str:
        """A ringing call, with the stream admission its TwiML/NCCO would have carried."""
        async with self.pool.acquire() as conn:
            call_id = str(await conn.fetchval(
                """INSERT INTO calls (org_id, carrier, direction, external_id, rep_id, status, started_at)
                   VALUES ($1, $2, $3, $4, $5, 'ringing', now()) RETURNING id""",
                self.org_id, carrier, direction, external_id, self.rep_id))
            self.stream_tokens[call_id] = await issue_stream_admission(conn, call_id, carrier)
        return call_id

    def stream_params(self, call_id: str, **more: str) -> dict[str, str]:
        """The Twilio ``<Parameter>``s / Vonage websocket headers our instruction for the call held."""
        return {"call_id": call_id, "stream_token": self.stream_tokens[call_id], **more}

    def media_socket(self, carrier: str, call_id: str | None = None, **kwargs):
        """``ws_connect`` to a media socket as the carrier opens it: Twilio signs the upgrade,
        Vonage sends the ``authorization`` our NCCO gave the websocket endpoint of ``call_id``."""
        path = f"/media/{carrier}"
        if carrier == "twilio":
            upgrade = twilio_socket_headers(TWILIO_TOKEN, PUBLIC_WS_URL + path)
        else:
            upgrade = vonage_socket_headers(self.vonage_endpoint(call_id)) if call_id else {}
        kwargs["headers"] = {**upgrade, **kwargs.get("headers", {})}
        return self.client.ws_connect(path, **kwargs)

    def vonage_endpoint(self, call_id: str) -> dict:
        """The websocket endpoint our NCCO for the call held (its headers and authorization)."""
        token = self.stream_tokens[call_id]
        endpoint = WebsocketEndpoint(uri=PUBLIC_WS_URL + "/media/vonage",
                                     headers={"call_id": call_id, "stream_token": token},
                                     authorization=socket_authorization(call_id, token))
        return endpoint.model_dump(mode="json", by_alias=True, exclude_none=True)

    async def call_row(self, call_id: str):
        async with self.pool.acquire() as conn:
            return await conn.fetchrow("SELECT * FROM calls WHERE id = $1::uuid", call_id)


async def _org_and_rep(dsn: str) -> tuple[str, str]:
    conn = await asyncpg.connect(dsn)
    try:
        org = await conn.fetchval("INSERT INTO organizations (name, slug) VALUES ('Acme', 'acme') RETURNING id")
        rep = await conn.fetchval(
            """INSERT INTO users (org_id, email, name, role, phone)
               VALUES ($1, 'rep@acme.test', 'Rita Rep', 'rep', $2) RETURNING id""", org, REP_PHONE)
        return str(org), str(rep)
    finally:
        await conn.close()


async def start_carrier_app(dsn: str, redis_url: str, **env: str) -> CarrierApp:
    org_id, rep_id = await _org_and_rep(dsn)
    environ = {
        "DATABASE_URL": dsn, "REDIS_URL": redis_url, "COACHLINE_EVENT_BUS": "memory",
        "COACHLINE_PUBLIC_URL": PUBLIC_URL, "COACHLINE_STT_ENABLED": "false",  # audio path only
        "COACHLINE_TWILIO_ACCOUNT_SID": TWILIO_SID, "COACHLINE_TWILIO_AUTH_TOKEN": TWILIO_TOKEN,
        "COACHLINE_TWILIO_CALLER_ID": OUR_NUMBER,
        "COACHLINE_VONAGE_SIGNATURE_SECRET": VONAGE_SECRET, "COACHLINE_VONAGE_NUMBER": OUR_NUMBER,
        "COACHLINE_CARRIER_NUMBERS": json.dumps({OUR_NUMBER: rep_id}),
        **env,
    }
    settings = load_settings(environ)
    runtime = await Runtime(settings).start()
    app = create_app(settings, runtime)
    observer = SessionObserver()
    app[CALL_SESSIONS].consumer_factories.append(observer)
    client = TestClient(TestServer(app))
    await client.start_server()
    return CarrierApp(client, app, runtime.pool, observer, org_id, rep_id, settings,
                      extra={"runtime": runtime})


async def stop_carrier_app(ca: CarrierApp) -> None:
    await ca.client.close()
    await ca.extra["runtime"].close()


@pytest_asyncio.fixture(loop_scope="session")
async def carrier_app(migrated_database, redis_url):
    ca = await start_carrier_app(migrated_database, redis_url)
    yield ca
    await stop_carrier_app(ca)


def registry_of(ca: CarrierApp):
    return ca.app[METRICS].registry
