"""/api/v1/scoring: admins train their organisation's own lead and deal models and edit its ICP.

``POST .../lead-models`` and ``POST .../deal-models`` train now (the fit runs in a
worker thread, see ``crm_core.scoring.lead_model_training``) and answer the new version
with its held-out metrics, 201 even when it was not good enough to activate;
too little history is a 422 (``not_enough_history``) saying how much there is.
``GET`` lists the versions, newest first. ``GET``/``PUT .../icp`` read and
replace ``organizations.settings.icp`` (validated by ``icp_rules_of``). Every
training and every ICP change is audited.
"""

from __future__ import annotations

import json
from typing import Any

from crm_core.api.access import require
from crm_core.api.endpoint import Endpoint
from crm_core.api.reply import Call, Reply
from crm_core.api.schemas.scoring import (
    IcpSettings,
    IcpUpdate,
    ScoringModelVersion,
    TrainedScoringModel,
)
from crm_core.api_errors import Unprocessable
from crm_core.changes import ChangeSet
from crm_core.scoring.deal_model_training import train_org_deal_model
from crm_core.scoring.icp import IcpConfigError, icp_rules_of
from crm_core.scoring.lead_features import FEATURES as LEAD_FEATURES
from crm_core.scoring.lead_model_training import (
    MIN_PER_CLASS,
    TrainingRefused,
    train_org_lead_model,
)
from crm_core.scoring.lead_scoring import lead_model
from crm_core.scoring.org_models import ModelVersion, active_model, model_version, model_versions

MANAGE = "scoring:manage"


def _version_out(v: ModelVersion) -> dict[str, Any]:
    return ScoringModelVersion.model_validate(v, from_attributes=True).model_dump(mode="json")


async def _list(call: Call, kind: str) -> Reply:
    require(call.me, MANAGE)
    async with call.pool.acquire() as conn:
        versions = await model_versions(conn, call.me.org_id, kind)
    # A training is a deliberate act: an organisation keeps tens of versions, one page holds them.
    return Reply({"data": [_version_out(v) for v in versions], "next_cursor": None})


async def _train(call: Call, kind: str) -> Reply:
    require(call.me, MANAGE)
    me = call.me
    train = train_org_lead_model if kind == "lead" else train_org_deal_model
    changes = ChangeSet(me.org_id, me.user_id)
    async with call.pool.acquire() as conn, conn.transaction():
        try:
            result = await train(conn, me.org_id, trained_by=me.user_id)
        except TrainingRefused as exc:
            raise Unprocessable(str(exc), {"kind": kind, "min_per_class": MIN_PER_CLASS},
                                code="not_enough_history") from None
        stored = await model_version(conn, me.org_id, result.version)
        assert stored is not None  # written in this transaction
        await changes.record(conn, action=f"scoring.{kind}_model.train", resource_type="scoring_model",
                             resource_id=result.version,
                             after={"version": result.version, "activated": result.activated,
                                    "metrics": result.metrics})
    auc, before = result.metrics["holdout_auc"], result.metrics["incumbent_holdout_auc"]
    summary = (f"{result.version} is now active: held-out AUC {auc:.3f} beats {result.incumbent} ({before:.3f})"
               if result.activated else
               f"{result.version} was stored but not activated: held-out AUC {auc:.3f} does not beat "
               f"{result.incumbent} ({before:.3f}) and the shipped model "
               f"({result.metrics['shipped_holdout_auc']:.3f})")
    out = TrainedScoringModel(**_version_out(stored), activated=result.activated,
                              compared_with=result.incumbent, summary=summary)
    return Reply(out, 201)


async def list_lead_models(call: Call) -> Reply:
    return await _list(call, "lead")


async def train_lead_model(call: Call) -> Reply:
    return await _train(call, "lead")


async def list_deal_models(call: Call) -> Reply:
    return await _list(call, "deal")


async def train_deal_model(call: Call) -> Reply:
    return await _train(call, "deal")


async def _icp_settings(conn, org_id: str) -> IcpSettings:
    config = await conn.fetchval("SELECT settings->'icp' FROM organizations WHERE id = $1", org_id)
    if isinstance(config, str):  # a pool without the jsonb codec
        config = json.loads(config)
    version = problem = None
    if config is not None:
        try:
            version = icp_rules_of(config).version
        except IcpConfigError as exc:
            problem = str(exc)
        if not isinstance(config, dict):  # written around the API: shown as absent, with the reason
            config = None
    model = await active_model(conn, org_id, "lead", LEAD_FEATURES)
    in_use = model is None and version is not None
    scored_by = model.version if model is not None else version if in_use else lead_model().version
    return IcpSettings(icp=config, version=version, problem=problem, in_use=in_use, scored_by=scored_by)


async def get_icp(call: Call) -> Reply:
    require(call.me, MANAGE)
    async with call.pool.acquire() as conn:
        return Reply(await _icp_settings(conn, call.me.org_id))


async def put_icp(call: Call) -> Reply:
    require(call.me, MANAGE)
    body: IcpUpdate = call.body
    me = call.me
    if body.icp is not None:
        try:
            icp_rules_of(body.icp)
        except IcpConfigError as exc:
            raise Unprocessable(str(exc), {"field": "icp"}, code="invalid_icp") from None
    changes = ChangeSet(me.org_id, me.user_id)
    async with call.pool.acquire() as conn, conn.transaction():
        before = await conn.fetchval("SELECT settings->'icp' FROM organizations WHERE id = $1 FOR UPDATE",
                                     me.org_id)
        if body.icp is None:
            await conn.execute("UPDATE organizations SET settings = settings - 'icp' WHERE id = $1", me.org_id)
        else:
            await conn.execute("UPDATE organizations SET settings = jsonb_set(settings, '{icp}', $2) WHERE id = $1",
                               me.org_id, body.icp)
        settings = await _icp_settings(conn, me.org_id)
        if before != body.icp and await active_model(conn, me.org_id, "lead", LEAD_FEATURES) is None:
            # The rules (or their absence) score this organisation's leads: the re-scoring job
            # picks every open lead up again.
            await conn.execute("UPDATE leads SET scored_at = NULL WHERE org_id = $1 AND status <> 'converted'",
                               me.org_id)
        await changes.record(conn, action="scoring.icp.update", resource_type="organization",
                             resource_id=me.org_id, before={"icp": before}, after={"icp": body.icp})
    return Reply(settings)


_TRAIN_ERRORS = (400, 401, 403, 422)

ENDPOINTS = (
    Endpoint("GET", "/api/v1/scoring/lead-models", list_lead_models,
             "List the organisation's trained lead-scoring models (admin)", "scoring",
             response=ScoringModelVersion, paginated=True, errors=(401, 403)),
    Endpoint("POST", "/api/v1/scoring/lead-models", train_lead_model,
             "Train a lead-scoring model on the organisation's converted / unqualified leads (admin)", "scoring",
             response=TrainedScoringModel, status=201, errors=_TRAIN_ERRORS),
    Endpoint("GET", "/api/v1/scoring/deal-models", list_deal_models,
             "List the organisation's trained deal-prediction models (admin)", "scoring",
             response=ScoringModelVersion, paginated=True, errors=(401, 403)),
    Endpoint("POST", "/api/v1/scoring/deal-models", train_deal_model,
             "Train a deal win-probability model on the organisation's won / lost deals (admin)", "scoring",
             response=TrainedScoringModel, status=201, errors=_TRAIN_ERRORS),
    Endpoint("GET", "/api/v1/scoring/icp", get_icp, "The organisation's ideal-customer-profile rules (admin)",
             "scoring", response=IcpSettings, errors=(401, 403)),
    Endpoint("PUT", "/api/v1/scoring/icp", put_icp, "Replace (or with null remove) the ICP rules (admin)",
             "scoring", body=IcpUpdate, response=IcpSettings, errors=(400, 401, 403, 422)),
)
