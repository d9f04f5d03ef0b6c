"""/api/v1/organization, /api/v1/coaching-rules, /api/v1/carrier-numbers: what admins configure.

Admins only (``organization:manage``), every change audited; the work is done by crm_core/admin,
which the ``coachline org`` command calls too.
"""

from __future__ import annotations

from typing import Any

from crm_core.admin import carrier_numbers, rule_sets
from crm_core.admin.org_settings import (
    OrgSettingsUpdate,
    change_settings,
    organization_row,
    read_settings,
)
from crm_core.api.access import require
from crm_core.api.endpoint import Endpoint
from crm_core.api.reply import Call, Reply
from crm_core.api.schemas.organization import (
    CarrierNumber,
    CarrierNumberIn,
    Organization,
    RulePreview,
    RulePreviewIn,
    RuleSetOut,
    RuleSetSave,
    RuleSetVersion,
)
from crm_core.api_errors import ServiceUnavailable
from crm_core.changes import ChangeSet

MANAGE = "organization:manage"
RESOURCE = "organization"


def _engine(call: Call) -> rule_sets.RuleSetEngine:
    engine = call.context.rule_set_engine
    if engine is None:
        raise ServiceUnavailable(
            "this node has no coaching engine to check rule sets with", code="coaching_unavailable"
        )
    return engine  # type: ignore[return-value]


def _changes(call: Call) -> ChangeSet:
    return ChangeSet(call.me.org_id, call.me.user_id, request_id=call.context.request_id())


async def _organization(call: Call) -> Organization:
    async with call.pool.acquire() as conn:
        row = await organization_row(conn, call.me.org_id)
        settings = await read_settings(conn, call.me.org_id)
    return Organization(**row, settings=settings)


async def get_organization(call: Call) -> Reply:
    require(call.me, MANAGE)
    return Reply(await _organization(call))


async def update_organization(call: Call) -> Reply:
    """Change some settings; every value is validated and the change audited."""
    require(call.me, MANAGE)
    body: OrgSettingsUpdate = call.body
    changes = _changes(call)
    async with call.pool.acquire() as conn, conn.transaction():
        await change_settings(conn, changes, body.model_dump(mode="json", exclude_unset=True))
    return Reply(await _organization(call))


async def get_rules(call: Call) -> Reply:
    require(call.me, MANAGE)
    async with call.pool.acquire() as conn:
        return Reply(RuleSetOut(**await rule_sets.current_rule_set(conn, call.me.org_id)))


async def save_rules(call: Call) -> Reply:
    """Check the rule set with the coaching engine (errors name the field), make it the one in
    force and keep it as the next version; live calls pick it up within seconds."""
    require(call.me, MANAGE)
    body: RuleSetSave = call.body
    engine = _engine(call)
    changes = _changes(call)
    async with call.pool.acquire() as conn, conn.transaction():
        saved = await rule_sets.save_rule_set(conn, changes, engine, body.rules, note=body.note)
    return Reply(RuleSetOut(version=saved["version"], rules=saved["rules"]))


async def list_rule_versions(call: Call) -> Reply:
    require(call.me, MANAGE)
    async with call.pool.acquire() as conn:
        versions = await rule_sets.list_versions(conn, call.me.org_id)
    return Reply(
        {
            "data": [RuleSetVersion(**v).model_dump(mode="json") for v in versions],
            "next_cursor": None,
        }
    )


async def restore_rule_version(call: Call) -> Reply:
    """Roll back: the version's rule set is saved again as the newest version."""
    require(call.me, MANAGE)
    engine = _engine(call)
    changes = _changes(call)
    async with call.pool.acquire() as conn, conn.transaction():
        saved = await rule_sets.restore_version(conn, changes, engine, call.path_id())
    return Reply(RuleSetOut(version=saved["version"], rules=saved["rules"]))


async def preview_rules(call: Call) -> Reply:
    """Run the coaching engine on one sentence: which keywords match and which prompts fire,
    under the rule set given (or the one in force). Stores nothing."""
    require(call.me, MANAGE)
    body: RulePreviewIn = call.body
    engine = _engine(call)
    rules: dict[str, Any] | None = body.rules
    if rules is None:
        async with call.pool.acquire() as conn:
            rules = (await rule_sets.current_rule_set(conn, call.me.org_id))["rules"]
    rule_sets.check_rules(engine, rules)
    return Reply(RulePreview(**engine.preview(rules, body.text, body.party)))


async def list_numbers(call: Call) -> Reply:
    require(call.me, MANAGE)
    async with call.pool.acquire() as conn:
        rows = await carrier_numbers.list_numbers(conn, call.me.org_id)
    return Reply(
        {"data": [CarrierNumber(**r).model_dump(mode="json") for r in rows], "next_cursor": None}
    )


async def map_number(call: Call) -> Reply:
    """Route a number to a rep (a number already routed moves to this rep)."""
    require(call.me, MANAGE)
    body: CarrierNumberIn = call.body
    changes = _changes(call)
    async with call.pool.acquire() as conn, conn.transaction():
        row = await carrier_numbers.map_number(conn, changes, body.number, str(body.user_id))
    return Reply(CarrierNumber(**row), 201)


async def unmap_number(call: Call) -> Reply:
    require(call.me, MANAGE)
    changes = _changes(call)
    async with call.pool.acquire() as conn, conn.transaction():
        await carrier_numbers.unmap_number(conn, changes, call.path_id())
    return Reply(None, 204)


_WRITE_ERRORS = (400, 401, 403, 404, 409, 413, 422)
ENDPOINTS = (
    Endpoint(
        "GET",
        "/api/v1/organization",
        get_organization,
        "The organization and its settings (admin)",
        "organization",
        response=Organization,
        resource=RESOURCE,
    ),
    Endpoint(
        "PATCH",
        "/api/v1/organization",
        update_organization,
        "Change organization settings (admin)",
        "organization",
        body=OrgSettingsUpdate,
        response=Organization,
        resource=RESOURCE,
        errors=(400, 401, 403, 404, 413, 422),
    ),
    Endpoint(
        "GET",
        "/api/v1/coaching-rules",
        get_rules,
        "The coaching rule set in force (admin)",
        "coaching-rules",
        response=RuleSetOut,
        resource=RESOURCE,
    ),
    Endpoint(
        "PUT",
        "/api/v1/coaching-rules",
        save_rules,
        "Save the coaching rule set as a new version (admin)",
        "coaching-rules",
        body=RuleSetSave,
        response=RuleSetOut,
        resource=RESOURCE,
        errors=(400, 401, 403, 404, 413, 422, 503),
    ),
    Endpoint(
        "GET",
        "/api/v1/coaching-rules/versions",
        list_rule_versions,
        "The rule set's versions, newest first (admin)",
        "coaching-rules",
        response=RuleSetVersion,
        paginated=True,
        resource=RESOURCE,
    ),
    Endpoint(
        "POST",
        "/api/v1/coaching-rules/versions/{id}/restore",
        restore_rule_version,
        "Roll the rule set back to a version (admin)",
        "coaching-rules",
        response=RuleSetOut,
        resource=RESOURCE,
        errors=(400, 401, 403, 404, 413, 422, 503),
    ),
    Endpoint(
        "POST",
        "/api/v1/coaching-rules/preview",
        preview_rules,
        "Which rules fire on a sentence (admin)",
        "coaching-rules",
        body=RulePreviewIn,
        response=RulePreview,
        resource=RESOURCE,
        errors=(400, 401, 403, 404, 413, 422, 503),
    ),
    Endpoint(
        "GET",
        "/api/v1/carrier-numbers",
        list_numbers,
        "Carrier numbers and the reps they ring (admin)",
        "carrier-numbers",
        response=CarrierNumber,
        paginated=True,
        resource=RESOURCE,
    ),
    Endpoint(
        "POST",
        "/api/v1/carrier-numbers",
        map_number,
        "Route a carrier number to a rep (admin)",
        "carrier-numbers",
        body=CarrierNumberIn,
        response=CarrierNumber,
        status=201,
        resource=RESOURCE,
        errors=_WRITE_ERRORS,
    ),
    Endpoint(
        "DELETE",
        "/api/v1/carrier-numbers/{id}",
        unmap_number,
        "Stop routing a carrier number (admin)",
        "carrier-numbers",
        status=204,
        resource=RESOURCE,
        errors=(401, 403, 404),
    ),
)
