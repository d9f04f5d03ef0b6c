-- Leads unique per organisation by e-mail and phone; search over leads and deals.
--
-- Uniqueness is enforced by the API (crm_core/api/lead_keys.py) under a per-organisation
-- advisory lock, not by a unique index: which keys count is an organisation setting
-- (organizations.settings.lead_unique_keys), phones compare as E.164 (which needs the
-- phonenumbers library, not SQL), and databases from before this migration may already hold
-- duplicates. Those are kept as they are (nothing is deleted or rewritten here); the
-- duplicates endpoint lists them and POST /leads/{id}/merge folds them together.

-- pg_trgm where the server ships it and this role may create it (trusted since PostgreSQL 13),
-- with a trigram index on lead names that widens the duplicate-candidate search. The embedded
-- PostgreSQL (pgserver) does not ship it; duplicate candidates are then found by the start of
-- the last name or company alone. Either way their similarity is scored by the API
-- (crm_core/api/trigrams.py, pg_trgm's formula).
DO $$
BEGIN
    IF EXISTS (SELECT 1 FROM pg_available_extensions WHERE name = 'pg_trgm') THEN
        BEGIN
            CREATE EXTENSION IF NOT EXISTS pg_trgm;
        EXCEPTION WHEN insufficient_privilege THEN
            RAISE NOTICE 'pg_trgm is available but this role may not create it';
        END;
    END IF;
    IF EXISTS (SELECT 1 FROM pg_extension WHERE extname = 'pg_trgm') THEN
        EXECUTE $f$
            CREATE INDEX leads_name_trgm_idx ON leads USING gin
                ((coalesce(first_name, '') || ' ' || coalesce(last_name, '')) gin_trgm_ops)
        $f$;
    END IF;
END $$;

-- The words a lead or deal is found by: names, company, the e-mail whole and in its parts.
-- 'simple': names are not stemmed nor dropped as stop words.
CREATE FUNCTION search_document(VARIADIC parts text[]) RETURNS tsvector
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT to_tsvector('simple'::regconfig, array_to_string(parts, ' '))
$$;

CREATE INDEX leads_search_idx ON leads USING gin
    (search_document(first_name, last_name, company, email, translate(email, '@.+_-', '     ')));
CREATE INDEX deals_search_idx ON deals USING gin (search_document(name, company));
-- e-mail prefix search ("ada@ex") and the e-mail key's lookup
CREATE INDEX leads_org_email_prefix_idx ON leads (org_id, lower(email) text_pattern_ops);

-- A lead merged into another: the merged one is deleted, this row answers a repeated merge.
CREATE TABLE lead_merges (
    merged_id   uuid PRIMARY KEY,
    org_id      uuid NOT NULL REFERENCES organizations(id) ON DELETE CASCADE,
    into_id     uuid NOT NULL REFERENCES leads(id) ON DELETE CASCADE,
    merged_by   uuid REFERENCES users(id) ON DELETE SET NULL,
    moved       jsonb NOT NULL DEFAULT '{}'::jsonb,
    merged_at   timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX lead_merges_org_into_idx ON lead_merges (org_id, into_id);

-- CSV imports: what a row matching an existing lead's key does, and what each row became.
-- Imports from before this migration created every row.
ALTER TABLE lead_imports
    ADD COLUMN on_duplicate text NOT NULL DEFAULT 'create' CHECK (on_duplicate IN ('skip', 'update', 'create')),
    ADD COLUMN outcomes jsonb NOT NULL DEFAULT '{}'::jsonb,
    ADD COLUMN results jsonb NOT NULL DEFAULT '[]'::jsonb;
