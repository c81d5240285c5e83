-- Referrals (issue 22): a physician refers the patient of one of their visits to another
-- physician, who accepts or declines with a note. Times are unix milliseconds.
CREATE TABLE referrals (
    id            TEXT PRIMARY KEY,
    visit_id      TEXT NOT NULL,
    patient_ref   TEXT,
    patient_name  TEXT,
    from_staff    TEXT NOT NULL REFERENCES staff(id),
    to_staff      TEXT NOT NULL REFERENCES staff(id),
    reason        TEXT NOT NULL,
    -- routine | urgent | asap (FHIR ServiceRequest.priority)
    urgency       TEXT NOT NULL,
    -- pending | accepted | declined
    status        TEXT NOT NULL,
    response_note TEXT,
    created_at    INTEGER NOT NULL,
    responded_at  INTEGER
);
CREATE INDEX referrals_to ON referrals(to_staff, created_at);
CREATE INDEX referrals_from ON referrals(from_staff, created_at);
CREATE INDEX referrals_visit ON referrals(visit_id);
