"""The browser tests' world: an organization with two teams, its people, calls and real speech.

Shared by tests/browser and scripts/bench/screen_latency.py.
"""

from __future__ import annotations

import asyncio
import os
import uuid
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from crm_core.auth.passwords import hash_password
from crm_core.calls.records import NewCall, create_call
from media.frames import AudioFrame, Party
from media.g711 import ulaw_decode, ulaw_encode
from tests.media.speech_corpus import load_clip
from voice_server.app_keys import CALL_SESSIONS, RUNTIME
from voice_server.call_session import CallInfo

CHROMIUM = Path("/usr/bin/chromium")
PASSWORD = "correct horse battery"
SCREENSHOTS = Path(__file__).resolve().parents[2] / "docs" / "screenshots"
# The organization's own rule set: "conference" is a competitor's name here, and a room that
# "is locked" is an objection (so the post-call summary has a moment to put on the timeline).
ORG_RULES = {"keywords": {"competitor": {"phrases": [{"phrase": "conference"}]},
                          "objection_access": {"objection": True,
                                               "phrases": [{"phrase": "is locked"}]}}}
UI_TIMEOUT_MS = 30_000  # generous: the CI box has two busy cores
# Twilio as voice_server/simulator/carrier plays it: what the server believes carriers use, and our number.
PUBLIC_URL = "https://coachline.example.com"
TWILIO_SID = "AC" + "0" * 32
TWILIO_TOKEN = "sim-auth-token"
OUR_NUMBER = "+15550100000"


@dataclass
class Org:
    org_id: str
    team_a: str
    team_b: str
    rep: str           # team A
    rep_email: str
    other_rep: str     # team B
    other_rep_email: str
    manager: str       # manager of team A
    manager_email: str


@dataclass
class Site:
    url: str
    app: object
    org: Org

    async def new_call(self, rep_id: str, *, lead_id: str | None = None) -> str:
        async with self.app[RUNTIME].pool.acquire() as conn:
            call = await create_call(conn, NewCall(self.org.org_id, "simulator", "inbound",
                                                   external_id=uuid.uuid4().hex, rep_id=rep_id,
                                                   lead_id=lead_id, status="in-progress"))
        return str(call["id"])

    async def open_call(self, call_id: str, rep_id: str, *, lead_id: str | None = None):
        return await self.app[CALL_SESSIONS].open(
            CallInfo(call_id, self.org.org_id, "simulator", "inbound", rep_id=rep_id, lead_id=lead_id))

    async def new_lead(self, owner_id: str, *, phone: str | None = None) -> str:
        """A scored lead (grade A) with the reasons the scorer gives, as the CRM stores them."""
        return str(await self.app[RUNTIME].pool.fetchval(
            "INSERT INTO leads (org_id, owner_id, first_name, last_name, company, status, ai_score, "
            "grade, score_factors, scored_at, phone) VALUES ($1, $2, 'Dana', 'Diaz', 'Globex', "
            "'qualified', 87, 'A', $3, now(), $4) RETURNING id", uuid.UUID(self.org.org_id),
            uuid.UUID(owner_id),
            {"reasons": ["Director title at a 500-person company", "Replied within a day"]}, phone))

    async def close_call(self, call_id: str) -> None:
        await self.app[CALL_SESSIONS].close(call_id, reason="hangup")


def telephone_frames(names: list[str], party: Party, start_ms: int = 0, tail_ms: int = 1200):
    """µ-law round-tripped 20 ms frames of real speech clips, with silence after each."""
    at = start_ms
    for name in names:
        pcm = ulaw_decode(ulaw_encode(load_clip(name)))
        audio = np.concatenate([pcm, np.zeros(tail_ms * 8, dtype=np.int16)])
        for i in range(0, len(audio) - 159, 160):
            yield AudioFrame(audio[i:i + 160].copy(), 8000, party, at)
            at += 20


async def push_real_time(session, frames, *, speed: float = 1.0) -> int:
    """Push frames at (a multiple of) real time, as a carrier would; returns the end ms."""
    loop = asyncio.get_running_loop()
    started = loop.time()
    end_ms = 0
    for frame in frames:
        due = started + frame.timestamp_ms / 1000 / speed
        delay = due - loop.time()
        if delay > 0:
            await asyncio.sleep(delay)
        session.push_audio(frame)
        end_ms = frame.timestamp_ms + 20
    return end_ms


async def make_org(conn) -> Org:
    slug = uuid.uuid4().hex[:8]
    org = str(await conn.fetchval(
        "INSERT INTO organizations (name, slug, settings) VALUES ('Acme', $1, $2) RETURNING id",
        slug, {"coaching_rules": ORG_RULES}))
    team_a = str(await conn.fetchval("INSERT INTO teams (org_id, name) VALUES ($1, 'East') RETURNING id", org))
    team_b = str(await conn.fetchval("INSERT INTO teams (org_id, name) VALUES ($1, 'West') RETURNING id", org))
    digest = hash_password(PASSWORD)

    async def user(name, email, role, team, phone=None):
        address = f"{email}@{slug}.test"
        uid = str(await conn.fetchval(
            "INSERT INTO users (org_id, email, name, role, team_id, password_hash, phone) "
            "VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING id", org, address, name, role, team, digest,
            phone))
        return uid, address

    # Rita's desk phone is where calls to OUR_NUMBER are forwarded.
    rep, rep_email = await user("Rita Rep", "rita", "rep", team_a, phone=f"+1555{uuid.uuid4().int % 10**7:07d}")
    other, other_email = await user("Walt West", "walt", "rep", team_b)
    manager, manager_email = await user("Maya Manager", "maya", "manager", team_a)
    return Org(org, team_a, team_b, rep, rep_email, other, other_email, manager, manager_email)


async def sign_in(context, site: Site, email: str, next_path: str = "/app"):
    page = await context.new_page()
    await page.goto(f"{site.url}/login?next={next_path}")
    await page.get_by_label("Email").fill(email)
    await page.get_by_label("Password").fill(PASSWORD)
    await page.get_by_role("button", name="Sign in").click()
    await page.wait_for_url(f"{site.url}{next_path}*")
    return page


async def screenshot(page, name: str, scratch: Path) -> Path:
    """Capture the screen; into docs/screenshots (the README's pictures) only when asked.

    Every run would otherwise rewrite the committed PNGs (the times on screen differ), leaving
    the checkout dirty: COACHLINE_UPDATE_SCREENSHOTS=1 ./scripts/test tests/browser refreshes them.
    """
    folder = SCREENSHOTS if os.environ.get("COACHLINE_UPDATE_SCREENSHOTS") == "1" else scratch
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{name}.png"
    await page.screenshot(path=str(path), full_page=True)
    assert path.stat().st_size > 10_000  # a real rendering, not an empty page
    return path
