-- Recordings: what the recorder, crash recovery and retention need beyond
-- 0001's recordings table. 'incomplete' = the recording process died mid-call; the
-- file was sealed on recovery and plays up to its last complete chunk.
ALTER TABLE recordings DROP CONSTRAINT recordings_status_check;
ALTER TABLE recordings ADD CONSTRAINT recordings_status_check
    CHECK (status IN ('recording', 'complete', 'incomplete', 'partial', 'deleted'));

ALTER TABLE recordings
    ADD COLUMN format_version smallint NOT NULL DEFAULT 1,
    ADD COLUMN chunk_size     integer,
    ADD COLUMN node_id        text,
    -- Renewed while a node is writing the recording; a stale one was left by a dead process.
    ADD COLUMN heartbeat_at   timestamptz NOT NULL DEFAULT now(),
    ADD COLUMN deleted_at     timestamptz;

CREATE INDEX recordings_open_idx ON recordings (heartbeat_at) WHERE status = 'recording';
CREATE INDEX recordings_retention_idx ON recordings (created_at) WHERE status IN ('complete', 'incomplete', 'partial');
