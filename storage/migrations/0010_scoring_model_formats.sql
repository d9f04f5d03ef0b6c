-- Organisations' own models are gradient-boosted trees stored as JSON node
-- arrays (crm_core/scoring/boosted_trees.py), next to the older logistic rows; the format says how to
-- read a row. Versions are numbered per organisation and kind; the listing reads newest first.
ALTER TABLE scoring_models
    ADD COLUMN format text NOT NULL DEFAULT 'logistic-v1'
        CHECK (format IN ('logistic-v1', 'boosted-trees-v1')),
    ADD COLUMN trained_by uuid REFERENCES users(id) ON DELETE SET NULL;
CREATE INDEX scoring_models_org_kind_created_idx ON scoring_models (org_id, kind, created_at DESC);
