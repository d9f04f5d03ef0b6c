"""Organisations' own trained models in ``scoring_models``: versions, the active one, loading.

Each training stores a new row, numbered per organisation and kind
(``lead-gbm-<org>-v3``); at most one row per organisation and kind is active.
A row is plain JSON read by ``crm_core.scoring.model.model_of`` (no pickle), so
a stored row can never run code; one that no longer reads (features changed,
damaged) is logged and the caller's fallback is used instead of failing
every score.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import asyncpg

from crm_core.scoring.model import ScoringModel, model_of

log = logging.getLogger(__name__)

KINDS = ("lead", "deal")
MAX_LISTED = 100
_CACHE: dict[str, ScoringModel] = {}
_CACHE_SIZE = 256


@dataclass(frozen=True, slots=True)
class ModelVersion:
    version: str
    kind: str
    format: str
    active: bool
    metrics: dict[str, Any]
    created_at: datetime
    trained_by: str | None


def _json(value: Any) -> Any:
    return json.loads(value) if isinstance(value, str) else value  # a pool without the jsonb codec


async def active_model(conn: asyncpg.Connection, org_id: Any, kind: str,
                       features: tuple[str, ...]) -> ScoringModel | None:
    """The organisation's active model of ``kind``, or None (then the caller's default applies)."""
    row = await conn.fetchrow(
        "SELECT version, format, model FROM scoring_models WHERE org_id = $1 AND kind = $2 AND active",
        org_id, kind,
    )
    if row is None:
        return None
    model = _CACHE.get(row["version"])
    if model is None:
        try:
            model = model_of(row["format"], _json(row["model"]), features)
        except ValueError as exc:
            log.error("organisation %s: active %s model %s cannot be read (%s); using the default",
                      org_id, kind, row["version"], exc)
            return None
        if len(_CACHE) >= _CACHE_SIZE:
            _CACHE.clear()
        _CACHE[row["version"]] = model
    return model


async def store_model(conn: asyncpg.Connection, org_id: Any, kind: str, *, family: str, format: str,
                      model_json: dict[str, Any], metrics: dict[str, Any], activate: bool,
                      trained_by: str | None = None) -> str:
    """Insert the next version (and make it the active one when ``activate``); returns its name.

    Run inside the caller's transaction. The advisory lock numbers concurrent trainings of
    one organisation one after the other.
    """
    await conn.execute("SELECT pg_advisory_xact_lock(hashtext('scoring_models:' || $1::text || ':' || $2))",
                       str(org_id), kind)
    number = 1 + await conn.fetchval(
        "SELECT count(*) FROM scoring_models WHERE org_id = $1 AND kind = $2", org_id, kind)
    version = f"{kind}-{family}-{str(org_id).replace('-', '')[:12]}-v{number}"
    if activate:
        await conn.execute("UPDATE scoring_models SET active = false WHERE org_id = $1 AND kind = $2 AND active",
                           org_id, kind)
    await conn.execute(
        "INSERT INTO scoring_models (org_id, kind, version, format, model, metrics, active, trained_by) "
        "VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
        org_id, kind, version, format, {**model_json, "version": version}, metrics, activate, trained_by,
    )
    return version


async def model_version(conn: asyncpg.Connection, org_id: Any, version: str) -> ModelVersion | None:
    row = await conn.fetchrow(
        "SELECT version, kind, format, active, metrics, created_at, trained_by FROM scoring_models "
        "WHERE org_id = $1 AND version = $2", org_id, version)
    return None if row is None else _version_of(row)


def _version_of(r: asyncpg.Record) -> ModelVersion:
    return ModelVersion(r["version"], r["kind"], r["format"], r["active"], dict(_json(r["metrics"]) or {}),
                        r["created_at"], None if r["trained_by"] is None else str(r["trained_by"]))


async def model_versions(conn: asyncpg.Connection, org_id: Any, kind: str) -> list[ModelVersion]:
    """The organisation's models of ``kind``, newest first (at most ``MAX_LISTED``)."""
    rows = await conn.fetch(
        "SELECT version, kind, format, active, metrics, created_at, trained_by FROM scoring_models "
        "WHERE org_id = $1 AND kind = $2 ORDER BY created_at DESC, version DESC LIMIT $3",
        org_id, kind, MAX_LISTED,
    )
    return [_version_of(r) for r in rows]
