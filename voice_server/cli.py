"""The ``coachline`` command."""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import sys

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


def _cmd_migrate(settings: Settings, _args: argparse.Namespace) -> int:
    from storage.migrations import apply_migrations
    from voice_server.runtime import Runtime

    async def run() -> int:
        runtime = Runtime(settings)
        try:
            await runtime.start(migrate=False)
            assert runtime.pool is not None
            async with runtime.pool.acquire() as conn:
                applied = await apply_migrations(conn)
            for m in applied:
                print(f"applied {m.version:04d}_{m.name}")
            if not applied:
                print("database is up to date")
        finally:
            await runtime.close()
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

    from crm_core.auth.accounts import InvalidSlug, create_admin
    from crm_core.auth.passwords import WeakPassword
    from voice_server.runtime import Runtime

    password = os.environ.get("COACHLINE_ADMIN_PASSWORD") or secrets.token_urlsafe(15)
    generated = "COACHLINE_ADMIN_PASSWORD" not in os.environ

    async def run() -> int:
        runtime = Runtime(settings)
        try:
            await runtime.start()
            assert runtime.pool is not None
            async with runtime.pool.acquire() as conn:
                created = await create_admin(conn, email=args.email, org_slug=args.org, password=password)
        finally:
            await runtime.close()
        print(f"admin {args.email} in organization {args.org}"
              + (" (organization created)" if created.created_org else ""))
        if generated:
            print(f"password: {password}")
        return 0

    try:
        return asyncio.run(run())
    except (InvalidSlug, WeakPassword) as exc:
        print(f"coachline create-admin: {exc}", file=sys.stderr)
        return 2


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="coachline",
        description="Coachline: real-time voice server with live coaching and a CRM.",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    serve = sub.add_parser("serve", help="run the HTTP/WebSocket server (and local PostgreSQL/Redis if unset)")
    serve.add_argument("--host", help="listen address (default COACHLINE_HOST or 127.0.0.1)")
    serve.add_argument("--port", type=int, help="listen port (default COACHLINE_PORT or 8080)")
    serve.set_defaults(func=_cmd_serve)
    migrate = sub.add_parser("migrate", help="apply pending database migrations and exit")
    migrate.set_defaults(func=_cmd_migrate)
    config = sub.add_parser("config", help="print the effective settings")
    config.set_defaults(func=_cmd_config)
    admin = sub.add_parser("create-admin", help="create the first admin (password from "
                           "COACHLINE_ADMIN_PASSWORD, else generated and printed once)")
    admin.add_argument("--email", required=True)
    admin.add_argument("--org", required=True, help="organization slug (created if missing)")
    admin.set_defaults(func=_cmd_create_admin)
    add_recordings_commands(sub)
    add_simulate_command(sub)
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
    except Exception as exc:  # the CLI's last line of defence
        log.exception("coachline %s failed: %s", args.command, exc)
        return 1


if __name__ == "__main__":
    sys.exit(main())
