-- The physician's note of a visit (issue 22) and its write to the record source: one row
-- per visit. The row is the outbox too: `state` is `pending` until the record source holds
-- the visit's Encounter and DocumentReference (`encounter_ref`, `document_ref`), then
-- `written`. A node writes a pending row only while it holds its lease (`lease_owner`
-- until `lease_until`); a failed attempt counts in `attempts`, keeps its cause (no patient
-- data) in `last_error` and is tried again at `next_attempt_at`.
CREATE TABLE visit_notes (
    visit_id        TEXT PRIMARY KEY,
    staff_id        TEXT NOT NULL REFERENCES staff(id),
    patient_ref     TEXT NOT NULL,
    -- What is sent: the note, who, whom and when (records::visit_note::VisitWrite, JSON v1).
    body            TEXT NOT NULL,
    saved_at        BIGINT NOT NULL,
    state           TEXT NOT NULL,
    attempts        BIGINT NOT NULL DEFAULT 0,
    next_attempt_at BIGINT NOT NULL,
    lease_owner     TEXT,
    lease_until     BIGINT,
    last_error      TEXT,
    last_attempt_at BIGINT,
    encounter_ref   TEXT,
    document_ref    TEXT,
    written_at      BIGINT
);
CREATE INDEX visit_notes_due ON visit_notes(state, next_attempt_at);
CREATE INDEX visit_notes_patient ON visit_notes(patient_ref, saved_at);
