-- The first response to an Idempotency-Key POST is kept as JSON text, not jsonb.
-- An error reply may echo what the client sent (an unknown CSV column, a filter value), and
-- jsonb cannot hold U+0000: storing such a reply failed with a 500 and left the key claimed
-- ("still being processed") until it was pruned. Text keeps the \u0000 escape as written.
ALTER TABLE idempotency_keys ALTER COLUMN response TYPE text USING response::text;
