-- Coachline's first schema: the CRM core. Every business row carries org_id
-- (the tenant); lookups that the API and the live path make are indexed.

CREATE TABLE organizations (
    id          uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    name        text NOT NULL,
    slug        text NOT NULL UNIQUE,
    settings    jsonb NOT NULL DEFAULT '{}'::jsonb,
    created_at  timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE teams (
    id          uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    org_id      uuid NOT NULL REFERENCES organizations(id) ON DELETE CASCADE,
    name        text NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now(),
    UNIQUE (org_id, name)
);

CREATE TABLE users (
    id            uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    org_id        uuid NOT NULL REFERENCES organizations(id) ON DELETE CASCADE,
    email         text NOT NULL,
    name          text NOT NULL,
    role          text NOT NULL CHECK (role IN ('rep', 'manager', 'admin')),
    team_id       uuid REFERENCES teams(id) ON DELETE SET NULL,
    territory     text,
    phone         text,
    sip_uri       text,
    password_hash text,
    is_active     boolean NOT NULL DEFAULT true,
    created_at    timestamptz NOT NULL DEFAULT now(),
    updated_at    timestamptz NOT NULL DEFAULT now(),
    UNIQUE (org_id, email)
);
CREATE INDEX users_org_team_idx ON users (org_id, team_id);

CREATE TABLE api_tokens (
    id            uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    org_id        uuid NOT NULL REFERENCES organizations(id) ON DELETE CASCADE,
    user_id       uuid NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    name          text NOT NULL,
    token_prefix  text NOT NULL,
    token_hash    bytea NOT NULL UNIQUE,
    scopes        text[] NOT NULL DEFAULT '{}',
    created_at    timestamptz NOT NULL DEFAULT now(),
    last_used_at  timestamptz,
    expires_at    timestamptz,
    revoked_at    timestamptz
);
CREATE INDEX api_tokens_org_user_idx ON api_tokens (org_id, user_id);

CREATE TABLE leads (
    id            uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    org_id        uuid NOT NULL REFERENCES organizations(id) ON DELETE CASCADE,
    owner_id      uuid REFERENCES users(id) ON DELETE SET NULL,
    first_name    text,
    last_name     text,
    email         text,
    phone         text,
    company       text,
    title         text,
    company_size  integer CHECK (company_size IS NULL OR company_size >= 0),
    industry      text,
    source        text,
    territory     text,
    status        text NOT NULL DEFAULT 'new'
                  CHECK (status IN ('new', 'contacted', 'qualified', 'unqualified', 'converted')),
    ai_score      real CHECK (ai_score IS NULL OR (ai_score >= 0 AND ai_score <= 100)),
    grade         text CHECK (grade IS NULL OR grade IN ('A', 'B', 'C', 'D')),
    score_factors jsonb,
    scored_at     timestamptz,
    enrichment    jsonb NOT NULL DEFAULT '{}'::jsonb,
    created_at    timestamptz NOT NULL DEFAULT now(),
    updated_at    timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX leads_org_created_idx ON leads (org_id, created_at DESC, id DESC);
CREATE INDEX leads_org_owner_idx ON leads (org_id, owner_id);
CREATE INDEX leads_org_status_idx ON leads (org_id, status);
CREATE INDEX leads_org_email_idx ON leads (org_id, lower(email));
CREATE INDEX leads_org_phone_idx ON leads (org_id, phone);
CREATE INDEX leads_org_territory_idx ON leads (org_id, territory);

CREATE TABLE deals (
    id              uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    org_id          uuid NOT NULL REFERENCES organizations(id) ON DELETE CASCADE,
    lead_id         uuid REFERENCES leads(id) ON DELETE SET NULL,
    owner_id        uuid REFERENCES users(id) ON DELETE SET NULL,
    name            text NOT NULL,
    company         text,
    value           numeric(14, 2) NOT NULL DEFAULT 0 CHECK (value >= 0),
    currency        char(3) NOT NULL DEFAULT 'USD',
    pipeline        text NOT NULL DEFAULT 'default',
    stage           text NOT NULL DEFAULT 'qualification',
    expected_close  date,
    closed_at       timestamptz,
    created_at      timestamptz NOT NULL DEFAULT now(),
    updated_at      timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX deals_org_created_idx ON deals (org_id, created_at DESC, id DESC);
CREATE INDEX deals_org_owner_idx ON deals (org_id, owner_id);
CREATE INDEX deals_org_stage_idx ON deals (org_id, pipeline, stage);
CREATE INDEX deals_org_lead_idx ON deals (org_id, lead_id);

CREATE TABLE calls (
    id                uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    org_id            uuid NOT NULL REFERENCES organizations(id) ON DELETE CASCADE,
    carrier           text NOT NULL CHECK (carrier IN ('twilio', 'vonage', 'sip', 'simulator')),
    direction         text NOT NULL CHECK (direction IN ('inbound', 'outbound')),
    external_id       text,
    stream_id         text,
    from_number       text,
    to_number         text,
    rep_id            uuid REFERENCES users(id) ON DELETE SET NULL,
    lead_id           uuid REFERENCES leads(id) ON DELETE SET NULL,
    deal_id           uuid REFERENCES deals(id) ON DELETE SET NULL,
    status            text NOT NULL DEFAULT 'queued'
                      CHECK (status IN ('queued', 'ringing', 'in-progress', 'completed',
                                        'busy', 'failed', 'no-answer', 'canceled')),
    ended_abnormally  boolean NOT NULL DEFAULT false,
    started_at        timestamptz,
    answered_at       timestamptz,
    ended_at          timestamptz,
    duration_s        integer CHECK (duration_s IS NULL OR duration_s >= 0),
    metadata          jsonb NOT NULL DEFAULT '{}'::jsonb,
    created_at        timestamptz NOT NULL DEFAULT now(),
    updated_at        timestamptz NOT NULL DEFAULT now(),
    UNIQUE (carrier, external_id)
);
CREATE INDEX calls_org_created_idx ON calls (org_id, created_at DESC, id DESC);
CREATE INDEX calls_org_rep_idx ON calls (org_id, rep_id, created_at DESC);
CREATE INDEX calls_org_lead_idx ON calls (org_id, lead_id);
CREATE INDEX calls_org_deal_idx ON calls (org_id, deal_id);
CREATE INDEX calls_live_idx ON calls (status) WHERE status IN ('ringing', 'in-progress');

CREATE TABLE transcript_segments (
    id           bigserial PRIMARY KEY,
    org_id       uuid NOT NULL REFERENCES organizations(id) ON DELETE CASCADE,
    call_id      uuid NOT NULL REFERENCES calls(id) ON DELETE CASCADE,
    segment_key  text NOT NULL,
    party        text NOT NULL CHECK (party IN ('rep', 'customer', 'mixed')),
    speaker      text,
    start_ms     integer NOT NULL CHECK (start_ms >= 0),
    end_ms       integer NOT NULL CHECK (end_ms >= start_ms),
    text         text NOT NULL,
    text_raw     text,
    words        jsonb NOT NULL DEFAULT '[]'::jsonb,
    is_final     boolean NOT NULL DEFAULT true,
    sentiment    real,
    created_at   timestamptz NOT NULL DEFAULT now(),
    -- a segment delivered twice (at-least-once events) is written once
    UNIQUE (call_id, segment_key)
);
CREATE INDEX transcript_segments_call_idx ON transcript_segments (call_id, start_ms);
CREATE INDEX transcript_segments_org_idx ON transcript_segments (org_id, created_at);

CREATE TABLE recordings (
    id           uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    org_id       uuid NOT NULL REFERENCES organizations(id) ON DELETE CASCADE,
    call_id      uuid NOT NULL REFERENCES calls(id) ON DELETE CASCADE,
    storage_key  text NOT NULL UNIQUE,
    key_id       text NOT NULL,
    status       text NOT NULL DEFAULT 'recording'
                 CHECK (status IN ('recording', 'complete', 'partial', 'deleted')),
    channels     smallint NOT NULL DEFAULT 2 CHECK (channels IN (1, 2)),
    sample_rate  integer NOT NULL DEFAULT 8000,
    byte_length  bigint NOT NULL DEFAULT 0 CHECK (byte_length >= 0),
    duration_ms  bigint NOT NULL DEFAULT 0 CHECK (duration_ms >= 0),
    created_at   timestamptz NOT NULL DEFAULT now(),
    finalized_at timestamptz
);
CREATE INDEX recordings_org_call_idx ON recordings (org_id, call_id);

-- The timeline of a lead / deal / call: calls, notes, stage changes,
-- coaching highlights. subject_* names the record the entry is about.
CREATE TABLE activities (
    id            uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    org_id        uuid NOT NULL REFERENCES organizations(id) ON DELETE CASCADE,
    kind          text NOT NULL,
    subject_type  text NOT NULL CHECK (subject_type IN ('lead', 'deal', 'call')),
    subject_id    uuid NOT NULL,
    lead_id       uuid REFERENCES leads(id) ON DELETE CASCADE,
    deal_id       uuid REFERENCES deals(id) ON DELETE CASCADE,
    call_id       uuid REFERENCES calls(id) ON DELETE CASCADE,
    actor_id      uuid REFERENCES users(id) ON DELETE SET NULL,
    body          jsonb NOT NULL DEFAULT '{}'::jsonb,
    occurred_at   timestamptz NOT NULL DEFAULT now(),
    created_at    timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX activities_subject_idx ON activities (org_id, subject_type, subject_id, occurred_at DESC);
CREATE INDEX activities_lead_idx ON activities (org_id, lead_id, occurred_at DESC) WHERE lead_id IS NOT NULL;
CREATE INDEX activities_deal_idx ON activities (org_id, deal_id, occurred_at DESC) WHERE deal_id IS NOT NULL;

CREATE TABLE predictions (
    id               uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    org_id           uuid NOT NULL REFERENCES organizations(id) ON DELETE CASCADE,
    deal_id          uuid NOT NULL REFERENCES deals(id) ON DELETE CASCADE,
    model_version    text NOT NULL,
    win_probability  real NOT NULL CHECK (win_probability >= 0 AND win_probability <= 1),
    predicted_close  date,
    factors          jsonb NOT NULL DEFAULT '[]'::jsonb,
    created_at       timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX predictions_deal_idx ON predictions (org_id, deal_id, created_at DESC);

CREATE TABLE audit_log (
    id             bigserial PRIMARY KEY,
    org_id         uuid REFERENCES organizations(id) ON DELETE CASCADE,
    actor_id       uuid REFERENCES users(id) ON DELETE SET NULL,
    actor_kind     text NOT NULL DEFAULT 'user' CHECK (actor_kind IN ('user', 'system', 'carrier')),
    action         text NOT NULL,
    resource_type  text NOT NULL,
    resource_id    text,
    outcome        text NOT NULL DEFAULT 'ok' CHECK (outcome IN ('ok', 'denied', 'error')),
    before         jsonb,
    after          jsonb,
    detail         jsonb NOT NULL DEFAULT '{}'::jsonb,
    ip             inet,
    request_id     text,
    occurred_at    timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX audit_log_resource_idx ON audit_log (org_id, resource_type, resource_id, occurred_at DESC);
CREATE INDEX audit_log_actor_idx ON audit_log (org_id, actor_id, occurred_at DESC);

-- Events that must not be lost are written here in the same transaction as
-- the change they describe, then relayed to the event bus.
CREATE TABLE outbox (
    id               bigserial PRIMARY KEY,
    event_id         uuid NOT NULL UNIQUE,
    org_id           uuid REFERENCES organizations(id) ON DELETE CASCADE,
    type             text NOT NULL,
    payload          jsonb NOT NULL,
    created_at       timestamptz NOT NULL DEFAULT now(),
    attempts         integer NOT NULL DEFAULT 0,
    next_attempt_at  timestamptz NOT NULL DEFAULT now(),
    published_at     timestamptz,
    last_error       text
);
CREATE INDEX outbox_pending_idx ON outbox (next_attempt_at, id) WHERE published_at IS NULL;
