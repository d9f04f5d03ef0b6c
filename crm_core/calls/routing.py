"""Who a call belongs to: find the rep by a dialled number or SIP address, the lead by phone.

Carrier edges know only addresses (a To user ``+15551230001``, an AOR
``sip:alice@pbx.example``). Reps are found through ``users.phone`` (digits
compared, so ``+1 (555) 123-0001`` matches ``15551230001``) or
``users.sip_uri`` (user part compared case-insensitively); inactive users
never match. Leads are found by the customer's number compared as E.164
(crm_core/calls/phone_numbers.py), so ``(415) 555-0134`` stored on a lead
matches a carrier's ``+14155550134`` or ``14155550134``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import asyncpg

from crm_core.calls.phone_numbers import region_of, to_e164

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


@dataclass(frozen=True, slots=True)
class LeadMatch:
    lead_id: str
    number: str          # the customer's number, E.164
    candidates: int      # leads of the organisation with that number (>1: one was chosen)


# Same expression as the leads_org_phone_digits_idx index (migration 0018), so it serves the range.
_REVERSED_DIGITS = "(reverse(regexp_replace(coalesce(phone, ''), '[^0-9]', '', 'g')) COLLATE \"C\")"
# Leads scanned per lookup after the index narrows them to the national number's digits.
_MAX_CANDIDATES = 50


async def match_lead(conn: asyncpg.Connection, org_id: str, customer_number: str | None, *,
                     line_number: str | None = None, rep_id: str | None = None) -> LeadMatch | None:
    """The organisation's lead whose phone is ``customer_number``, compared as E.164.

    A stored phone without a country code is read in the country of ``line_number`` (the
    organisation's own number on the call), else in the customer number's country. When several
    leads have the number, the one owned by ``rep_id`` wins, then the most recently updated (then
    the lowest id, so the choice is stable).
    """
    region = region_of(line_number)
    customer = to_e164(customer_number, region)
    if customer is None or len(customer.national) < 5:
        return None
    region = region or customer.region
    # Narrowed by the index on reversed phone digits: every spelling of the number ends with
    # its national digits (a trunk prefix or country code only ever comes before them).
    suffix = customer.national[::-1]  # [suffix, suffix + ":") holds every digit string after it
    rows = await conn.fetch(
        f"""
        SELECT id::text AS id, phone FROM leads
        WHERE org_id = $1::uuid
          AND {_REVERSED_DIGITS} >= $2 AND {_REVERSED_DIGITS} < $3
        ORDER BY coalesce(owner_id = $4::uuid, false) DESC, updated_at DESC, id
        LIMIT {_MAX_CANDIDATES}
        """,
        org_id, suffix, suffix + ":", rep_id,
    )
    matches = [r["id"] for r in rows if (stored := to_e164(r["phone"], region)) is not None
               and stored.number == customer.number]
    if not matches:
        return None
    return LeadMatch(matches[0], customer.number, len(matches))
