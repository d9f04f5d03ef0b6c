-- Leads unique per organisation by e-mail and phone; search over leads and deals.
--
-- Uniqueness is enforced by the API (crm_core/api/lead_keys.py) under a per-organisation
-- advisory lock, not by a unique index: which keys count is an organisation setting
-- (organizations.settings.lead_unique_keys), phones compare as E.164 (which needs the
-- phonenumbers library, not SQL), and databases from before this migration may already hold
-- duplicates. Those are kept as they are (nothing is deleted or rewritten here); the
-- duplicates endpoint lists them and POST /leads/{id}/merge folds them together.

-- pg_trgm where the server ships it and this role may create it (trusted since PostgreSQL 13).
-- The embedded PostgreSQL (pgserver) does not ship it: text_similarity below then computes
-- the same trigram similarity in plain SQL, unindexed.
DO $$
BEGIN
    IF EXISTS (SELECT 1 FROM pg_available_extensions WHERE name = 'pg_trgm') THEN
        BEGIN
            CREATE EXTENSION IF NOT EXISTS pg_trgm;
        EXCEPTION WHEN insufficient_privilege THEN
            RAISE NOTICE 'pg_trgm is available but this role may not create it; using plain SQL trigrams';
        END;
    END IF;
END $$;

-- pg_trgm's trigrams of a text: lower-cased words (runs of letters and digits), each padded
-- with two blanks before and one after, every distinct three-character window.
CREATE FUNCTION text_trigrams(t text) RETURNS text[] LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT coalesce(array_agg(DISTINCT substr(p.w, i, 3)), '{}'::text[])
    FROM regexp_split_to_table(lower(coalesce(t, '')), '[^[:alnum:]]+') AS s(word)
    CROSS JOIN LATERAL (SELECT '  ' || s.word || ' ' AS w) AS p
    CROSS JOIN LATERAL generate_series(1, length(p.w) - 2) AS i
    WHERE s.word <> ''
$$;

DO $$
BEGIN
    IF EXISTS (SELECT 1 FROM pg_extension WHERE extname = 'pg_trgm') THEN
        EXECUTE $f$
            CREATE FUNCTION text_similarity(a text, b text) RETURNS real
            LANGUAGE sql IMMUTABLE PARALLEL SAFE AS 'SELECT similarity(a, b)'
        $f$;
        EXECUTE $f$
            CREATE INDEX leads_name_trgm_idx ON leads USING gin
                ((coalesce(first_name, '') || ' ' || coalesce(last_name, '')) gin_trgm_ops)
        $f$;
    ELSE
        -- |common trigrams| / |all trigrams|, as pg_trgm's similarity()
        EXECUTE $f$
            CREATE FUNCTION text_similarity(a text, b text) RETURNS real
            LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $s$
                SELECT CASE WHEN cardinality(g.ta) = 0 OR cardinality(g.tb) = 0 THEN 0::real
                            ELSE c.common::real / (cardinality(g.ta) + cardinality(g.tb) - c.common) END
                FROM (SELECT text_trigrams(a) AS ta, text_trigrams(b) AS tb) AS g
                CROSS JOIN LATERAL (SELECT count(*)::int AS common FROM unnest(g.ta) AS e
                                    WHERE e = ANY (g.tb)) AS c
            $s$
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
