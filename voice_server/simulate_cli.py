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
import wave
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, TextIO

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


PROGRESS_EVERY_S = 5.0
WAV_NEEDED = "--rep-wav and --customer-wav take 16-bit PCM WAV files (mono for twilio and vonage)"


class WatchError(RuntimeError):
    """Signing in or subscribing to the live feed failed."""


class WavInputError(ValueError):
    """A WAV argument that is missing or not a WAV this command can play."""


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

    def __init__(self, http: aiohttp.ClientSession, server: str, email: str, password: str,
                 on_message: Callable[[dict, bool], None] | None = None) -> None:
        self._http, self._server = http, server.rstrip("/")
        # called with each message and whether its call started while watching
        self._on_message = on_message
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
            if self._on_message is not None:
                self._on_message(message, call_id in self.log.calls)
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


class Progress:
    """What the call is doing, on stderr while it runs: elapsed time, and with ``--watch`` the
    finals and prompts as they arrive. stdout carries only the JSON report, as its last line."""

    def __init__(self, *, enabled: bool, length_s: float, watching: bool,
                 interval_s: float = PROGRESS_EVERY_S, stream: TextIO | None = None) -> None:
        self.enabled, self.length_s, self.watching = enabled, length_s, watching
        self.interval_s = interval_s
        self._stream = stream or sys.stderr
        self._seen: set[str] = set()
        self.finals = self.prompts = 0
        self._started = time.monotonic()

    def begin(self) -> None:
        self._started = time.monotonic()

    def say(self, text: str) -> None:
        if self.enabled:
            print(f"simulate-call: {text}", file=self._stream, flush=True)

    def elapsed(self) -> float:
        return time.monotonic() - self._started

    def status(self) -> str:
        line = f"{self.elapsed():5.1f} s of a {self.length_s:.1f} s call"
        if self.watching:
            line += f"; {self.finals} final(s), {self.prompts} prompt(s) seen"
        return line

    def feed(self, message: dict, this_call: bool) -> None:
        if not this_call or message.get("id") in self._seen:
            return
        self._seen.add(message.get("id"))
        if message.get("type") == TRANSCRIPT_FINAL:
            self.finals += 1
            self.say(f"{self.elapsed():5.1f} s  final   {message.get('party')}: {message.get('text')}")
        elif message.get("type") == COACHING_PROMPT:
            self.prompts += 1
            p = message.get("prompt", {})
            self.say(f"{self.elapsed():5.1f} s  prompt  {p.get('rule_id')} ({p.get('severity')}): "
                     f"{p.get('title')}")

    async def tick(self) -> None:
        while True:
            await asyncio.sleep(self.interval_s)
            self.say(self.status())


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


async def run_simulation(settings: Settings, args: argparse.Namespace,
                         progress: Progress | None = None) -> dict:
    from voice_server.simulator import sip as sip_sim
    from voice_server.simulator.carrier import call as carrier_call

    progress = progress or Progress(enabled=False, length_s=0.0, watching=False)
    server = args.server.rstrip("/")
    async with aiohttp.ClientSession() as http:
        watcher = None
        if args.watch:
            password = args.password or os.environ.get("COACHLINE_SIM_PASSWORD", "")
            if not args.email or not password:
                raise WatchError("--watch needs --email and --password (or COACHLINE_SIM_PASSWORD)")
            watcher = FeedWatcher(http, args.http_server or server, args.email, password,
                                  on_message=progress.feed)
            await watcher.start()
            progress.say(f"signed in as {args.email}, watching the live feed")
        progress.say(f"calling {server} as {args.carrier} "
                     f"({'as fast as possible' if args.fast else 'in real time'})")
        progress.begin()
        ticker = asyncio.create_task(progress.tick())
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
                progress.say(f"hung up after {result['seconds']:.1f} s; waiting for the call's end "
                             "and its summary on the feed")
                result["call_ended"] = await watcher.wait_ended(result.get("call_id"), args.watch_grace)
                if result.get("call_id") is None and len(watcher.log.calls) == 1:
                    result["call_id"] = next(iter(watcher.log.calls))
                result.update(feed_report(watcher.log.for_call(result.get("call_id"))))
            progress.say(f"done: {progress.status()}")
            return result
        finally:
            ticker.cancel()
            await asyncio.gather(ticker, return_exceptions=True)
            if watcher is not None:
                await watcher.close()


def check_wav(path: Path, *, mono: bool) -> float:
    """The length in seconds of a 16-bit PCM WAV file; WavInputError naming the file otherwise."""
    if not path.is_file():
        hint = (" (the default WAVs come from Debian's asterisk-core-sounds-en-wav: install it, "
                "or pass --rep-wav and --customer-wav)"
                if path in (DEFAULT_REP_WAV, DEFAULT_CUSTOMER_WAV) else "")
        raise WavInputError(f"{path} not found{hint}")
    try:
        with wave.open(str(path), "rb") as wav:
            width, channels = wav.getsampwidth(), wav.getnchannels()
            rate, frames = wav.getframerate(), wav.getnframes()
    except (wave.Error, EOFError) as exc:
        raise WavInputError(f"{path} is not a WAV file this command can play ({exc}); "
                            f"{WAV_NEEDED}") from None
    if width != 2 or (mono and channels != 1) or rate <= 0:
        raise WavInputError(f"{path} is {channels} channel(s) x {8 * width} bit at {rate} Hz; "
                            f"{WAV_NEEDED}")
    return frames / rate


def _cmd_simulate_call(settings: Settings, args: argparse.Namespace) -> int:
    try:
        length_s = max(check_wav(wav, mono=args.carrier != "sip")
                       for wav in (args.rep_wav, args.customer_wav))
    except WavInputError as exc:
        print(f"coachline simulate-call: {exc}", file=sys.stderr)
        return 2
    progress = Progress(enabled=not args.quiet, length_s=length_s, watching=args.watch)
    try:
        report = asyncio.run(run_simulation(settings, args, progress))
    except (TimeoutError, WatchError, OSError, aiohttp.ClientError) as exc:
        print(f"coachline simulate-call: {exc}", file=sys.stderr)
        return 1
    except RuntimeError as exc:  # the players' SimulationError (a RuntimeError)
        print(f"coachline simulate-call: simulated call failed: {exc}", file=sys.stderr)
        return 1
    print(json.dumps(report), flush=True)
    return 0


def add_simulate_command(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "simulate-call",
        help="play WAV files into a running server as a carrier would and report what came back",
        description="Play WAV files into a running server as a carrier would. Progress goes to "
        "stderr while the call runs; the JSON report is the last line on stdout.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="examples:\n"
        "  coachline simulate-call --carrier twilio --server http://127.0.0.1:8080 \\\n"
        "      --rep-wav rep.wav --customer-wav customer.wav\n"
        "  COACHLINE_SIM_PASSWORD=... coachline simulate-call --carrier twilio \\\n"
        "      --server http://127.0.0.1:8080 --watch --email rep@acme.test > report.json\n"
        "  coachline simulate-call --carrier sip --server 127.0.0.1:5060 --to +15550100001 \\\n"
        "      --watch --http-server http://127.0.0.1:8080 --email rep@acme.test\n"
        "WAV files: 16-bit PCM, any rate (mono for twilio and vonage).",
    )
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
    p.add_argument("--quiet", action="store_true", help="no progress on stderr, the report only")
    p.add_argument("--watch-grace", type=float, default=WATCH_GRACE_S,
                   help="seconds to wait for the call's end on the feed after hanging up")
    p.set_defaults(func=_cmd_simulate_call)


def _ws_url(server: str) -> str:
    return server.replace("https://", "wss://", 1).replace("http://", "ws://", 1)
