"""Who a call belongs to: find the rep by a dialled number or SIP address, the lead by phone.

Carrier edges know only addresses (a To user ``+15551230001``, an AOR
``sip:alice@pbx.example``). Reps are found through ``users.phone`` (digits
compared, so ``+1 (555) 123-0001`` matches ``15551230001``) or
``users.sip_uri`` (user part compared case-insensitively); inactive users
never match.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import asyncpg

_DIGITS = re.compile(r"[^0-9]")


@dataclass(frozen=True, slots=True)
class RepRoute:
    org_id: str
    rep_id: str
    name: str


def phone_digits(text: str | None) -> str:
    return _DIGITS.sub("", text or "")


async def find_rep(conn: asyncpg.Connection, address_user: str | None) -> RepRoute | None:
    """The active user whose phone or SIP user part is ``address_user``; None if none or ambiguous."""
    if not address_user:
        return None
    digits = phone_digits(address_user)
    rows = await conn.fetch(
        """
        SELECT id, org_id, name FROM users
        WHERE is_active AND (
              ($1 <> '' AND regexp_replace(coalesce(phone, ''), '[^0-9]', '', 'g') = $1)
           OR lower(split_part(regexp_replace(coalesce(sip_uri, ''), '^sips?:', ''), '@', 1)) = lower($2))
        LIMIT 2
        """,
        digits, address_user,
    )
    if len(rows) != 1:
        return None  # two users sharing an address must not get each other's calls
    row = rows[0]
    return RepRoute(str(row["org_id"]), str(row["id"]), row["name"])


async def find_lead_by_phone(conn: asyncpg.Connection, org_id: str,
                             phone: str | None) -> str | None:
    digits = phone_digits(phone)
    if len(digits) < 5:
        return None
    value = await conn.fetchval(
        """
        SELECT id FROM leads
        WHERE org_id = $1 AND regexp_replace(coalesce(phone, ''), '[^0-9]', '', 'g') = $2
        ORDER BY created_at DESC LIMIT 1
        """,
        org_id, digits,
    )
    return str(value) if value is not None else None
