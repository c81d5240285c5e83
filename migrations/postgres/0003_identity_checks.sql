-- A patient's identity check for one visit (issue 17): the record panel opens only once the
-- joining patient confirmed the factor the clinic chose (date of birth by default).
-- `attempts` counts answers taken, right or wrong; a slot is taken before the answer is
-- compared, so concurrent guesses cannot exceed the limit. Kept in the durable store so
-- every node sees it and it survives a restart.
CREATE TABLE visit_identity (
    visit_id     TEXT PRIMARY KEY,
    attempts     BIGINT NOT NULL,
    confirmed_at BIGINT
);

-- Emergency access to one visit's record by one physician, around the identity check:
-- a reason is required; admins review the list; each grant is in the audit log too.
CREATE TABLE emergency_access (
    id          TEXT PRIMARY KEY,
    visit_id    TEXT NOT NULL,
    room_id     TEXT NOT NULL,
    staff_id    TEXT NOT NULL REFERENCES staff(id),
    patient_ref TEXT,
    reason      TEXT NOT NULL,
    at          BIGINT NOT NULL
);
CREATE INDEX emergency_access_visit ON emergency_access(visit_id, staff_id);
CREATE INDEX emergency_access_at ON emergency_access(at);
