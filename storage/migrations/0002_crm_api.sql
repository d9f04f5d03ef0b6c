-- The CRM REST API's own tables: browser sessions, idempotent POST replays,
-- and CSV import jobs.

-- Browser sign-ins ('browser': the HttpOnly cookie) and the short-lived bearer
-- tokens issued for them ('access', parent_id = the browser session). Only a
-- hash of each token is stored; logout revokes a session and its access tokens.
CREATE TABLE sessions (
    id           uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    org_id       uuid NOT NULL REFERENCES organizations(id) ON DELETE CASCADE,
    user_id      uuid NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    kind         text NOT NULL CHECK (kind IN ('browser', 'access')),
    parent_id    uuid REFERENCES sessions(id) ON DELETE CASCADE,
    token_hash   bytea NOT NULL UNIQUE,
    csrf_token   text,
    created_at   timestamptz NOT NULL DEFAULT now(),
    expires_at   timestamptz NOT NULL,
    revoked_at   timestamptz
);
CREATE INDEX sessions_user_idx ON sessions (org_id, user_id);
CREATE INDEX sessions_parent_idx ON sessions (parent_id) WHERE parent_id IS NOT NULL;

-- The first response to a POST carrying an Idempotency-Key, replayed for retries.
-- status_code NULL means the first request is still being handled.
CREATE TABLE idempotency_keys (
    org_id        uuid NOT NULL REFERENCES organizations(id) ON DELETE CASCADE,
    user_id       uuid NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    key           text NOT NULL,
    method        text NOT NULL,
    path          text NOT NULL,
    request_hash  text NOT NULL,
    status_code   integer,
    response      jsonb,
    created_at    timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (org_id, user_id, key)
);
CREATE INDEX idempotency_keys_created_idx ON idempotency_keys (created_at);

-- CSV lead imports: a job resource with a progress figure and per-row errors.
CREATE TABLE lead_imports (
    id             uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    org_id         uuid NOT NULL REFERENCES organizations(id) ON DELETE CASCADE,
    user_id        uuid REFERENCES users(id) ON DELETE SET NULL,
    mode           text NOT NULL CHECK (mode IN ('all_or_nothing', 'partial')),
    status         text NOT NULL DEFAULT 'running'
                   CHECK (status IN ('running', 'completed', 'failed')),
    total_rows     integer NOT NULL DEFAULT 0,
    processed_rows integer NOT NULL DEFAULT 0,
    imported_rows  integer NOT NULL DEFAULT 0,
    errors         jsonb NOT NULL DEFAULT '[]'::jsonb,
    created_at     timestamptz NOT NULL DEFAULT now(),
    finished_at    timestamptz
);
CREATE INDEX lead_imports_org_idx ON lead_imports (org_id, created_at DESC);

-- Keyset pagination sorts on these with id as the tie-breaker.
CREATE INDEX leads_org_updated_idx ON leads (org_id, updated_at DESC, id DESC);
CREATE INDEX deals_org_updated_idx ON deals (org_id, updated_at DESC, id DESC);
