-- "Shown once" secrets (API tokens, webhook signing secrets) were kept in clear in the stored
-- first responses of Idempotency-Key requests. Replays now carry the secret as null (see
-- crm_core/api/idempotency.py); purge the secrets already stored the same way, keeping the
-- rest of each response so that a retry within the key's day is still a replay, not a second
-- token. Only successful answers of the three secret-issuing endpoints hold one.
UPDATE idempotency_keys
SET response = jsonb_set(response::jsonb, '{token}', 'null'::jsonb)::text
WHERE method = 'POST' AND path = '/api/v1/api-tokens'
  AND status_code BETWEEN 200 AND 299 AND response IS NOT NULL;

UPDATE idempotency_keys
SET response = jsonb_set(response::jsonb, '{secret}', 'null'::jsonb)::text
WHERE method = 'POST' AND (path = '/api/v1/webhooks' OR path ~ '^/api/v1/webhooks/[^/]+/rotate-secret$')
  AND status_code BETWEEN 200 AND 299 AND response IS NOT NULL;
