"""An organization's settings as admins edit them: every key validated, with its default.

They live in ``organizations.settings`` (JSON), next to the coaching rule set, which has its
own versioned path (crm_core/admin/rule_sets.py). Readers elsewhere (crm_core/orgs.py, the
recordings API, the live calls) read the same keys.
"""

from __future__ import annotations

import ipaddress
import json
from typing import Any, Literal

import asyncpg
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from crm_core.api_errors import NotFound, Unprocessable, validation_details
from crm_core.changes import ChangeSet

PLANS = ("starter", "professional", "enterprise")


class SipPeer(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=80)
    address: str = Field(min_length=1, max_length=64, description="An IP address or CIDR block.")
    port: int = Field(5060, ge=1, le=65535)

    @field_validator("address")
    @classmethod
    def _network(cls, value: str) -> str:
        try:
            return str(ipaddress.ip_network(value, strict=False))
        except ValueError:
            raise ValueError(
                "must be an IP address or CIDR block, e.g. 203.0.113.7 or 203.0.113.0/24"
            ) from None


class OrgSettings(BaseModel):
    """Every setting, with its default where the organization set none."""

    model_config = ConfigDict(extra="ignore")

    recording_enabled: bool = Field(
        True, description="Record calls (with a recording key configured)."
    )
    recording_retention_days: int | None = Field(
        None,
        ge=0,
        le=36500,
        description="Delete recordings after this many days (0: keep them); "
        "null: the node's COACHLINE_RECORDING_RETENTION_DAYS.",
    )
    reps_review_own_recordings: bool | None = Field(
        None,
        description="Reps may play back their own calls' recordings (managers and admins always may); "
        "null: the node's COACHLINE_RECORDING_REPS_REVIEW_OWN.",
    )
    reps_review_own_calls: bool = Field(True, description="Reps may review their own past calls.")
    keep_raw_transcripts: bool = Field(
        False, description="Also store the unredacted transcript text (admins only may read it)."
    )
    plan: Literal["starter", "professional", "enterprise"] = Field(
        "starter", description="The plan tier: it sizes the API rate limit."
    )
    rate_limit_per_min: int | None = Field(
        None, ge=1, le=1_000_000, description="A custom API budget per minute; null: the plan's."
    )
    sip_peers: list[SipPeer] = Field(
        default_factory=list,
        max_length=100,
        description="The organization's SIP trunks, for the record: the SIP edge admits the peers of "
        "COACHLINE_SIP_PEERS and does not read these yet.",
    )


# The editable keys: everything above (the rule set has its own endpoint).
SETTING_KEYS = tuple(OrgSettings.model_fields)


class OrgSettingsUpdate(BaseModel):
    """Some settings to change; the others keep their values. null resets a nullable one."""

    model_config = ConfigDict(extra="forbid", json_schema_extra={"minProperties": 1})

    recording_enabled: bool | None = None
    recording_retention_days: int | None = Field(None, ge=0, le=36500)
    reps_review_own_recordings: bool | None = None
    reps_review_own_calls: bool | None = None
    keep_raw_transcripts: bool | None = None
    plan: Literal["starter", "professional", "enterprise"] | None = None
    rate_limit_per_min: int | None = Field(None, ge=1, le=1_000_000)
    sip_peers: list[SipPeer] | None = Field(None, max_length=100)


# null resets only the settings whose readers take null as "the node's default"
_NOT_NULL = (
    "recording_enabled",
    "reps_review_own_recordings",
    "reps_review_own_calls",
    "keep_raw_transcripts",
    "plan",
    "sip_peers",
)


def effective(raw: dict[str, Any]) -> OrgSettings:
    """The settings as they apply: stored values that are valid, defaults for the rest."""
    values = {}
    for key in SETTING_KEYS:
        if key in raw:
            try:
                OrgSettings.model_validate({key: raw[key]})
            except ValidationError:
                continue  # a value put there by hand that is not valid: the default applies
            values[key] = raw[key]
    return OrgSettings.model_validate(values)


def parse_update(values: dict[str, Any]) -> dict[str, Any]:
    """Validated changes (422 naming each bad field), as JSON values to store."""
    try:
        update = OrgSettingsUpdate.model_validate(values, strict=True)
    except ValidationError as exc:
        raise Unprocessable("the settings failed validation", validation_details(exc)) from None
    changes = update.model_dump(mode="json", exclude_unset=True)
    nulls = [key for key in _NOT_NULL if key in changes and changes[key] is None]
    if nulls:
        raise Unprocessable(
            "the settings failed validation",
            [
                {"loc": [key], "type": "null_not_allowed", "message": "must not be null"}
                for key in nulls
            ],
        )
    if not changes:
        raise Unprocessable(
            "name at least one setting to change",
            {"known": list(SETTING_KEYS)},
            code="empty_update",
        )
    return changes


def parse_cli_value(key: str, text: str) -> Any:
    """A ``coachline org set KEY VALUE`` value: JSON (true, 30, null, [...]), else the text itself."""
    if key not in SETTING_KEYS:
        raise Unprocessable(
            f"unknown setting {key!r}", {"known": list(SETTING_KEYS)}, code="unknown_setting"
        )
    try:
        return json.loads(text)
    except ValueError:
        return text


async def _raw(
    conn: asyncpg.Connection, org_id: str, *, for_update: bool = False
) -> dict[str, Any]:
    row = await conn.fetchrow(
        "SELECT settings FROM organizations WHERE id = $1::uuid"
        + (" FOR UPDATE" if for_update else ""),
        org_id,
    )
    if row is None:
        raise NotFound("no such organization")
    return row["settings"] if isinstance(row["settings"], dict) else {}


async def read_settings(conn: asyncpg.Connection, org_id: str) -> OrgSettings:
    return effective(await _raw(conn, org_id))


async def change_settings(
    conn: asyncpg.Connection, changes: ChangeSet, values: dict[str, Any]
) -> OrgSettings:
    """Validate and store ``values`` (some settings), audited; the settings after the change.
    Call inside a transaction."""
    update = parse_update(values)
    org_id = changes.org_id
    before = effective(await _raw(conn, org_id, for_update=True))
    await conn.execute(
        "UPDATE organizations SET settings = settings || $2::jsonb WHERE id = $1::uuid",
        org_id,
        update,
    )
    after = effective(await _raw(conn, org_id))
    await changes.record(
        conn,
        action="organization.settings.update",
        resource_type="organization",
        resource_id=org_id,
        before=before.model_dump(mode="json"),
        after=after.model_dump(mode="json"),
    )
    return after


async def org_id_for(conn: asyncpg.Connection, slug: str | None) -> str:
    """The organization with this slug; without one, the only organization there is."""
    if slug is None:
        rows = await conn.fetch("SELECT id, slug FROM organizations ORDER BY created_at LIMIT 2")
        if len(rows) != 1:
            raise NotFound(
                "name the organization (--org SLUG)" if rows else "no organization yet",
                {"organizations": [r["slug"] for r in rows]},
            )
        return str(rows[0]["id"])
    org_id = await conn.fetchval("SELECT id FROM organizations WHERE slug = $1", slug)
    if org_id is None:
        raise NotFound("no such organization", {"slug": slug})
    return str(org_id)


async def organization_row(conn: asyncpg.Connection, org_id: str) -> dict[str, Any]:
    row = await conn.fetchrow(
        "SELECT id, name, slug FROM organizations WHERE id = $1::uuid", org_id
    )
    if row is None:
        raise NotFound("no such organization")
    return {"id": str(row["id"]), "name": row["name"], "slug": row["slug"]}
