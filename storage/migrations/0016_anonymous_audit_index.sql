-- Refused anonymous requests are aggregated into one audit row per source and minute
-- (crm_core.recordings.rows.write_anonymous_denial); this finds the window's rows.
CREATE INDEX audit_log_anonymous_idx ON audit_log (occurred_at DESC, action)
    WHERE org_id IS NULL AND actor_id IS NULL AND outcome = 'denied';
