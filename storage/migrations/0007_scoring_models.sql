-- Lead-scoring models trained on one organisation's own converted /
-- unqualified leads (crm_core/scoring/lead_model_training.py), versioned; at most one
-- active per organisation and kind.
CREATE TABLE scoring_models (
    id           uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    org_id       uuid NOT NULL REFERENCES organizations(id) ON DELETE CASCADE,
    kind         text NOT NULL CHECK (kind IN ('lead', 'deal')),
    version      text NOT NULL UNIQUE,
    model        jsonb NOT NULL,
    metrics      jsonb NOT NULL DEFAULT '{}'::jsonb,
    active       boolean NOT NULL DEFAULT false,
    created_at   timestamptz NOT NULL DEFAULT now()
);
CREATE UNIQUE INDEX scoring_models_active_idx ON scoring_models (org_id, kind) WHERE active;
