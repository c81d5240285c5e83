-- Appointments (issue 21): physicians' schedules, booked appointments and the outbox of
-- notices to patients. Times are unix milliseconds.

-- One schedule per physician: wall-clock hours in `zone` (JSON, see durable::appointments).
CREATE TABLE schedules (
    staff_id    TEXT PRIMARY KEY REFERENCES staff(id),
    room_id     TEXT NOT NULL REFERENCES rooms(id),
    zone        TEXT NOT NULL,
    weekly      TEXT NOT NULL,
    exceptions  TEXT NOT NULL,
    visit_mins  INTEGER NOT NULL,
    buffer_mins INTEGER NOT NULL,
    updated_at  INTEGER NOT NULL
);

CREATE TABLE appointments (
    id            TEXT PRIMARY KEY,
    physician_id  TEXT NOT NULL REFERENCES staff(id),
    room_id       TEXT NOT NULL REFERENCES rooms(id),
    starts_at     INTEGER NOT NULL,
    ends_at       INTEGER NOT NULL,
    -- pending (held until hold_until, waiting for the contact code) | confirmed |
    -- cancelled | expired (hold ran out) | no_show
    status        TEXT NOT NULL,
    hold_until    INTEGER NOT NULL,
    patient_name  TEXT NOT NULL,
    email         TEXT,
    phone         TEXT,
    birth_date    TEXT NOT NULL,
    reason        TEXT NOT NULL,
    lang          TEXT NOT NULL,
    consent       BOOLEAN NOT NULL,
    code_attempts INTEGER NOT NULL DEFAULT 0,
    manage_hash   TEXT UNIQUE,
    link_id       TEXT REFERENCES links(id),
    reminders_off BOOLEAN NOT NULL DEFAULT 0,
    sequence      INTEGER NOT NULL DEFAULT 0,
    created_at    INTEGER NOT NULL,
    updated_at    INTEGER NOT NULL
);
-- Double booking is impossible: one active appointment per physician and start time.
-- A pending hold counts until it is confirmed, cancelled or marked expired.
CREATE UNIQUE INDEX appointments_one_per_slot ON appointments(physician_id, starts_at)
    WHERE status IN ('pending', 'confirmed');
CREATE INDEX appointments_physician_start ON appointments(physician_id, starts_at);
CREATE INDEX appointments_start ON appointments(starts_at);

-- Notices to send, written in the same transaction as the change they announce.
CREATE TABLE appointment_notices (
    id             TEXT PRIMARY KEY,
    appointment_id TEXT NOT NULL REFERENCES appointments(id),
    -- code | booked | reminder | moved | cancelled
    kind           TEXT NOT NULL,
    lead_secs      INTEGER,
    channel        TEXT NOT NULL,
    -- The appointment's sequence when written: a notice of an older sequence is stale.
    sequence       INTEGER NOT NULL,
    due_at         INTEGER NOT NULL,
    -- pending | sent | failed | dropped
    status         TEXT NOT NULL,
    attempts       INTEGER NOT NULL DEFAULT 0,
    lease_owner    TEXT,
    lease_until    INTEGER,
    last_error     TEXT,
    done_at        INTEGER,
    created_at     INTEGER NOT NULL
);
CREATE INDEX appointment_notices_due ON appointment_notices(status, due_at);
CREATE INDEX appointment_notices_appointment ON appointment_notices(appointment_id);
