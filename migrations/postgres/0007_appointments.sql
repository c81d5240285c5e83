-- Appointments (issue 21): physicians' schedules, booked appointments and the outbox of
-- notices to patients. Times are unix milliseconds.

-- One schedule per physician: wall-clock hours in `zone` (JSON, see durable::appointments).
CREATE TABLE schedules (
    staff_id    TEXT PRIMARY KEY REFERENCES staff(id),
    room_id     TEXT NOT NULL REFERENCES rooms(id),
    zone        TEXT NOT NULL,
    weekly      TEXT NOT NULL,
    exceptions  TEXT NOT NULL,
    visit_mins  BIGINT NOT NULL,
    buffer_mins BIGINT NOT NULL,
    updated_at  BIGINT NOT NULL
);

CREATE TABLE appointments (
    id            TEXT PRIMARY KEY,
    physician_id  TEXT NOT NULL REFERENCES staff(id),
    room_id       TEXT NOT NULL REFERENCES rooms(id),
    starts_at     BIGINT NOT NULL,
    ends_at       BIGINT NOT NULL,
    -- pending (held until hold_until, waiting for the contact code) | confirmed |
    -- cancelled | expired (hold ran out) | no_show
    status        TEXT NOT NULL,
    hold_until    BIGINT NOT NULL,
    patient_name  TEXT NOT NULL,
    email         TEXT,
    phone         TEXT,
    birth_date    TEXT NOT NULL,
    reason        TEXT NOT NULL,
    lang          TEXT NOT NULL,
    consent       BOOLEAN NOT NULL,
    code_attempts BIGINT NOT NULL DEFAULT 0,
    manage_hash   TEXT UNIQUE,
    link_id       TEXT REFERENCES links(id),
    reminders_off BOOLEAN NOT NULL DEFAULT FALSE,
    sequence      BIGINT NOT NULL DEFAULT 0,
    created_at    BIGINT NOT NULL,
    updated_at    BIGINT NOT NULL
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
    lead_secs      BIGINT,
    channel        TEXT NOT NULL,
    -- The appointment's sequence when written: a notice of an older sequence is stale.
    sequence       BIGINT NOT NULL,
    due_at         BIGINT NOT NULL,
    -- pending | sent | failed | dropped
    status         TEXT NOT NULL,
    attempts       BIGINT NOT NULL DEFAULT 0,
    lease_owner    TEXT,
    lease_until    BIGINT,
    last_error     TEXT,
    done_at        BIGINT,
    created_at     BIGINT NOT NULL
);
CREATE INDEX appointment_notices_due ON appointment_notices(status, due_at);
CREATE INDEX appointment_notices_appointment ON appointment_notices(appointment_id);
