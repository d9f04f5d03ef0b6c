-- Each rep's averaged speaker embedding, learnt from the rep's own
-- track of two-track calls and enrolled on mixed-channel calls so their speakers
-- are labelled rep / customer (voice_server/rep_voiceprints.py).
CREATE TABLE rep_voiceprints (
    user_id      uuid PRIMARY KEY REFERENCES users(id) ON DELETE CASCADE,
    org_id       uuid NOT NULL REFERENCES organizations(id) ON DELETE CASCADE,
    model        text NOT NULL,
    embedding    bytea NOT NULL,
    speech_ms    bigint NOT NULL CHECK (speech_ms >= 0),
    utterances   integer NOT NULL CHECK (utterances >= 0),
    updated_at   timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX rep_voiceprints_org_idx ON rep_voiceprints (org_id);
