-- The post-call summary (key points, objections, next steps, action items, deal
-- signals) kept on the call; written once per call by the CRM's event writer.
ALTER TABLE calls ADD COLUMN summary jsonb;
ALTER TABLE calls ADD COLUMN summarized_at timestamptz;
