"""The keys that make two leads the same person: normalised e-mail and E.164 phone.

An organisation's leads are unique by the keys in ``organizations.settings.lead_unique_keys``
(default ``["email", "phone"]``; ``[]`` turns the check off). E-mails compare trimmed and
lower-cased; phones as E.164, a phone without a country code read in
``organizations.settings.phone_region`` (an ISO country code) when set. There is no unique
index: the keys are per organisation and E.164 needs the phone library, so writers take a
per-organisation transaction lock (``lock_keys``) before they look a key up and write it.
Leads that were already duplicates before the check existed stay as they are.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import asyncpg

from crm_core.calls.phone_numbers import to_e164
from crm_core.orgs import org_settings

KEYS = ("email", "phone")
# Candidates the phone's digit suffix narrows to before E.164 compares them.
_MAX_PHONE_CANDIDATES = 50
_REVERSED_DIGITS = "(reverse(regexp_replace(coalesce(phone, ''), '[^0-9]', '', 'g')) COLLATE \"C\")"


@dataclass(frozen=True, slots=True)
class KeyPolicy:
    keys: tuple[str, ...]
    region: str | None


@dataclass(frozen=True, slots=True)
class Holder:
    """The lead that already holds a key."""

    lead_id: str
    key: str  # "email" or "phone"
    value: str  # the normalised value


async def key_policy(conn: asyncpg.Connection, org_id: str) -> KeyPolicy:
    settings = await org_settings(conn, org_id)
    raw = settings.get("lead_unique_keys", list(KEYS))
    keys = tuple(k for k in KEYS if isinstance(raw, list) and k in raw)
    region = settings.get("phone_region")
    return KeyPolicy(keys, region.upper() if isinstance(region, str) and region.isalpha() else None)


def normal_email(value: str | None) -> str | None:
    return value.strip().lower() or None if value else None


def normal_phone(value: str | None, region: str | None) -> str | None:
    number = to_e164(value, region)
    return number.number if number is not None else None


async def lock_keys(conn: asyncpg.Connection, org_id: str) -> None:
    """Serialise this organisation's key checks and writes until the transaction ends."""
    await conn.execute(
        "SELECT pg_advisory_xact_lock(hashtextextended($1, 0))", f"lead-keys:{org_id}"
    )


async def find_holder(
    conn: asyncpg.Connection,
    org_id: str,
    policy: KeyPolicy,
    fields: dict[str, Any],
    exclude_id: str | None = None,
) -> Holder | None:
    """The oldest other lead holding one of ``fields``' keys, e-mail first; None if none does."""
    if "email" in policy.keys and (email := normal_email(fields.get("email"))):
        found = await conn.fetchval(
            """
            SELECT id::text FROM leads
            WHERE org_id = $1 AND lower(email) = $2 AND id IS DISTINCT FROM $3::uuid
            ORDER BY created_at, id LIMIT 1
            """,
            org_id,
            email,
            exclude_id,
        )
        if found:
            return Holder(found, "email", email)
    if (
        "phone" in policy.keys
        and (number := to_e164(fields.get("phone"), policy.region)) is not None
    ):
        suffix = number.national[::-1]
        rows = await conn.fetch(
            f"""
            SELECT id::text AS id, phone FROM leads
            WHERE org_id = $1 AND {_REVERSED_DIGITS} >= $2 AND {_REVERSED_DIGITS} < $3
              AND id IS DISTINCT FROM $4::uuid
            ORDER BY created_at, id LIMIT {_MAX_PHONE_CANDIDATES}
            """,
            org_id,
            suffix,
            suffix + ":",
            exclude_id,
        )
        for row in rows:
            if normal_phone(row["phone"], policy.region) == number.number:
                return Holder(row["id"], "phone", number.number)
    return None


def conflict_details(holder: Holder) -> dict[str, Any]:
    return {"existing_id": holder.lead_id, "key": holder.key, "value": holder.value}
