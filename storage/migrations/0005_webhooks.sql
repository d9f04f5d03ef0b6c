-- Webhooks out. Organisations register endpoints; every outbox
-- event an endpoint subscribes to becomes one delivery row, retried with
-- backoff until it succeeds or is dead-lettered.

CREATE TABLE webhook_endpoints (
    id            uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    org_id        uuid NOT NULL REFERENCES organizations(id) ON DELETE CASCADE,
    url           text NOT NULL CHECK (url ~* '^https?://'),
    secret        text NOT NULL CHECK (length(secret) >= 16),
    -- shell-style patterns ('crm.lead.*', '*'); an endpoint gets events matching any of them
    event_types   text[] NOT NULL DEFAULT '{*}' CHECK (cardinality(event_types) > 0),
    description   text,
    active        boolean NOT NULL DEFAULT true,
    created_at    timestamptz NOT NULL DEFAULT now(),
    updated_at    timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX webhook_endpoints_org_idx ON webhook_endpoints (org_id) WHERE active;

CREATE TABLE webhook_deliveries (
    id               bigserial PRIMARY KEY,
    org_id           uuid NOT NULL REFERENCES organizations(id) ON DELETE CASCADE,
    endpoint_id      uuid NOT NULL REFERENCES webhook_endpoints(id) ON DELETE CASCADE,
    outbox_id        bigint NOT NULL REFERENCES outbox(id) ON DELETE CASCADE,
    event_id         uuid NOT NULL,
    event_type       text NOT NULL,
    -- pending: waiting for its next attempt; delivering: claimed by a dispatcher
    -- until next_attempt_at (then it is due again: the claimer died);
    -- succeeded; dead: gave up after max attempts (or the endpoint was removed)
    status           text NOT NULL DEFAULT 'pending'
                     CHECK (status IN ('pending', 'delivering', 'succeeded', 'dead')),
    attempts         integer NOT NULL DEFAULT 0,
    next_attempt_at  timestamptz NOT NULL DEFAULT now(),
    last_attempt_at  timestamptz,
    response_status  integer,
    last_error       text,
    delivered_at     timestamptz,
    created_at       timestamptz NOT NULL DEFAULT now(),
    UNIQUE (endpoint_id, event_id)
);
CREATE INDEX webhook_deliveries_due_idx ON webhook_deliveries (next_attempt_at, id)
    WHERE status IN ('pending', 'delivering');
CREATE INDEX webhook_deliveries_endpoint_idx ON webhook_deliveries (org_id, endpoint_id, created_at DESC);

-- The delivery log: one row per HTTP attempt.
CREATE TABLE webhook_delivery_attempts (
    id               bigserial PRIMARY KEY,
    delivery_id      bigint NOT NULL REFERENCES webhook_deliveries(id) ON DELETE CASCADE,
    attempt          integer NOT NULL,
    response_status  integer,
    error            text,
    duration_ms      integer NOT NULL,
    attempted_at     timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX webhook_delivery_attempts_delivery_idx ON webhook_delivery_attempts (delivery_id, attempt);

-- Fan-out of outbox events to endpoints has its own mark, separate from
-- published_at (the event-bus relay's), so neither consumer blocks the other.
ALTER TABLE outbox ADD COLUMN webhooks_fanned_out_at timestamptz;
CREATE INDEX outbox_webhook_fanout_idx ON outbox (id) WHERE webhooks_fanned_out_at IS NULL;

-- Leads whose scoring inputs changed are found by comparing with scored_at.
CREATE INDEX leads_rescoring_idx ON leads (scored_at NULLS FIRST);
