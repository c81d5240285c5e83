-- examroom durable store, SQLite. Times are unix milliseconds (INTEGER).
-- Lists (roles, languages, sections) are JSON arrays in TEXT.

CREATE TABLE staff (
    id              TEXT PRIMARY KEY,
    email           TEXT NOT NULL,
    email_norm      TEXT NOT NULL UNIQUE,
    name            TEXT NOT NULL,
    roles           TEXT NOT NULL,
    active          BOOLEAN NOT NULL DEFAULT 1,
    password_hash   TEXT,
    languages       TEXT NOT NULL DEFAULT '[]',
    gender          TEXT,
    created_at      INTEGER NOT NULL,
    last_sign_in_at INTEGER
);

CREATE TABLE staff_sessions (
    id         TEXT PRIMARY KEY,
    staff_id   TEXT NOT NULL REFERENCES staff(id),
    created_at INTEGER NOT NULL,
    expires_at INTEGER NOT NULL,
    revoked    BOOLEAN NOT NULL DEFAULT 0
);
CREATE INDEX staff_sessions_staff ON staff_sessions(staff_id);

CREATE TABLE setup_tokens (
    hash       TEXT PRIMARY KEY,
    purpose    TEXT NOT NULL,
    staff_id   TEXT REFERENCES staff(id),
    expires_at INTEGER NOT NULL,
    used_at    INTEGER
);

CREATE TABLE rooms (
    id               TEXT PRIMARY KEY,
    name             TEXT NOT NULL,
    name_norm        TEXT NOT NULL,
    kind             TEXT NOT NULL,
    waiting_message  TEXT NOT NULL,
    max_wait_secs    INTEGER NOT NULL,
    max_participants INTEGER NOT NULL,
    chat_allowed     BOOLEAN NOT NULL,
    invites_allowed  BOOLEAN NOT NULL,
    opening_hours    TEXT,
    archived         BOOLEAN NOT NULL DEFAULT 0,
    created_at       INTEGER NOT NULL
);
-- Names are unique among rooms in use; an archived room frees its name.
CREATE UNIQUE INDEX rooms_name_live ON rooms(name_norm) WHERE archived = 0;

CREATE TABLE room_physicians (
    room_id  TEXT NOT NULL REFERENCES rooms(id),
    staff_id TEXT NOT NULL REFERENCES staff(id),
    position INTEGER NOT NULL,
    PRIMARY KEY (room_id, staff_id)
);
CREATE INDEX room_physicians_staff ON room_physicians(staff_id);

CREATE TABLE links (
    id            TEXT PRIMARY KEY,
    code_hash     TEXT NOT NULL UNIQUE,
    kind          TEXT NOT NULL,
    room_id       TEXT NOT NULL REFERENCES rooms(id),
    visit_id      TEXT NOT NULL,
    patient_name  TEXT,
    patient_ref   TEXT,
    reason        TEXT,
    lang          TEXT,
    not_before    INTEGER,
    expires_at    INTEGER NOT NULL,
    created_by    TEXT NOT NULL REFERENCES staff(id),
    created_at    INTEGER NOT NULL,
    revoked       BOOLEAN NOT NULL DEFAULT 0,
    first_used_at INTEGER,
    use_count     INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX links_room ON links(room_id);

-- One row per visit, kept up to date from the transitions below.
CREATE TABLE visits (
    id              TEXT PRIMARY KEY,
    room_id         TEXT NOT NULL,
    state           TEXT NOT NULL,
    created_at      INTEGER NOT NULL,
    admitted_at     INTEGER,
    admitted_by     TEXT,
    call_started_at INTEGER,
    ended_at        INTEGER,
    outcome         TEXT,
    physician_id    TEXT,
    patient_ref     TEXT
);
CREATE INDEX visits_room_created ON visits(room_id, created_at);
CREATE INDEX visits_physician_created ON visits(physician_id, created_at);
CREATE INDEX visits_created ON visits(created_at);

CREATE TABLE visit_events (
    id           INTEGER PRIMARY KEY AUTOINCREMENT,
    visit_id     TEXT NOT NULL REFERENCES visits(id),
    state        TEXT NOT NULL,
    at           INTEGER NOT NULL,
    actor        TEXT,
    physician_id TEXT,
    patient_ref  TEXT,
    UNIQUE (visit_id, state, at)
);

CREATE TABLE surveys (
    visit_id TEXT PRIMARY KEY REFERENCES visits(id),
    score    INTEGER NOT NULL CHECK (score BETWEEN 0 AND 10),
    comment  TEXT,
    at       INTEGER NOT NULL
);

CREATE TABLE audit_log (
    seq         INTEGER PRIMARY KEY,
    at          INTEGER NOT NULL,
    actor       TEXT NOT NULL,
    action      TEXT NOT NULL,
    patient_ref TEXT,
    visit_id    TEXT,
    sections    TEXT NOT NULL,
    outcome     TEXT NOT NULL,
    reason      TEXT,
    prev_hash   TEXT NOT NULL,
    hash        TEXT NOT NULL
);

-- The chain head: one row, updated in the same transaction as every append. Taking its
-- write lock first serialises appenders so the chain cannot fork.
CREATE TABLE audit_head (
    id   INTEGER PRIMARY KEY CHECK (id = 1),
    seq  INTEGER NOT NULL,
    hash TEXT NOT NULL
);
INSERT INTO audit_head (id, seq, hash)
VALUES (1, 0, '0000000000000000000000000000000000000000000000000000000000000000');
