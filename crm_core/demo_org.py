"""The demo organisation (``coachline demo``): people, CRM records and a coaching rule set.

Created once, in one transaction, and then left alone: a rerun finds it by its slug and only
makes sure its rule set is the demo's, so whatever a visitor changed in the CRM stays. Users
get generated passwords when they are created (or when asked for new ones); the caller shows
them once, the database keeps only their hashes. The organisation is marked
``settings.demo = true`` and only a marked one is ever wiped, so ``--reset`` cannot delete a
real organisation that happens to use the slug.
"""

from __future__ import annotations

import asyncio
import secrets
from dataclasses import dataclass, field

import asyncpg

from crm_core.auth.passwords import hash_password
from crm_core.auth.tokens import end_sign_ins

DEMO_SLUG = "demo"
DEMO_ORG_NAME = "Coachline Demo"


def _battle_card(competitor: str, body: str, aliases: tuple[str, ...] = ()) -> tuple[dict, dict]:
    key = competitor.lower()
    category = {"fuzzy": True, "phonetic": True,
                "phrases": [{"phrase": competitor, "aliases": list(aliases)}]}
    rule = {"id": f"battlecard-{key}", "trigger": "keyword", "category": f"competitor_{key}",
            "party": "customer", "severity": "info", "cooldown_s": 300,
            "title": f"Battle card: {competitor}", "body": body}
    return category, rule


_CARDS = {
    "gong": _battle_card(
        "Gong", "Gong reviews calls after they end; Coachline coaches during the call. Ask: "
        "how soon after a call does a rep see feedback today?"),
    "chorus": _battle_card(
        "Chorus", "Chorus is bundled with ZoomInfo seats. Ask who uses it weekly, then show "
        "live prompts on their next call.", aliases=("Chorus.ai",)),
    "dialpad": _battle_card(
        "Dialpad", "Dialpad's coaching only works on Dialpad's phones. Coachline works on the "
        "carrier and PBX they already have."),
}

# The default rule set with one battle card per competitor instead of the generic prompt.
DEMO_RULES = {
    "name": "demo",
    "disable_rules": ["competitor-battlecard"],
    "keywords": {f"competitor_{key}": category for key, (category, _) in _CARDS.items()},
    "rules": [rule for _, rule in _CARDS.values()],
}


@dataclass(frozen=True)
class Person:
    key: str  # admin, manager, rep, rep2
    name: str
    role: str
    phone: str | None = None

    def email(self) -> str:
        return f"{self.key}@{DEMO_SLUG}.coachline.test"


PEOPLE = (
    Person("admin", "Avery Admin", "admin"),
    Person("manager", "Morgan Manager", "manager"),
    # Riley takes the demo calls: a call is forwarded to a rep's phone, so each rep has one.
    Person("riley", "Riley Rep", "rep", "+15550100001"),
    Person("sam", "Sam Seller", "rep", "+15550100002"),
)
CALL_TAKER = "riley"

# (first, last, company, title, phone, status, owner): the first is the demo call's customer.
LEADS = (
    ("Dana", "Diaz", "Globex", "Head of Sales", "+15557770000", "qualified", "riley"),
    ("Lee", "Park", "Initech", "VP Revenue", "+15557770001", "contacted", "riley"),
    ("Kim", "Novak", "Umbrella", "Sales Operations Manager", "+15557770002", "new", "sam"),
    ("Jo", "Reyes", "Hooli", "Chief Revenue Officer", "+15557770003", "qualified", "sam"),
)
# (name, lead index, value, stage)
DEALS = (
    ("Globex: 40 seats", 0, 48000, "discovery"),
    ("Initech: pilot", 1, 12000, "demo"),
    ("Umbrella: team plan", 2, 24000, "qualification"),
    ("Hooli: enterprise", 3, 96000, "proposal"),
    ("Hooli: add-on", 3, 18000, "closed_won"),
)


class DemoSlugTaken(ValueError):
    """The demo's slug belongs to an organisation that is not the demo's."""


@dataclass
class DemoOrg:
    org_id: str
    created: bool
    user_ids: dict[str, str]  # person key -> user id
    # email -> password, for the users given a password now (shown once, never stored)
    passwords: dict[str, str] = field(default_factory=dict)

    @property
    def call_taker_id(self) -> str:
        return self.user_ids[CALL_TAKER]


def new_password() -> str:
    return secrets.token_urlsafe(12)


async def ensure_demo_org(conn: asyncpg.Connection, *, new_passwords: bool = False) -> DemoOrg:
    """The demo organisation, created with its people and CRM records when missing."""
    async with conn.transaction():
        org_id = await conn.fetchval(
            "INSERT INTO organizations (name, slug, settings) VALUES ($1, $2, $3) "
            "ON CONFLICT (slug) DO NOTHING RETURNING id",
            DEMO_ORG_NAME, DEMO_SLUG, {"demo": True, "coaching_rules": DEMO_RULES})
        created = org_id is not None
        if not created:
            row = await conn.fetchrow(
                "SELECT id, settings FROM organizations WHERE slug = $1", DEMO_SLUG)
            if not (row["settings"] or {}).get("demo"):
                raise DemoSlugTaken(f"organization slug {DEMO_SLUG!r} belongs to an organization "
                                    "that is not the demo's; the demo leaves it alone")
            org_id = row["id"]
            await conn.execute(
                "UPDATE organizations SET settings = settings || $2::jsonb WHERE id = $1",
                org_id, {"coaching_rules": DEMO_RULES})
        team_id = await _team(conn, org_id, "Demo East")
        demo = DemoOrg(str(org_id), created, {})
        for person in PEOPLE:
            password = new_password()
            digest = await asyncio.to_thread(hash_password, password)
            user_id = await conn.fetchval(
                "INSERT INTO users (org_id, email, name, role, team_id, phone, password_hash) "
                "VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT (org_id, email) DO NOTHING "
                "RETURNING id",
                org_id, person.email(), person.name, person.role,
                team_id if person.role != "admin" else None, person.phone, digest)
            if user_id is not None:
                demo.passwords[person.email()] = password
            else:
                user_id = await conn.fetchval(
                    "SELECT id FROM users WHERE org_id = $1 AND email = $2", org_id, person.email())
                if new_passwords:
                    await conn.execute(
                        "UPDATE users SET password_hash = $3, is_active = true, updated_at = now() "
                        "WHERE org_id = $1 AND id = $2", org_id, user_id, digest)
                    await end_sign_ins(conn, str(org_id), str(user_id))
                    demo.passwords[person.email()] = password
            demo.user_ids[person.key] = str(user_id)
        if created:
            await _crm_records(conn, org_id, demo.user_ids)
    return demo


async def _team(conn: asyncpg.Connection, org_id, name: str):
    team_id = await conn.fetchval("SELECT id FROM teams WHERE org_id = $1 AND name = $2", org_id, name)
    if team_id is None:
        team_id = await conn.fetchval(
            "INSERT INTO teams (org_id, name) VALUES ($1, $2) RETURNING id", org_id, name)
    return team_id


async def _crm_records(conn: asyncpg.Connection, org_id, user_ids: dict[str, str]) -> None:
    lead_ids = []
    for first, last, company, title, phone, status, owner in LEADS:
        lead_ids.append(await conn.fetchval(
            "INSERT INTO leads (org_id, owner_id, first_name, last_name, company, title, phone, "
            "email, status, source) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, 'demo') "
            "RETURNING id",
            org_id, user_ids[owner], first, last, company, title, phone,
            f"{first.lower()}@{company.lower()}.example", status))
    for name, lead, value, stage in DEALS:
        owner = LEADS[lead][6]
        await conn.execute(
            "INSERT INTO deals (org_id, lead_id, owner_id, name, company, value, stage, "
            "expected_close, closed_at) VALUES ($1, $2, $3, $4, $5, $6, $7, "
            "current_date + 30, CASE WHEN $7 LIKE 'closed%' THEN now() END)",
            org_id, lead_ids[lead], user_ids[owner], name, LEADS[lead][2], value, stage)


async def demo_recording_ids(conn: asyncpg.Connection) -> list[str]:
    """The demo organisation's recordings (their files go with the organisation)."""
    rows = await conn.fetch(
        "SELECT r.id::text AS id FROM recordings r JOIN organizations o ON o.id = r.org_id "
        "WHERE o.slug = $1 AND r.org_id = o.id AND (o.settings->>'demo')::boolean", DEMO_SLUG)
    return [r["id"] for r in rows]


async def delete_demo_org(conn: asyncpg.Connection) -> bool:
    """Wipe the demo organisation and everything of it (rows cascade); False when there is none."""
    deleted = await conn.fetchval(
        "DELETE FROM organizations WHERE slug = $1 AND (settings->>'demo')::boolean RETURNING id",
        DEMO_SLUG)
    return deleted is not None
