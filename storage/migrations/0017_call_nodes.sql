-- Which node carries each live call, and when each node last said it was alive
-- (crm_core/calls/nodes.py). A node that dies mid-call leaves its calls open with its
-- id: it ends them when it starts again under the same id, and if it does not come
-- back, any node ends them once its heartbeat is stale. A call's node_id is cleared
-- when the call ends; calls from before this migration carry none and are left alone.
ALTER TABLE calls ADD COLUMN node_id text;
CREATE INDEX calls_node_idx ON calls (node_id) WHERE node_id IS NOT NULL;

CREATE TABLE call_nodes (
    node_id      text PRIMARY KEY,
    started_at   timestamptz NOT NULL DEFAULT now(),
    heartbeat_at timestamptz NOT NULL DEFAULT now()
);
