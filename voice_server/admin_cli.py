"""``coachline users …`` and ``coachline org …``: what the admin screens do, for scripted installs.

Each command calls the same crm_core/admin functions as the API (same validation, same audit
trail, recorded as the system), on the database ``serve`` would use (voice_server/cli_database.py).
Output is JSON on stdout (one object or list), errors one line on stderr with exit code 1.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
from collections.abc import Awaitable, Callable
from typing import Any

import asyncpg

from crm_core.admin import carrier_numbers, rule_sets
from crm_core.admin import users as admin_users
from crm_core.admin.org_settings import (
    SETTING_KEYS,
    change_settings,
    org_id_for,
    organization_row,
    parse_cli_value,
    read_settings,
)
from crm_core.api.schemas.users import UserCreate
from crm_core.api_errors import ApiError
from crm_core.auth.passwords import hash_password
from voice_server.cli_database import open_database
from voice_server.rule_set_engine import CoachingRuleSets
from voice_server.settings import Settings

Action = Callable[[asyncpg.Connection, str, argparse.Namespace], Awaitable[Any]]
_RAW = argparse.RawDescriptionHelpFormatter


def _print(value: Any) -> None:
    print(json.dumps(value, indent=2, default=str))


def _run(settings: Settings, args: argparse.Namespace, name: str, action: Action) -> int:
    async def run() -> Any:
        async with (
            open_database(settings, name, migrate=True) as pool,
            pool.acquire() as conn,
            conn.transaction(),
        ):
            org_id = await org_id_for(conn, args.org)
            return await action(conn, org_id, args)

    try:
        _print(asyncio.run(run()))
    except ApiError as exc:
        detail = f" {json.dumps(exc.details, default=str)}" if exc.details else ""
        print(f"coachline {name}: {exc.message}{detail}", file=sys.stderr)
        return 1
    return 0


# --- users -----------------------------------------------------------------------------------


async def _users_list(conn, org_id, _args):
    return [u.model_dump(mode="json") for u in await admin_users.list_users(conn, org_id)]


async def _users_create(conn, org_id, args):
    password = os.environ.get("COACHLINE_USER_PASSWORD")
    team_id = await admin_users.team_by_name(conn, org_id, args.team) if args.team else None
    fields = {
        "email": args.email,
        "name": args.name,
        "role": args.role,
        "team_id": team_id,
        "territory": args.territory,
        "phone": args.phone,
        "sip_uri": args.sip_uri,
        "password": password,
    }
    try:
        body = UserCreate.model_validate({k: v for k, v in fields.items() if v is not None})
    except ValueError as exc:
        raise ApiError(f"invalid user: {exc}") from None
    digest = await asyncio.to_thread(hash_password, password) if password else None
    _, changes = admin_users.operator(org_id)
    return (await admin_users.create_user(conn, changes, body, digest)).model_dump(mode="json")


async def _users_set_role(conn, org_id, args):
    me, changes = admin_users.operator(org_id)
    user_id = await admin_users.user_by_email(conn, org_id, args.email)
    return (
        await admin_users.update_user(conn, me, changes, user_id, {"role": args.role})
    ).model_dump(mode="json")


async def _users_deactivate(conn, org_id, args):
    me, changes = admin_users.operator(org_id)
    user_id = await admin_users.user_by_email(conn, org_id, args.email)
    return (await admin_users.deactivate_user(conn, me, changes, user_id)).model_dump(mode="json")


# --- org -------------------------------------------------------------------------------------


async def _org_show(conn, org_id, _args):
    return {
        **await organization_row(conn, org_id),
        "settings": (await read_settings(conn, org_id)).model_dump(mode="json"),
        "coaching_rules": await rule_sets.current_rule_set(conn, org_id),
        "carrier_numbers": await carrier_numbers.list_numbers(conn, org_id),
    }


async def _org_set(conn, org_id, args):
    _, changes = admin_users.operator(org_id)
    if args.key == "coaching_rules":  # the rule set has its own, versioned path
        rules = json.loads(args.value) if args.value.strip().startswith("{") else None
        if rules is None:
            raise ApiError("coaching_rules takes a JSON object")
        saved = await rule_sets.save_rule_set(
            conn, changes, CoachingRuleSets(), rules, note="coachline org set"
        )
        return {"version": saved["version"], "rules": saved["rules"]}
    value = parse_cli_value(args.key, args.value)
    return (await change_settings(conn, changes, {args.key: value})).model_dump(mode="json")


async def _numbers_list(conn, org_id, _args):
    return await carrier_numbers.list_numbers(conn, org_id)


async def _numbers_map(conn, org_id, args):
    _, changes = admin_users.operator(org_id)
    user_id = await admin_users.user_by_email(conn, org_id, args.email)
    return await carrier_numbers.map_number(conn, changes, args.number, user_id)


async def _numbers_unmap(conn, org_id, args):
    _, changes = admin_users.operator(org_id)
    await carrier_numbers.unmap_number(conn, changes, number=args.number)
    return {"unmapped": carrier_numbers.normalize_number(args.number)}


def _sub(
    parent: argparse._SubParsersAction, name: str, help: str, *examples: str
) -> argparse.ArgumentParser:
    return parent.add_parser(
        name,
        help=help,
        description=help[0].upper() + help[1:] + ".",
        formatter_class=_RAW,
        epilog="examples:\n" + "\n".join(f"  {e}" for e in examples),
    )


def _action(parser: argparse.ArgumentParser, name: str, action: Action) -> None:
    parser.add_argument("--org", help="the organization's slug (default: the only one there is)")
    parser.set_defaults(func=lambda settings, args: _run(settings, args, name, action))


def add_admin_commands(sub: argparse._SubParsersAction) -> None:
    users = sub.add_parser(
        "users",
        help="list, create, change and deactivate users (as the admin screens do)",
        formatter_class=_RAW,
        epilog="examples:\n"
        "  coachline users list --org acme\n"
        "  coachline users create --org acme --email rita@acme.test --name 'Rita Rep' --team East\n"
        "  coachline users set-role --org acme rita@acme.test manager\n"
        "  coachline users deactivate --org acme rita@acme.test",
    )
    actions = users.add_subparsers(dest="users_command", required=True, metavar="ACTION")
    _action(
        _sub(
            actions,
            "list",
            "the organization's users (JSON)",
            "coachline users list",
            "coachline users list --org acme | jq '.[].email'",
        ),
        "users list",
        _users_list,
    )
    create = _sub(
        actions,
        "create",
        "add a user; the password comes from COACHLINE_USER_PASSWORD (else none yet)",
        "COACHLINE_USER_PASSWORD='a long password' coachline users create --email rita@acme.test --name 'Rita Rep'",
        "coachline users create --email max@acme.test --name Max --role manager --sip-uri sip:max@pbx.acme",
    )
    create.add_argument("--email", required=True)
    create.add_argument("--name", required=True)
    create.add_argument("--role", choices=("rep", "manager", "admin"), default="rep")
    create.add_argument("--team", help="the team's name")
    create.add_argument("--territory")
    create.add_argument("--phone", help="where the rep's calls ring (E.164)")
    create.add_argument("--sip-uri", help="where the rep's calls ring over SIP (sip:user@host)")
    _action(create, "users create", _users_create)
    set_role = _sub(
        actions,
        "set-role",
        "change a user's role",
        "coachline users set-role rita@acme.test manager",
    )
    set_role.add_argument("email")
    set_role.add_argument("role", choices=("rep", "manager", "admin"))
    _action(set_role, "users set-role", _users_set_role)
    deactivate = _sub(
        actions,
        "deactivate",
        "deactivate a user: their sessions and API tokens end",
        "coachline users deactivate rita@acme.test",
    )
    deactivate.add_argument("email")
    _action(deactivate, "users deactivate", _users_deactivate)

    org = sub.add_parser(
        "org",
        help="show and change the organization's settings and carrier numbers",
        formatter_class=_RAW,
        epilog="examples:\n"
        "  coachline org show --org acme\n"
        "  coachline org set --org acme recording_retention_days 90\n"
        "  coachline org set --org acme plan professional\n"
        '  coachline org set --org acme sip_peers \'[{"name": "pbx", "address": "203.0.113.0/24"}]\'\n'
        '  coachline org set --org acme coaching_rules "$(cat rules.json)"\n'
        "  coachline org numbers map --org acme +14155550123 rita@acme.test\n"
        f"\nsettings: {', '.join(SETTING_KEYS)}, coaching_rules",
    )
    org_actions = org.add_subparsers(dest="org_command", required=True, metavar="ACTION")
    _action(
        _sub(
            org_actions,
            "show",
            "settings, rule set version and carrier numbers (JSON)",
            "coachline org show",
            "coachline org show --org acme | jq .settings",
        ),
        "org show",
        _org_show,
    )
    set_ = _sub(
        org_actions,
        "set",
        "change one setting (VALUE is JSON, or plain text)",
        "coachline org set recording_enabled false",
        "coachline org set rate_limit_per_min null",
        'coachline org set coaching_rules "$(cat rules.json)"',
    )
    set_.add_argument("key", metavar="KEY", choices=(*SETTING_KEYS, "coaching_rules"))
    set_.add_argument("value", metavar="VALUE")
    _action(set_, "org set", _org_set)
    numbers = _sub(
        org_actions,
        "numbers",
        "carrier numbers and the reps they ring",
        "coachline org numbers list",
        "coachline org numbers map +14155550123 rita@acme.test",
    )
    number_actions = numbers.add_subparsers(dest="numbers_command", required=True, metavar="ACTION")
    _action(
        _sub(
            number_actions,
            "list",
            "the routing table (JSON)",
            "coachline org numbers list --org acme",
        ),
        "org numbers list",
        _numbers_list,
    )
    map_ = _sub(
        number_actions,
        "map",
        "route NUMBER to the user EMAIL",
        "coachline org numbers map '+1 415 555 0123' rita@acme.test",
    )
    map_.add_argument("number")
    map_.add_argument("email")
    _action(map_, "org numbers map", _numbers_map)
    unmap = _sub(
        number_actions, "unmap", "stop routing NUMBER", "coachline org numbers unmap +14155550123"
    )
    unmap.add_argument("number")
    _action(unmap, "org numbers unmap", _numbers_unmap)
