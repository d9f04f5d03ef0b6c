-- Pipelines and their ordered stages, per organisation. A deal belongs to a
-- pipeline and sits in one of its stages; the stage's type (open | won | lost),
-- never its name, says whether the deal is closed, and prediction, training and
-- analytics read the type. deals.pipeline and deals.stage stay as the names
-- (what the API shows and filters on); the triggers below keep them equal to
-- pipeline_id / stage_id, and a writer may give either the ids or the names.

CREATE TABLE pipelines (
    id          uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    org_id      uuid NOT NULL REFERENCES organizations(id) ON DELETE CASCADE,
    name        text NOT NULL,
    is_default  boolean NOT NULL DEFAULT false,
    created_at  timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now(),
    UNIQUE (org_id, name),
    UNIQUE (org_id, id)
);
CREATE UNIQUE INDEX pipelines_one_default_idx ON pipelines (org_id) WHERE is_default;

CREATE TABLE pipeline_stages (
    id           uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    org_id       uuid NOT NULL,
    pipeline_id  uuid NOT NULL,
    name         text NOT NULL,
    position     integer NOT NULL CHECK (position >= 0),
    probability  double precision NOT NULL CHECK (probability >= 0 AND probability <= 1),
    type         text NOT NULL CHECK (type IN ('open', 'won', 'lost')),
    created_at   timestamptz NOT NULL DEFAULT now(),
    updated_at   timestamptz NOT NULL DEFAULT now(),
    UNIQUE (pipeline_id, name),
    -- deferred: a reorder moves several stages in one statement
    UNIQUE (pipeline_id, position) DEFERRABLE INITIALLY DEFERRED,
    UNIQUE (org_id, pipeline_id, id),
    FOREIGN KEY (org_id, pipeline_id) REFERENCES pipelines (org_id, id) ON DELETE CASCADE
);

-- One pipeline with the stages the API used to take as free text.
CREATE FUNCTION seed_pipeline(org uuid, pipeline_name text, make_default boolean) RETURNS uuid
LANGUAGE plpgsql AS $$
DECLARE
    pid uuid;
BEGIN
    INSERT INTO pipelines (org_id, name, is_default) VALUES (org, pipeline_name, make_default)
    RETURNING id INTO pid;
    INSERT INTO pipeline_stages (org_id, pipeline_id, name, position, probability, type)
    SELECT org, pid, s.name, s.position, s.probability, s.type
    FROM (VALUES ('qualification', 0, 0.1, 'open'), ('discovery', 1, 0.2, 'open'), ('demo', 2, 0.4, 'open'),
                 ('proposal', 3, 0.6, 'open'), ('negotiation', 4, 0.8, 'open'),
                 ('closed_won', 5, 1.0, 'won'), ('closed_lost', 6, 0.0, 'lost'))
         AS s (name, position, probability, type);
    RETURN pid;
END $$;

-- Every organisation, however it is created, starts with its default pipeline.
CREATE FUNCTION organizations_seed_pipeline() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM seed_pipeline(NEW.id, 'default', true);
    RETURN NULL;
END $$;
CREATE TRIGGER organizations_default_pipeline AFTER INSERT ON organizations
    FOR EACH ROW EXECUTE FUNCTION organizations_seed_pipeline();

SELECT seed_pipeline(id, 'default', true) FROM organizations;
-- A free-text pipeline name other than 'default' becomes a pipeline of its own (same stages).
SELECT seed_pipeline(d.org_id, d.pipeline, false)
FROM (SELECT DISTINCT org_id, pipeline FROM deals WHERE pipeline <> 'default') d;

CREATE TABLE deal_stage_history (
    id             uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    org_id         uuid NOT NULL REFERENCES organizations(id) ON DELETE CASCADE,
    deal_id        uuid NOT NULL REFERENCES deals(id) ON DELETE CASCADE,
    pipeline_id    uuid REFERENCES pipelines(id) ON DELETE SET NULL,
    stage_id       uuid REFERENCES pipeline_stages(id) ON DELETE SET NULL,
    -- the stage as it was when the deal entered it (a later rename or delete keeps this)
    stage_name     text NOT NULL,
    stage_type     text NOT NULL CHECK (stage_type IN ('open', 'won', 'lost')),
    entered_at     timestamptz NOT NULL,
    left_at        timestamptz,
    -- the free-text stage a deal had before pipelines, when it was read as another name
    migrated_from  text
);
CREATE INDEX deal_stage_history_deal_idx ON deal_stage_history (org_id, deal_id, entered_at);
CREATE INDEX deal_stage_history_stage_idx ON deal_stage_history (org_id, stage_id);

ALTER TABLE deals
    ADD COLUMN pipeline_id uuid,
    ADD COLUMN stage_id uuid,
    ADD COLUMN stage_entered_at timestamptz,
    ADD COLUMN lost_reason text;

-- Moving the free-text stages onto the pipelines. The rule, per deal (documented in
-- docs/api.md, "Pipelines and stages"): the text is compared lower-cased, trimmed, with
-- runs of spaces and dashes read as '_';
--   won, win, closed_won, closedwon        -> closed_won (type won)
--   lost, loss, closed_lost, closedlost    -> closed_lost (type lost)
--   the name of one of the pipeline's stages -> that stage
--   five or more characters within two edits of exactly one stage name -> that stage (a typo)
--   anything else -> a new open stage of that pipeline named exactly as the text
--                    (probability 0.1, after the open stages), so no deal loses what it said.
-- When the text was read as another name, the deal's first stage-history row keeps it.
CREATE FUNCTION pg_temp.edit_distance(a text, b text) RETURNS integer LANGUAGE plpgsql IMMUTABLE AS $$
DECLARE
    prev integer[];
    cur integer[];
    i integer;
    j integer;
BEGIN
    prev := ARRAY(SELECT generate_series(0, length(b)));
    FOR i IN 1 .. length(a) LOOP
        cur := ARRAY[i];
        FOR j IN 1 .. length(b) LOOP
            cur := cur || least(prev[j + 1] + 1, cur[j] + 1,
                                prev[j] + CASE WHEN substr(a, i, 1) = substr(b, j, 1) THEN 0 ELSE 1 END);
        END LOOP;
        prev := cur;
    END LOOP;
    RETURN prev[length(b) + 1];
END $$;

CREATE TEMPORARY TABLE stage_texts ON COMMIT DROP AS
SELECT DISTINCT d.org_id, p.id AS pipeline_id, d.stage AS text,
       regexp_replace(lower(btrim(d.stage)), '[[:space:]-]+', '_', 'g') AS key,
       NULL::uuid AS stage_id
FROM deals d JOIN pipelines p ON p.org_id = d.org_id AND p.name = d.pipeline;

UPDATE stage_texts t SET stage_id = s.id
FROM pipeline_stages s
WHERE s.pipeline_id = t.pipeline_id
  AND s.name = CASE WHEN t.key IN ('won', 'win', 'closed_won', 'closedwon') THEN 'closed_won'
                    WHEN t.key IN ('lost', 'loss', 'closed_lost', 'closedlost') THEN 'closed_lost'
                    ELSE t.key END;

UPDATE stage_texts t SET stage_id = m.stage_id
FROM (SELECT t2.pipeline_id, t2.text, min(s.id::text)::uuid AS stage_id
      FROM stage_texts t2 JOIN pipeline_stages s ON s.pipeline_id = t2.pipeline_id
      WHERE t2.stage_id IS NULL AND length(t2.key) >= 5 AND pg_temp.edit_distance(t2.key, s.name) <= 2
      GROUP BY t2.pipeline_id, t2.text HAVING count(*) = 1) m
WHERE t.stage_id IS NULL AND t.pipeline_id = m.pipeline_id AND t.text = m.text;

INSERT INTO pipeline_stages (org_id, pipeline_id, name, position, probability, type)
SELECT org_id, pipeline_id, text, 100 + row_number() OVER (PARTITION BY pipeline_id ORDER BY text), 0.1, 'open'
FROM stage_texts WHERE stage_id IS NULL;

UPDATE stage_texts t SET stage_id = s.id
FROM pipeline_stages s WHERE t.stage_id IS NULL AND s.pipeline_id = t.pipeline_id AND s.name = t.text;

-- open stages first (in their order), then won, then lost
UPDATE pipeline_stages s SET position = o.position
FROM (SELECT id, row_number() OVER (PARTITION BY pipeline_id
                                    ORDER BY CASE type WHEN 'open' THEN 0 WHEN 'won' THEN 1 ELSE 2 END,
                                             position) - 1 AS position
      FROM pipeline_stages) o
WHERE s.id = o.id AND s.position <> o.position;

UPDATE deals d SET pipeline_id = t.pipeline_id, stage_id = t.stage_id,
       -- a won or lost deal the old API left open (stage 'won') closed when it was last updated
       closed_at = CASE WHEN s.type <> 'open' THEN coalesce(d.closed_at, d.updated_at) ELSE d.closed_at END,
       stage_entered_at = coalesce(
           (SELECT max(a.occurred_at) FROM activities a
            WHERE a.org_id = d.org_id AND a.deal_id = d.id AND a.kind IN ('stage_changed', 'stage_change')
              AND coalesce(a.body->>'to', a.body->>'to_stage', a.body->>'stage') = d.stage),
           d.created_at)
FROM stage_texts t JOIN pipeline_stages s ON s.id = t.stage_id JOIN pipelines p ON p.id = t.pipeline_id
WHERE t.org_id = d.org_id AND p.name = d.pipeline AND t.text = d.stage;

INSERT INTO deal_stage_history (org_id, deal_id, pipeline_id, stage_id, stage_name, stage_type, entered_at,
                                migrated_from)
SELECT d.org_id, d.id, d.pipeline_id, d.stage_id, s.name, s.type, d.stage_entered_at,
       CASE WHEN d.stage <> s.name THEN d.stage END
FROM deals d JOIN pipeline_stages s ON s.id = d.stage_id AND s.org_id = d.org_id;

UPDATE deals d SET stage = s.name
FROM pipeline_stages s WHERE s.id = d.stage_id AND s.org_id = d.org_id AND d.stage <> s.name;

ALTER TABLE deals
    ALTER COLUMN pipeline_id SET NOT NULL,
    ALTER COLUMN stage_id SET NOT NULL,
    ALTER COLUMN stage_entered_at SET NOT NULL,
    -- a writer that names no pipeline or stage gets the default pipeline's first open stage
    ALTER COLUMN pipeline DROP DEFAULT,
    ALTER COLUMN stage DROP DEFAULT,
    -- a stage with deals in it cannot be deleted (the API answers 409 first)
    ADD CONSTRAINT deals_stage_fkey FOREIGN KEY (org_id, pipeline_id, stage_id)
        REFERENCES pipeline_stages (org_id, pipeline_id, id);
CREATE INDEX deals_org_stage_id_idx ON deals (org_id, stage_id);

-- A deal's pipeline and stage, from the ids when the writer changed them, else from the
-- names (NULL pipeline: the default one; NULL stage: its first open stage). Entering a won
-- or lost stage closes the deal (closed_at, unless the writer set it); an open one reopens it
-- (closed_at and lost_reason cleared).
CREATE FUNCTION deals_place_in_pipeline() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    st pipeline_stages%ROWTYPE;
    pid uuid;
    old_type text;
    moved boolean;
BEGIN
    IF TG_OP = 'UPDATE' AND NEW.stage_id IS NOT DISTINCT FROM OLD.stage_id
       AND NEW.pipeline_id IS NOT DISTINCT FROM OLD.pipeline_id
       AND NEW.stage IS NOT DISTINCT FROM OLD.stage AND NEW.pipeline IS NOT DISTINCT FROM OLD.pipeline THEN
        RETURN NEW;
    END IF;
    IF NEW.stage_id IS NOT NULL AND (TG_OP = 'INSERT' OR NEW.stage_id IS DISTINCT FROM OLD.stage_id) THEN
        SELECT * INTO st FROM pipeline_stages WHERE id = NEW.stage_id AND org_id = NEW.org_id;
    ELSE
        SELECT id INTO pid FROM pipelines
        WHERE org_id = NEW.org_id AND CASE WHEN NEW.pipeline IS NULL THEN is_default ELSE name = NEW.pipeline END;
        SELECT * INTO st FROM pipeline_stages
        WHERE org_id = NEW.org_id AND pipeline_id = pid
          AND CASE WHEN NEW.stage IS NULL THEN type = 'open' ELSE name = NEW.stage END
        ORDER BY position LIMIT 1;
    END IF;
    IF st.id IS NULL THEN
        RAISE EXCEPTION 'stage % is not a stage of pipeline % of this organisation', NEW.stage, NEW.pipeline
            USING ERRCODE = 'foreign_key_violation';
    END IF;
    moved := TG_OP = 'INSERT' OR st.id IS DISTINCT FROM OLD.stage_id;
    NEW.stage_id := st.id;
    NEW.pipeline_id := st.pipeline_id;
    NEW.stage := st.name;
    NEW.pipeline := (SELECT name FROM pipelines WHERE id = st.pipeline_id AND org_id = NEW.org_id);
    IF NOT moved THEN
        RETURN NEW;
    END IF;
    IF TG_OP = 'INSERT' THEN
        NEW.stage_entered_at := coalesce(NEW.stage_entered_at, NEW.created_at, now());
    ELSE
        NEW.stage_entered_at := now();
        SELECT type INTO old_type FROM pipeline_stages WHERE id = OLD.stage_id AND org_id = OLD.org_id;
    END IF;
    IF st.type = 'open' THEN
        NEW.closed_at := NULL;
        NEW.lost_reason := NULL;
    ELSE
        IF TG_OP = 'INSERT' THEN
            NEW.closed_at := coalesce(NEW.closed_at, NEW.stage_entered_at);
        ELSIF NEW.closed_at IS NOT DISTINCT FROM OLD.closed_at
              AND (OLD.closed_at IS NULL OR old_type IS DISTINCT FROM st.type) THEN
            NEW.closed_at := now();
        END IF;
        IF st.type = 'won' THEN
            NEW.lost_reason := NULL;
        END IF;
    END IF;
    RETURN NEW;
END $$;
CREATE TRIGGER deals_place_in_pipeline BEFORE INSERT OR UPDATE ON deals
    FOR EACH ROW EXECUTE FUNCTION deals_place_in_pipeline();

-- The stage history: the row of the stage the deal left gets left_at, the new one is added.
CREATE FUNCTION deals_record_stage() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'UPDATE' THEN
        IF NEW.stage_id IS NOT DISTINCT FROM OLD.stage_id THEN
            RETURN NULL;
        END IF;
        UPDATE deal_stage_history SET left_at = NEW.stage_entered_at
        WHERE org_id = NEW.org_id AND deal_id = NEW.id AND left_at IS NULL;
    END IF;
    INSERT INTO deal_stage_history (org_id, deal_id, pipeline_id, stage_id, stage_name, stage_type, entered_at)
    SELECT NEW.org_id, NEW.id, NEW.pipeline_id, s.id, s.name, s.type, NEW.stage_entered_at
    FROM pipeline_stages s WHERE s.id = NEW.stage_id AND s.org_id = NEW.org_id;
    RETURN NULL;
END $$;
CREATE TRIGGER deals_record_stage AFTER INSERT OR UPDATE ON deals
    FOR EACH ROW EXECUTE FUNCTION deals_record_stage();
