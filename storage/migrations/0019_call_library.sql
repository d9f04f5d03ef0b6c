-- The call library: full-text search over transcripts, and comments on a moment of a call.
--
-- Each final segment carries its own search vector (English stemming), kept by PostgreSQL
-- itself, so a search finds the segment, not just the call, and the screen can jump there
-- (crm_core/calls/search.py). Only the first 100,000 characters are indexed: a tsvector
-- holds at most 1 MB, and a longer text must still be storable.
ALTER TABLE transcript_segments ADD COLUMN search_vector tsvector
    GENERATED ALWAYS AS (to_tsvector('english'::regconfig, left(text, 100000))) STORED;
CREATE INDEX transcript_segments_search_idx ON transcript_segments USING gin (search_vector);

-- A remark pinned to a moment of a call (a manager's coaching note to the rep), seen by
-- everyone who may see the call (crm_core/api/call_comments.py).
CREATE TABLE call_comments (
    id           uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    org_id       uuid NOT NULL REFERENCES organizations(id) ON DELETE CASCADE,
    call_id      uuid NOT NULL REFERENCES calls(id) ON DELETE CASCADE,
    author_id    uuid REFERENCES users(id) ON DELETE SET NULL,
    at_ms        integer NOT NULL CHECK (at_ms >= 0),
    segment_key  text,
    body         text NOT NULL CHECK (length(body) BETWEEN 1 AND 2000),
    created_at   timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX call_comments_call_idx ON call_comments (org_id, call_id, at_ms, id);
