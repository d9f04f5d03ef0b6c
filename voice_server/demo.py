"""``coachline demo``: the server on its embedded defaults, a demo organisation, and a call.

The demo keeps what it generates under ``<data_dir>/demo/`` (mode 0700): the recording master
key (outside ``<data_dir>/recordings``, so the store accepts it), the auth token its Twilio
simulator and the server share, and the call's two WAV tracks. Settings the operator set
win over all of these. The demo's carrier number rings the demo rep through
``route_carrier_numbers``, the one place that knows how numbers reach reps.
"""

from __future__ import annotations

import asyncio
import datetime
import secrets
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TextIO

import aiohttp

from crm_core.demo_org import CALL_TAKER, DEMO_ORG_NAME, DEMO_SLUG, PEOPLE, DemoOrg
from storage.keys import new_master_key
from storage.local_processes import private_dir, write_secret
from voice_server.settings import Settings
from voice_server.simulator.carrier.call import SimulatedCall, SimulationReport, simulate_call
from voice_server.simulator.demo_call import CUSTOMER_NUMBER, demo_conversation

# Our (fictional) number the demo customer rings; it is routed to the demo rep.
DEMO_NUMBER = "+15550100000"
READY_TIMEOUT_S = 300.0  # the first start creates the database and loads the speech model


class DemoNotSetUp(RuntimeError):
    """``coachline demo call`` before ``coachline demo`` has ever run on this data directory."""


@dataclass(frozen=True)
class DemoFiles:
    directory: Path

    @property
    def recording_key(self) -> Path:
        return self.directory / "recording-key"

    @property
    def twilio_token(self) -> Path:
        return self.directory / "twilio-auth-token"

    def create(self) -> None:
        """The key and the token, generated once per data directory and kept (0600)."""
        private_dir(self.directory)
        if not self.recording_key.exists():
            key_id = f"demo-{datetime.date.today():%Y%m%d}-{secrets.token_hex(3)}"
            write_secret(self.recording_key, f"{key_id}:{new_master_key()}")
        if not self.twilio_token.exists():
            write_secret(self.twilio_token, secrets.token_urlsafe(24))

    def exists(self) -> bool:
        return self.twilio_token.exists()

    def call_wavs(self) -> tuple[Path, Path]:
        """The demo call's rep and customer tracks (written once)."""
        rep, customer = self.directory / "rep.wav", self.directory / "customer.wav"
        if not (rep.exists() and customer.exists()):
            demo_conversation(tail_ms=3000).write(self.directory)
        return rep, customer


def demo_files(settings: Settings) -> DemoFiles:
    return DemoFiles(settings.data_dir / "demo")


def demo_settings(settings: Settings, files: DemoFiles, *, host: str | None = None,
                  port: int | None = None) -> Settings:
    """``settings`` with the demo's key and token where the operator set none."""
    update: dict = {k: v for k, v in (("host", host), ("port", port)) if v is not None}
    if not settings.twilio_auth_token:
        update["twilio_auth_token"] = files.twilio_token.read_text().strip()
    if settings.recording_enabled and not (settings.recording_key or settings.recording_key_file):
        update["recording_key_file"] = files.recording_key
    if "public_url" not in settings.model_fields_set:
        # webhook signatures are made over the URL the simulator calls
        update["public_url"] = server_url(settings.model_copy(update=update))
    return settings.model_copy(update=update)


def route_carrier_numbers(settings: Settings, numbers: dict[str, str]) -> Settings:
    """Route our carrier ``numbers`` to rep ids for the server these settings start.

    Today the routing table is the COACHLINE_CARRIER_NUMBERS setting, so the demo's numbers
    join it (the operator's own entries win); where the table lives is this function's
    business alone."""
    return settings.model_copy(
        update={"carrier_numbers": {**numbers, **settings.carrier_numbers}})


def server_url(settings: Settings) -> str:
    host = settings.host if settings.host not in ("0.0.0.0", "::", "") else "127.0.0.1"
    if ":" in host:
        host = f"[{host}]"
    return f"http://{host}:{settings.port}"


def welcome(settings: Settings, demo: DemoOrg, *, calls_every_s: float | None) -> str:
    """What the operator reads once the demo is up (the only place passwords are shown)."""
    url = server_url(settings)
    lines = [
        "",
        f"Coachline demo is running: sign in at {url}/login",
        f"  organization {DEMO_ORG_NAME!r} (slug {DEMO_SLUG})",
    ]
    width = max(len(p.email()) for p in PEOPLE)
    for person in PEOPLE:
        role = "rep, takes the demo calls" if person.key == CALL_TAKER else person.role
        password = demo.passwords.get(person.email())
        shown = f"password {password}" if password else "password as shown before"
        lines.append(f"  {person.email():<{width}}  {shown}  ({role})")
    if len(demo.passwords) < len(PEOPLE):
        lines.append("  Passwords are shown only when they are made: "
                     "`coachline demo --new-passwords` makes new ones.")
    rep = next(p for p in PEOPLE if p.key == CALL_TAKER)
    lines.append(f"Sign in as {rep.email()} and open Live call to watch the call as it is coached.")
    if calls_every_s is not None:
        lines.append(f"A sales call rings {rep.name} now and {calls_every_s:.0f} s after each "
                     "call ends; `coachline demo call` plays one more. Ctrl-C stops the demo.")
    else:
        lines.append("`coachline demo call` plays a sales call. Ctrl-C stops the demo.")
    return "\n".join(lines) + "\n"


async def wait_ready(url: str, server: asyncio.Task, timeout_s: float = READY_TIMEOUT_S) -> bool:
    """Until the server answers /ready (False when it stopped first or took too long)."""
    deadline = time.monotonic() + timeout_s
    async with aiohttp.ClientSession() as http:
        while time.monotonic() < deadline and not server.done():
            try:
                async with http.get(url + "/ready", timeout=aiohttp.ClientTimeout(total=5)) as r:
                    if r.status == 200:
                        return True
            except (aiohttp.ClientError, TimeoutError):
                pass
            await asyncio.sleep(0.2)
    return False


async def play_demo_call(settings: Settings, files: DemoFiles) -> SimulationReport:
    """One demo call, as Twilio would bring it: the customer rings DEMO_NUMBER."""
    rep_wav, customer_wav = files.call_wavs()
    return await simulate_call(SimulatedCall(
        carrier="twilio", server=server_url(settings), public_url=settings.public_url,
        rep_wav=rep_wav, customer_wav=customer_wav, to_number=DEMO_NUMBER,
        from_number=CUSTOMER_NUMBER, twilio_auth_token=settings.twilio_auth_token,
        twilio_account_sid=settings.twilio_account_sid, realtime=True))


async def call_loop(settings: Settings, files: DemoFiles, *, calls: int | None, gap_s: float,
                    out: TextIO = sys.stdout) -> None:
    """``calls`` demo calls (None: until cancelled), ``gap_s`` apart."""
    played = 0
    while calls is None or played < calls:
        played += 1
        say(out, f"demo call {played}: ringing {DEMO_NUMBER}")
        try:
            report = await play_demo_call(settings, files)
        except (RuntimeError, OSError, aiohttp.ClientError) as exc:
            say(out, f"demo call {played} failed: {exc}")
        else:
            say(out, f"demo call {played} ended after {report.seconds:.0f} s (call {report.call_id})")
        if calls is None or played < calls:
            await asyncio.sleep(gap_s)


def say(out: TextIO, text: str) -> None:
    print(f"coachline demo: {text}", file=out, flush=True)
