-- Carrier media streams are admitted once per call, on the one-time token of the
-- TwiML/NCCO we issued (crm_core/calls/stream_admissions.py). Only the token's
-- SHA-256 is stored; the row expires, and admitted_at is set by the one stream that
-- used it, so a second stream (or one for a finished call) is refused.
CREATE TABLE stream_admissions (
    call_id      uuid PRIMARY KEY REFERENCES calls(id) ON DELETE CASCADE,
    carrier      text NOT NULL,
    token_sha256 bytea NOT NULL CHECK (length(token_sha256) = 32),
    issued_at    timestamptz NOT NULL DEFAULT now(),
    expires_at   timestamptz NOT NULL,
    admitted_at  timestamptz
);
CREATE INDEX stream_admissions_expiry_idx ON stream_admissions (expires_at);

-- A call has at most one recording. Calls that already hold several (a second
-- stream used to add one, and review played the newest) keep every row: the
-- first is the call's recording, the later ones are flagged extra_stream, kept for
-- inspection and retention, and never played as the call's.
ALTER TABLE recordings ADD COLUMN extra_stream boolean NOT NULL DEFAULT false;
UPDATE recordings r SET extra_stream = true
WHERE EXISTS (SELECT 1 FROM recordings o
              WHERE o.call_id = r.call_id AND (o.created_at, o.id) < (r.created_at, r.id));
CREATE UNIQUE INDEX recordings_one_per_call ON recordings (call_id) WHERE NOT extra_stream;
