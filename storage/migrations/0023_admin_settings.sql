-- What admins configure without SQL (crm_core/admin/): every saved version of an
-- organization's coaching rule set, so a change can be rolled back, and which carrier
-- number rings which rep. The current rule set stays in organizations.settings
-- (coaching_rules), where the live calls read it; each version row is a copy of one
-- rule set that was current, numbered per organization.
CREATE TABLE coaching_rule_versions (
    id          uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    org_id      uuid NOT NULL REFERENCES organizations(id) ON DELETE CASCADE,
    version     integer NOT NULL CHECK (version > 0),
    rules       jsonb NOT NULL,
    note        text,
    created_by  uuid REFERENCES users(id) ON DELETE SET NULL,
    restored_from integer,
    created_at  timestamptz NOT NULL DEFAULT now(),
    UNIQUE (org_id, version)
);

-- A number rings one rep in one organization: the carrier webhook knows only the
-- number dialled, so it must be unique across organizations.
CREATE TABLE carrier_numbers (
    id          uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    org_id      uuid NOT NULL REFERENCES organizations(id) ON DELETE CASCADE,
    number      text NOT NULL UNIQUE,
    user_id     uuid NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    created_at  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX carrier_numbers_org_idx ON carrier_numbers (org_id, user_id);
