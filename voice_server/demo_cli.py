"""``coachline demo`` (serve with a demo organisation and play sales calls into it),
``coachline demo call`` (one more call into a running demo) and ``coachline demo --reset``."""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import uuid

import aiohttp

from voice_server.cli_database import open_database
from voice_server.demo import (
    DEMO_NUMBER,
    DemoNotSetUp,
    call_loop,
    demo_files,
    demo_settings,
    play_demo_call,
    route_carrier_numbers,
    say,
    server_url,
    wait_ready,
    welcome,
)
from voice_server.redaction import register_secrets
from voice_server.settings import Settings

DEFAULT_GAP_S = 20.0


def _cmd_demo(settings: Settings, args: argparse.Namespace) -> int:
    if args.demo_command == "call":
        try:
            return _cmd_demo_call(settings, args)
        except DemoNotSetUp as exc:
            print(f"coachline demo call: {exc}", file=sys.stderr)
            return 2
        except (RuntimeError, OSError, aiohttp.ClientError) as exc:
            print(f"coachline demo call: the call failed ({exc}); is `coachline demo` running "
                  f"on {server_url(settings)}?", file=sys.stderr)
            return 1
    if args.reset:
        return asyncio.run(_reset(settings))
    os.environ.setdefault("HF_HUB_OFFLINE", "1")  # as serve: no model is ever downloaded
    from voice_server.startup_checks import check_startup

    files = demo_files(settings)
    files.create()
    settings = demo_settings(settings, files, host=args.host, port=args.port)
    check_startup(settings)  # before any local server starts or any migration runs
    from crm_core.demo_org import DemoSlugTaken

    try:
        return asyncio.run(_run(settings, files, args))
    except DemoSlugTaken as exc:
        print(f"coachline demo: {exc}", file=sys.stderr)
        return 2


async def _run(settings: Settings, files, args: argparse.Namespace) -> int:
    from crm_core.demo_org import ensure_demo_org
    from voice_server.server import serve

    calls = None if args.calls < 0 else args.calls
    # The demo's own connection opens (and, embedded, starts) the database; the server shares
    # it, so PostgreSQL starts once.
    async with open_database(settings, "demo", migrate=True) as pool:
        async with pool.acquire() as conn:
            demo = await ensure_demo_org(conn, new_passwords=args.new_passwords)
        register_secrets(demo.passwords.values())  # never in a log line, should one quote it
        say(sys.stdout, "demo organization " + ("created" if demo.created else "found")
            + f"; starting the server on {server_url(settings)}")
        settings = route_carrier_numbers(settings, {DEMO_NUMBER: demo.call_taker_id})
        stop = asyncio.Event()
        server = asyncio.create_task(serve(settings, stop=stop))
        player = None
        try:
            if not await wait_ready(server_url(settings), server):
                if not server.done():
                    say(sys.stderr, "the server did not become ready; stopping")
                    stop.set()
                await server
                return 1
            print(welcome(settings, demo, calls_every_s=args.gap if calls != 0 else None),
                  flush=True)
            if calls != 0:
                player = asyncio.create_task(call_loop(settings, files, calls=calls, gap_s=args.gap))
            # Ctrl-C sets ``stop``: the simulated caller hangs up first, so the server's drain
            # does not wait for the call to finish playing
            stopping = asyncio.create_task(stop.wait())
            await asyncio.wait({server, stopping}, return_when=asyncio.FIRST_COMPLETED)
            stopping.cancel()
            if player is not None:
                player.cancel()
                await asyncio.gather(player, return_exceptions=True)
            await server
        finally:
            if player is not None:
                player.cancel()
                await asyncio.gather(player, return_exceptions=True)
            if not server.done():
                stop.set()
                await asyncio.gather(server, return_exceptions=True)
    return 0


def _cmd_demo_call(settings: Settings, args: argparse.Namespace) -> int:
    files = demo_files(settings)
    if not files.exists():
        raise DemoNotSetUp(f"no demo in {settings.data_dir}: run `coachline demo` first "
                           "(from the same directory, or with the same COACHLINE_DATA_DIR)")
    settings = demo_settings(settings, files, host=args.host, port=args.port)
    report = asyncio.run(play_demo_call(settings, files))
    say(sys.stdout, f"demo call ended after {report.seconds:.0f} s (call {report.call_id})")
    return 0


async def _reset(settings: Settings) -> int:
    from crm_core.demo_org import delete_demo_org, demo_recording_ids
    from voice_server.recordings import build_store

    files = demo_files(settings)
    async with (
        open_database(settings, "demo --reset", migrate=True) as pool,
        pool.acquire() as conn,
    ):
        recordings = await demo_recording_ids(conn)
        deleted = await delete_demo_org(conn)
    if recordings and files.exists():
        store = build_store(demo_settings(settings, files))
        for rid in recordings if store is not None else ():
            store.delete(uuid.UUID(rid))
    say(sys.stdout, "demo organization deleted" + (f" with {len(recordings)} recording(s)"
                                                   if recordings else "")
        if deleted else "no demo organization here; nothing to delete")
    return 0


def add_demo_command(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "demo",
        help="serve with a demo organization and play coached sales calls into it",
        description="Start the server as `serve` does (PostgreSQL and Redis of its own under "
        "the data directory unless DATABASE_URL/REDIS_URL are set) with a demo organization: "
        "an admin, a manager and two reps on a team, leads, deals, a coaching rule set with "
        "battle cards, a recording key and a carrier number routed to a rep. Then a sales call "
        "plays into it as Twilio would bring it, again and again. The sign-in URL and the "
        "users' passwords are printed once, when they are made. Rerunning it keeps the "
        "organization as it is.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="examples:\n"
        "  coachline demo                     # http://127.0.0.1:8080, a call now and then\n"
        "  coachline demo --port 9000 --calls 1\n"
        "  coachline demo call                # one more call into the running demo\n"
        "  coachline demo --new-passwords     # the users get (and you see) new passwords\n"
        "  coachline demo --reset             # delete the demo organization and its calls",
    )
    p.add_argument("--host", help="listen address (default COACHLINE_HOST or 127.0.0.1)")
    p.add_argument("--port", type=int, help="listen port (default COACHLINE_PORT or 8080)")
    p.add_argument("--calls", type=int, default=-1,
                   help="how many calls to play (default: one after another until Ctrl-C; "
                   "0: none, play them with `coachline demo call`)")
    p.add_argument("--gap", type=float, default=DEFAULT_GAP_S,
                   help=f"seconds between calls (default {DEFAULT_GAP_S:.0f})")
    p.add_argument("--new-passwords", action="store_true",
                   help="give the demo users new passwords and print them")
    p.add_argument("--reset", action="store_true",
                   help="delete the demo organization (users, CRM records, calls, recordings)")
    p.set_defaults(func=_cmd_demo, demo_command=None)
    actions = p.add_subparsers(dest="demo_command", metavar="ACTION")
    call = actions.add_parser(
        "call", help="play one sales call into the running demo",
        description="Play the demo's sales call into the demo server running on this data "
        "directory (another terminal's `coachline demo`), as Twilio would bring it.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="examples:\n  coachline demo call\n  coachline demo call --port 9000",
    )
    call.add_argument("--host", help="the demo server's address (default COACHLINE_HOST)")
    call.add_argument("--port", type=int, help="the demo server's port (default COACHLINE_PORT)")
