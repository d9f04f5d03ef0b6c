-- Lead grades run A-F. 0001 allowed A-D; the bottom band is now split into
-- D, E and F (cut-offs in crm_core/scoring/lead_scoring.py GRADE_CUTOFFS). Existing grades stay valid.
ALTER TABLE leads DROP CONSTRAINT IF EXISTS leads_grade_check;
ALTER TABLE leads ADD CONSTRAINT leads_grade_check
    CHECK (grade IS NULL OR grade IN ('A', 'B', 'C', 'D', 'E', 'F'));
