"""The ``coachline`` command."""

from __future__ import annotations

import argparse
import asyncio
import importlib.metadata
import logging
import os
import sys
import textwrap

from voice_server.admin_cli import add_admin_commands
from voice_server.cli_database import open_database
from voice_server.demo_cli import add_demo_command
from voice_server.logs import configure_logging
from voice_server.recordings_cli import add_recordings_commands
from voice_server.redaction import masked_settings, register_secrets, settings_secrets
from voice_server.settings import Settings, SettingsError, load_settings
from voice_server.simulate_cli import add_simulate_command

log = logging.getLogger("coachline")


def _cmd_serve(settings: Settings, args: argparse.Namespace) -> int:
    # The server never downloads models; huggingface_hub (used by faster-whisper and the
    # optional pyannote pipeline) reads this once, when first imported below.
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    from voice_server.server import serve
    from voice_server.startup_checks import check_startup

    # before any local server starts or any migration runs (exit code 2, see main)
    check_startup(settings)
    overrides = {k: v for k, v in (("host", args.host), ("port", args.port)) if v is not None}
    if overrides:
        settings = settings.model_copy(update=overrides)
    asyncio.run(serve(settings))
    return 0


def _cmd_speech_worker(settings: Settings, args: argparse.Namespace) -> int:
    os.environ.setdefault("HF_HUB_OFFLINE", "1")  # models come from packages, never downloaded
    from media.stt.models import ModelChecksumError, ModelNotInstalledError
    from voice_server.speech_pools import load_local_pool, pool_parallelism
    from voice_server.speech_worker import run_worker

    if settings.redis_url is None:
        print("coachline speech-worker: REDIS_URL must name the media nodes' Redis", file=sys.stderr)
        return 2
    try:
        pool = load_local_pool(settings)
    except (ModelNotInstalledError, ModelChecksumError) as exc:
        print(f"coachline speech-worker: COACHLINE_STT_MODEL: {exc}", file=sys.stderr)
        return 2
    workers, threads = pool_parallelism(settings)
    log.info("speech worker: model %s on %s (%d decode workers x %d threads)",
             settings.stt_model, settings.stt_device, workers, threads)
    description = {"model": settings.stt_model, "device": settings.stt_device, "workers": workers}
    asyncio.run(run_worker(settings.redis_url, pool, worker_id=args.id, description=description))
    return 0


def _cmd_migrate(settings: Settings, _args: argparse.Namespace) -> int:
    from storage.migrations import apply_migrations

    async def run() -> int:
        async with (
            open_database(settings, "migrate", migrate=False) as pool,
            pool.acquire() as conn,
        ):
            applied = await apply_migrations(conn)
        for m in applied:
            print(f"applied {m.version:04d}_{m.name}")
        if not applied:
            print("database is up to date")
        return 0

    return asyncio.run(run())


def _cmd_config(settings: Settings, _args: argparse.Namespace) -> int:
    # Secrets show as <set>/<unset>; passwords inside URLs and SIP peers as [redacted].
    for name, value in masked_settings(settings):
        print(f"{name} = {value}")
    return 0


def _cmd_create_admin(settings: Settings, args: argparse.Namespace) -> int:
    # the first admin of a fresh install (also resets an admin's password)
    import secrets

    from crm_core.auth.accounts import InvalidSlug, SlugTaken, check_slug, create_admin, slug_for
    from crm_core.auth.passwords import WeakPassword

    password = os.environ.get("COACHLINE_ADMIN_PASSWORD") or secrets.token_urlsafe(15)
    generated = "COACHLINE_ADMIN_PASSWORD" not in os.environ

    async def run() -> int:
        # the slug is checked before anything starts: a typo costs no database start-up
        slug = check_slug(args.slug) if args.slug else slug_for(args.org)
        async with (
            open_database(settings, "create-admin", migrate=True) as pool,
            pool.acquire() as conn,
        ):
            created = await create_admin(
                conn, email=args.email, org_slug=slug, org_name=args.org, password=password
            )
        print(
            f"admin {args.email} in organization {created.org_name!r} (slug {created.org_slug})"
            + (" (organization created)" if created.created_org else "")
        )
        if generated:
            print(f"password: {password}")
        return 0

    try:
        return asyncio.run(run())
    except (InvalidSlug, SlugTaken, WeakPassword) as exc:
        print(f"coachline create-admin: {exc}", file=sys.stderr)
        return 2


def _version() -> str:
    try:
        return importlib.metadata.version("coachline")
    except importlib.metadata.PackageNotFoundError:  # run from a checkout that is not installed
        return "unknown (not installed)"


def _examples(*lines: str) -> str:
    return "examples:\n" + "\n".join(f"  {line}" for line in lines)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="coachline",
        description="Coachline: real-time voice server with live coaching and a CRM.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=_examples(
            "coachline serve                      # PostgreSQL/Redis of its own under .data/",
            "coachline demo                       # a demo organization and coached sales calls",
            "coachline create-admin --email admin@acme.test --org \"Acme\"",
            "coachline config                     # the effective settings, secrets masked",
            "coachline COMMAND --help             # a command's options and examples",
        )
        + "\n\nThe database: DATABASE_URL when set, else the embedded one under "
        "COACHLINE_DATA_DIR\n(default .data in the current directory), for every command.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {_version()}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def command(name: str, help: str, *examples: str, more: str = "") -> argparse.ArgumentParser:
        text = f"{help[0].upper()}{help[1:]}. {more}".strip()
        return sub.add_parser(
            name, help=help, description=textwrap.fill(text, 88),
            epilog=_examples(*examples), formatter_class=argparse.RawDescriptionHelpFormatter,
        )

    serve = command(
        "serve", "run the HTTP/WebSocket server (and local PostgreSQL/Redis if unset)",
        "coachline serve",
        "coachline serve --host 0.0.0.0 --port 8080",
        "DATABASE_URL=postgresql://coachline@db/coachline REDIS_URL=redis://cache:6379 "
        "coachline serve",
    )
    serve.add_argument("--host", help="listen address (default COACHLINE_HOST or 127.0.0.1)")
    serve.add_argument("--port", type=int, help="listen port (default COACHLINE_PORT or 8080)")
    serve.set_defaults(func=_cmd_serve)
    worker = command(
        "speech-worker", "decode speech for media nodes (speech tier, over Redis Streams)",
        "REDIS_URL=redis://:secret@bus:6379 coachline speech-worker",
        "REDIS_URL=redis://:secret@bus:6379 COACHLINE_STT_DEVICE=cuda "
        "COACHLINE_STT_COMPUTE_TYPE=float16 coachline speech-worker",
        more="Loads the speech model like serve (COACHLINE_STT_*) and serves media nodes "
        "that run with COACHLINE_STT_REMOTE=auto or required. Opens no port; run as many as "
        "needed, on any machine that reaches the Redis.",
    )
    worker.add_argument("--id", help="worker name in its heartbeat key (default host-pid)")
    worker.set_defaults(func=_cmd_speech_worker)
    migrate = command(
        "migrate", "apply pending database migrations and exit",
        "coachline migrate",
        "COACHLINE_DATA_DIR=/var/lib/coachline coachline migrate",
    )
    migrate.set_defaults(func=_cmd_migrate)
    config = command(
        "config", "print the effective settings, every secret masked",
        "coachline config",
        "coachline config | grep RECORDING",
    )
    config.set_defaults(func=_cmd_config)
    admin = command(
        "create-admin", "create an admin (and the organization if missing)",
        "coachline create-admin --email admin@acme.test --org \"Acme\"          # slug acme",
        "coachline create-admin --email boss@acme.test --org \"Acme Café & Co\"  # acme-cafe-co",
        "coachline create-admin --email admin@acme.test --org \"Acme\" --slug acme-eu",
        "COACHLINE_ADMIN_PASSWORD='a long password' coachline create-admin "
        "--email admin@acme.test --org acme",
        more="Run again for an existing admin, it sets a new password. The password comes "
        "from COACHLINE_ADMIN_PASSWORD, else it is generated and printed once. The "
        "organization is found by its slug; a slug that belongs to an organization of "
        "another name is refused (choose one with --slug).",
    )
    admin.add_argument("--email", required=True)
    admin.add_argument(
        "--org", required=True,
        help="the organization's display name (or its slug); created if missing",
    )
    admin.add_argument(
        "--slug",
        help="the organization's slug (lowercase letters, digits, '-'); default: made from "
        "--org, ASCII-folded and lowercased, other characters as '-'",
    )
    admin.set_defaults(func=_cmd_create_admin)
    add_recordings_commands(sub)
    add_simulate_command(sub)
    add_admin_commands(sub)
    add_demo_command(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        settings = load_settings()
    except SettingsError as exc:
        print(f"coachline: {exc}", file=sys.stderr)
        return 2
    configure_logging(settings.log_level, settings.log_format)
    register_secrets(settings_secrets(settings))
    try:
        return args.func(settings, args)
    except SettingsError as exc:
        print(f"coachline: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    except Exception:  # the CLI's last line of defence
        log.exception("coachline %s failed", args.command)
        return 1


if __name__ == "__main__":
    sys.exit(main())
