-- Calls are linked to their lead by the customer's number compared as E.164
-- (crm_core/calls/routing.py match_lead). Every spelling of a stored phone ends
-- with the number's national digits, so the lookup is a prefix range over the
-- reversed digits; "C" collation makes that range a plain byte-order scan.
CREATE INDEX leads_org_phone_digits_idx ON leads
    (org_id, (reverse(regexp_replace(coalesce(phone, ''), '[^0-9]', '', 'g')) COLLATE "C"));
