-- Every coaching prompt a rep saw during a call, on the call clock, so a
-- manager reviewing the recording sees which prompt fired when (crm_core/calls/prompts.py).
-- Written at least once from the bus (coaching.prompt): the prompt key makes a
-- redelivered event write nothing twice.
CREATE TABLE call_prompts (
    id           uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    org_id       uuid NOT NULL REFERENCES organizations(id) ON DELETE CASCADE,
    call_id      uuid NOT NULL REFERENCES calls(id) ON DELETE CASCADE,
    prompt_key   text NOT NULL,
    rule_id      text NOT NULL,
    kind         text NOT NULL,
    severity     text NOT NULL,
    title        text NOT NULL,
    body         text NOT NULL DEFAULT '',
    at_ms        integer NOT NULL CHECK (at_ms >= 0),
    party        text,
    segment_key  text,
    evidence     jsonb NOT NULL DEFAULT '[]'::jsonb,
    link         text,
    created_at   timestamptz NOT NULL DEFAULT now(),
    UNIQUE (call_id, prompt_key)
);
CREATE INDEX call_prompts_call_idx ON call_prompts (call_id, at_ms, id);
CREATE INDEX call_prompts_org_idx ON call_prompts (org_id, created_at);
