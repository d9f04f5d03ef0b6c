"""``coachline simulate-call``: play one call into a running server as a carrier would.

    coachline simulate-call --carrier twilio|vonage|sip --rep-wav A --customer-wav B \\
        --server URL [--to NUMBER] [--watch --email E --password P] [--fast]

Twilio (two µ-law tracks) and Vonage (one mixed L16 channel) go through the
HTTP server's webhooks and media WebSockets (``voice_server/simulator/carrier``); SIP
goes to the server's SIP socket as a SIPREC INVITE with two RTP streams
(``voice_server/simulator/sip.py``). With ``--watch`` the simulator signs in as a rep
(``POST /auth/token``), listens on ``/ws/live`` during the call and reports
what the server sent back: transcript finals, coaching prompts, the summary.

The players are part of the installed package (``voice_server.simulator``),
imported when the command runs so other ``coachline`` commands do not load them.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import aiohttp

from crm_core.calls.live_events import (
    CALL_ENDED,
    CALL_STARTED,
    COACHING_PROMPT,
    INSIGHT_METRICS,
    INSIGHT_SUMMARY,
    TRANSCRIPT_FINAL,
)
from voice_server.settings import Settings

DEFAULT_REP_WAV = Path("/usr/share/asterisk/sounds/en/agent-loginok.wav")
DEFAULT_CUSTOMER_WAV = Path("/usr/share/asterisk/sounds/en/hello-world.wav")
# After the simulated hang-up the server still decodes the last utterance and
# publishes the summary; the watcher waits this long for call.ended.
WATCH_GRACE_S = 30.0


class WatchError(RuntimeError):
    """Signing in or subscribing to the live feed failed."""


@dataclass
class FeedLog:
    """What the rep's live feed delivered, per call."""

    calls: set[str] = field(default_factory=set)
    ended: set[str] = field(default_factory=set)
    messages: list[dict] = field(default_factory=list)

    def for_call(self, call_id: str | None) -> list[dict]:
        return [m for m in self.messages if call_id is None or m.get("call_id") == call_id]


class FeedWatcher:
    """The rep's ``/ws/live`` for the length of the call."""

    def __init__(self, http: aiohttp.ClientSession, server: str, email: str, password: str) -> None:
        self._http, self._server = http, server.rstrip("/")
        self._email, self._password = email, password
        self.log = FeedLog()
        self._preexisting: set[str] = set()
        self._task: asyncio.Task | None = None
        self._ws: aiohttp.ClientWebSocketResponse | None = None
        self._changed = asyncio.Event()

    async def start(self) -> None:
        async with self._http.post(self._server + "/auth/token",
                                   json={"email": self._email, "password": self._password}) as resp:
            if resp.status != 200:
                raise WatchError(f"sign-in as {self._email} answered {resp.status}: {await resp.text()}")
            token = (await resp.json())["token"]
        url = _ws_url(self._server) + "/ws/live"
        try:
            self._ws = await self._http.ws_connect(url, params={"access_token": token}, heartbeat=20)
        except aiohttp.WSServerHandshakeError as exc:
            raise WatchError(f"/ws/live refused the subscription ({exc.status})") from exc
        ready = await asyncio.wait_for(self._ws.receive_json(), 30)
        self._preexisting = set(ready.get("calls", ()))
        self._task = asyncio.create_task(self._read())

    async def _read(self) -> None:
        assert self._ws is not None
        async for msg in self._ws:
            if msg.type != aiohttp.WSMsgType.TEXT:
                continue
            message = json.loads(msg.data)
            message["received_at"] = time.time()
            self.log.messages.append(message)
            call_id = message.get("call_id")
            if message.get("type") == CALL_STARTED and call_id not in self._preexisting:
                self.log.calls.add(call_id)
            if message.get("type") == CALL_ENDED:
                self.log.ended.add(call_id)
            self._changed.set()

    async def wait_ended(self, call_id: str | None, timeout: float) -> bool:
        """Until ``call_id`` (or, unknown, every call that started while watching) has ended."""
        deadline = asyncio.get_running_loop().time() + timeout
        while True:
            wanted = {call_id} if call_id else self.log.calls
            if wanted and wanted <= self.log.ended:
                return True
            left = deadline - asyncio.get_running_loop().time()
            if left <= 0 or (self._task is not None and self._task.done()):
                return False
            self._changed.clear()
            try:
                await asyncio.wait_for(self._changed.wait(), left)
            except TimeoutError:
                return False

    async def close(self) -> None:
        if self._ws is not None:
            await self._ws.close()
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)


def feed_report(messages: list[dict]) -> dict:
    """The transcript, prompts and summary among the feed's messages (replays de-duplicated by id)."""
    seen: set[str] = set()
    finals, prompts, summary, metrics = [], [], None, None
    for m in messages:
        if m.get("id") in seen:
            continue
        seen.add(m.get("id"))
        kind = m.get("type")
        if kind == TRANSCRIPT_FINAL:
            finals.append({"party": m.get("party"), "speaker": m.get("speaker"),
                           "start_ms": m.get("start_ms"), "end_ms": m.get("end_ms"), "text": m.get("text")})
        elif kind == COACHING_PROMPT:
            p = m.get("prompt", {})
            prompts.append({k: p.get(k) for k in ("id", "rule_id", "title", "at_ms", "severity", "party")})
        elif kind == INSIGHT_METRICS:
            metrics = {k: v for k, v in m.items() if k not in ("type", "id", "at", "received_at")}
        elif kind == INSIGHT_SUMMARY:
            summary = {k: v for k, v in m.items() if k not in ("type", "id", "at", "received_at")}
    finals.sort(key=lambda f: (f["start_ms"] or 0, f["party"] or ""))
    return {"transcript": finals, "prompts": prompts, "metrics": metrics, "summary": summary}


async def run_simulation(settings: Settings, args: argparse.Namespace) -> dict:
    from voice_server.simulator import sip as sip_sim
    from voice_server.simulator.carrier import call as carrier_call

    server = args.server.rstrip("/")
    async with aiohttp.ClientSession() as http:
        watcher = None
        if args.watch:
            password = args.password or os.environ.get("COACHLINE_SIM_PASSWORD", "")
            if not args.email or not password:
                raise WatchError("--watch needs --email and --password (or COACHLINE_SIM_PASSWORD)")
            watcher = FeedWatcher(http, args.http_server or server, args.email, password)
            await watcher.start()
        try:
            started = time.monotonic()
            if args.carrier == "sip":
                host, _, port = server.removeprefix("sip:").rpartition(":")
                if not host or not port.isdigit():
                    raise sip_sim.SimulationError(f"--server for sip is host:port of the SIP socket, not {server!r}")
                report = await sip_sim.simulate_sip_call(sip_sim.SimulatedSipCall(
                    (host, int(port)), args.to or "", args.rep_wav, args.customer_wav,
                    codec=args.codec, realtime=not args.fast, username=args.sip_user,
                    password=args.sip_password or os.environ.get("COACHLINE_SIM_SIP_PASSWORD")))
                if report.status != 200:
                    raise sip_sim.SimulationError(f"the server answered the INVITE with {report.status}")
                result: dict[str, Any] = {"carrier": "sip", "call_id": None, **asdict(report)}
            else:
                to = args.to or next(iter(settings.carrier_numbers), None)
                if not to:
                    raise carrier_call.SimulationError("--to: which of our numbers the customer rings")
                call = carrier_call.SimulatedCall(
                    carrier=args.carrier, server=server, public_url=args.public_url or settings.public_url,
                    rep_wav=args.rep_wav, customer_wav=args.customer_wav, to_number=to,
                    twilio_auth_token=settings.twilio_auth_token,
                    twilio_account_sid=settings.twilio_account_sid,
                    vonage_signature_secret=settings.vonage_signature_secret, realtime=not args.fast)
                result = asdict(await carrier_call.simulate_call(call))
            result["seconds"] = round(time.monotonic() - started, 3)
            if watcher is not None:
                result["call_ended"] = await watcher.wait_ended(result.get("call_id"), args.watch_grace)
                if result.get("call_id") is None and len(watcher.log.calls) == 1:
                    result["call_id"] = next(iter(watcher.log.calls))
                result.update(feed_report(watcher.log.for_call(result.get("call_id"))))
            return result
        finally:
            if watcher is not None:
                await watcher.close()


def _cmd_simulate_call(settings: Settings, args: argparse.Namespace) -> int:
    for wav in (args.rep_wav, args.customer_wav):
        if not wav.is_file():
            print(f"coachline simulate-call: {wav} not found", file=sys.stderr)
            return 2
    try:
        report = asyncio.run(run_simulation(settings, args))
    except (TimeoutError, WatchError, OSError, aiohttp.ClientError) as exc:
        print(f"coachline simulate-call: {exc}", file=sys.stderr)
        return 1
    except RuntimeError as exc:  # the players' SimulationError (a RuntimeError)
        print(f"coachline simulate-call: simulated call failed: {exc}", file=sys.stderr)
        return 1
    print(json.dumps(report))
    return 0


def add_simulate_command(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("simulate-call", help="play WAV files into a running server as a carrier "
                       "would and report what came back")
    p.add_argument("--carrier", choices=["twilio", "vonage", "sip"], required=True)
    p.add_argument("--server", required=True,
                   help="the server's URL (twilio, vonage), or host:port of its SIP socket (sip)")
    p.add_argument("--rep-wav", type=Path, default=DEFAULT_REP_WAV)
    p.add_argument("--customer-wav", type=Path, default=DEFAULT_CUSTOMER_WAV)
    p.add_argument("--to", help="the number the customer rings (twilio/vonage: one of "
                   "COACHLINE_CARRIER_NUMBERS, the first by default; sip: the rep's number)")
    p.add_argument("--public-url", help="the URL carriers use to reach the server, for webhook "
                   "signatures (default COACHLINE_PUBLIC_URL)")
    p.add_argument("--codec", choices=["PCMA", "PCMU"], default="PCMA", help="sip only")
    p.add_argument("--sip-user", help="sip only: digest user, when the server challenges this peer")
    p.add_argument("--sip-password", help="sip only: digest password (or COACHLINE_SIM_SIP_PASSWORD)")
    p.add_argument("--fast", action="store_true", help="send as fast as possible, not in real time")
    p.add_argument("--watch", action="store_true", help="sign in as the rep and report the live feed")
    p.add_argument("--email", help="the rep's email (--watch)")
    p.add_argument("--password", help="the rep's password (--watch; or COACHLINE_SIM_PASSWORD)")
    p.add_argument("--http-server", help="the server's URL for --watch when --server is a SIP address")
    p.add_argument("--watch-grace", type=float, default=WATCH_GRACE_S,
                   help="seconds to wait for the call's end on the feed after hanging up")
    p.set_defaults(func=_cmd_simulate_call)


def _ws_url(server: str) -> str:
    return server.replace("https://", "wss://", 1).replace("http://", "ws://", 1)
