-- Team analytics read one row per finished call (crm_core/analytics/team_sql.py),
-- written in the transaction that stores the call's summary
-- (crm_core/calls/summaries.py). The figures come from the summary the live
-- path published: its talk metrics and its "analytics" (coaching/call_analytics.py).
-- A summary stored before "analytics" existed still gives its talk metrics;
-- questions, sentiment and prompts fired are then counted from the stored
-- transcript and prompts, and what cannot be told afterwards (prompts followed,
-- checklist size) stays NULL and out of the averages.
CREATE TABLE call_metrics (
    call_id                        uuid PRIMARY KEY REFERENCES calls(id) ON DELETE CASCADE,
    org_id                         uuid NOT NULL REFERENCES organizations(id) ON DELETE CASCADE,
    rep_id                         uuid REFERENCES users(id) ON DELETE SET NULL,
    started_at                     timestamptz NOT NULL,
    duration_ms                    integer NOT NULL CHECK (duration_ms >= 0),
    rep_talk_ms                    integer NOT NULL CHECK (rep_talk_ms >= 0),
    customer_talk_ms               integer NOT NULL CHECK (customer_talk_ms >= 0),
    rep_longest_monologue_ms       integer NOT NULL CHECK (rep_longest_monologue_ms >= 0),
    customer_longest_monologue_ms  integer NOT NULL CHECK (customer_longest_monologue_ms >= 0),
    rep_interruptions              integer NOT NULL CHECK (rep_interruptions >= 0),
    customer_interruptions         integer NOT NULL CHECK (customer_interruptions >= 0),
    rep_questions                  integer NOT NULL CHECK (rep_questions >= 0),
    customer_questions             integer NOT NULL CHECK (customer_questions >= 0),
    patience_ms                    real,       -- mean gap before the rep answers; NULL: no answer
    patience_answers               integer,    -- how many answers that mean is over
    rep_sentiment                  real,       -- mean per-segment score, -1..+1
    customer_sentiment             real,
    prompts_fired                  integer NOT NULL CHECK (prompts_fired >= 0),
    prompts_followed               integer CHECK (prompts_followed >= 0),
    checklist_total                integer CHECK (checklist_total >= 0),
    checklist_done                 integer CHECK (checklist_done >= 0),
    competitors                    text[] NOT NULL DEFAULT '{}',
    competitor_mentions            integer NOT NULL DEFAULT 0 CHECK (competitor_mentions >= 0),
    objections                     text[] NOT NULL DEFAULT '{}',   -- objection categories
    objection_mentions             integer NOT NULL DEFAULT 0 CHECK (objection_mentions >= 0),
    computed_at                    timestamptz NOT NULL DEFAULT now()
);
-- a period over the organization (team and org views), and one rep's calls
CREATE INDEX call_metrics_org_started_idx ON call_metrics (org_id, started_at);
CREATE INDEX call_metrics_org_rep_started_idx ON call_metrics (org_id, rep_id, started_at);

-- The call_metrics row of every summarised call, from its stored summary.
CREATE VIEW call_metrics_from_summaries AS
SELECT
    c.id AS call_id,
    c.org_id,
    c.rep_id,
    coalesce(c.started_at, c.created_at) AS started_at,
    greatest(0, coalesce((c.summary->>'duration_ms')::bigint, c.duration_s::bigint * 1000, 0))::integer
        AS duration_ms,
    coalesce((m->'talk_ms'->>'rep')::integer, 0) AS rep_talk_ms,
    coalesce((m->'talk_ms'->>'customer')::integer, 0) AS customer_talk_ms,
    coalesce((m->'longest_monologue_ms'->>'rep')::integer, 0) AS rep_longest_monologue_ms,
    coalesce((m->'longest_monologue_ms'->>'customer')::integer, 0) AS customer_longest_monologue_ms,
    coalesce((m->'interruptions'->>'rep')::integer, 0) AS rep_interruptions,
    coalesce((m->'interruptions'->>'customer')::integer, 0) AS customer_interruptions,
    coalesce((a->>'rep_questions')::integer,
             (SELECT count(*) FROM transcript_segments s, regexp_matches(s.text, '\?', 'g')
              WHERE s.call_id = c.id AND s.org_id = c.org_id AND s.party = 'rep'))::integer
        AS rep_questions,
    coalesce((a->>'customer_questions')::integer,
             (SELECT count(*) FROM transcript_segments s, regexp_matches(s.text, '\?', 'g')
              WHERE s.call_id = c.id AND s.org_id = c.org_id AND s.party = 'customer'))::integer
        AS customer_questions,
    CASE WHEN coalesce((a->>'patience_answers')::integer, 1) > 0 AND m IS NOT NULL
         THEN (m->>'patience_ms')::real END AS patience_ms,
    CASE WHEN m IS NOT NULL THEN (a->>'patience_answers')::integer END AS patience_answers,
    CASE WHEN a ? 'rep_sentiment' THEN (a->>'rep_sentiment')::real
         ELSE (SELECT avg(s.sentiment) FROM transcript_segments s
               WHERE s.call_id = c.id AND s.org_id = c.org_id AND s.party = 'rep') END
        AS rep_sentiment,
    CASE WHEN a ? 'customer_sentiment' THEN (a->>'customer_sentiment')::real
         ELSE (SELECT avg(s.sentiment) FROM transcript_segments s
               WHERE s.call_id = c.id AND s.org_id = c.org_id AND s.party = 'customer') END
        AS customer_sentiment,
    coalesce((a->>'prompts_fired')::integer,
             (SELECT count(*) FROM call_prompts p WHERE p.call_id = c.id AND p.org_id = c.org_id))::integer
        AS prompts_fired,
    (a->>'prompts_followed')::integer AS prompts_followed,
    (a->>'checklist_total')::integer AS checklist_total,
    (a->>'checklist_done')::integer AS checklist_done,
    CASE WHEN jsonb_typeof(a->'competitors') = 'object'
         THEN ARRAY(SELECT jsonb_object_keys(a->'competitors') ORDER BY 1)
         ELSE ARRAY(SELECT jsonb_array_elements_text(coalesce(c.summary->'competitors', '[]')) ORDER BY 1)
    END AS competitors,
    CASE WHEN jsonb_typeof(a->'competitors') = 'object'
         THEN (SELECT coalesce(sum(v::integer), 0) FROM jsonb_each_text(a->'competitors') AS e(k, v))
         ELSE coalesce((c.summary->'keyword_counts'->>'competitor')::integer, 0)
    END::integer AS competitor_mentions,
    CASE WHEN jsonb_typeof(a->'objections') = 'object'
         THEN ARRAY(SELECT jsonb_object_keys(a->'objections') ORDER BY 1)
         ELSE ARRAY(SELECT DISTINCT o->>'category'
                    FROM jsonb_array_elements(coalesce(c.summary->'objections', '[]')) AS o ORDER BY 1)
    END AS objections,
    CASE WHEN jsonb_typeof(a->'objections') = 'object'
         THEN (SELECT coalesce(sum(v::integer), 0) FROM jsonb_each_text(a->'objections') AS e(k, v))
         ELSE (SELECT coalesce(sum(v::integer), 0)
               FROM jsonb_each_text(coalesce(c.summary->'keyword_counts', '{}')) AS e(k, v)
               WHERE k LIKE 'objection%')
    END::integer AS objection_mentions
FROM calls c
CROSS JOIN LATERAL (SELECT CASE WHEN jsonb_typeof(c.summary->'metrics') = 'object'
                                THEN c.summary->'metrics' END AS m,
                           CASE WHEN jsonb_typeof(c.summary->'analytics') = 'object'
                                THEN c.summary->'analytics' ELSE '{}'::jsonb END AS a) AS parts
WHERE c.summary IS NOT NULL;

-- the calls finished before this table existed
INSERT INTO call_metrics (call_id, org_id, rep_id, started_at, duration_ms, rep_talk_ms, customer_talk_ms,
                          rep_longest_monologue_ms, customer_longest_monologue_ms, rep_interruptions,
                          customer_interruptions, rep_questions, customer_questions, patience_ms,
                          patience_answers, rep_sentiment, customer_sentiment, prompts_fired,
                          prompts_followed, checklist_total, checklist_done, competitors,
                          competitor_mentions, objections, objection_mentions)
SELECT call_id, org_id, rep_id, started_at, duration_ms, rep_talk_ms, customer_talk_ms,
       rep_longest_monologue_ms, customer_longest_monologue_ms, rep_interruptions,
       customer_interruptions, rep_questions, customer_questions, patience_ms,
       patience_answers, rep_sentiment, customer_sentiment, prompts_fired,
       prompts_followed, checklist_total, checklist_done, competitors,
       competitor_mentions, objections, objection_mentions
FROM call_metrics_from_summaries;
