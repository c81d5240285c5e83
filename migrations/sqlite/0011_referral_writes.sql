-- Referrals into the record (issue 22). A referral about a patient with a record becomes a
-- FHIR ServiceRequest there, through this outbox (one row per referral, made in the same
-- transaction as the referral): `state` is `pending` until the record source holds the
-- ServiceRequest as of `version` (an answer bumps it and makes the row pending again),
-- then `written` (or `failed`: given up after `records.write_max_attempts` or
-- `write_max_age_hours`; an answer makes it pending again). A node writes a pending row only while it holds its lease; a failed
-- attempt counts in `attempts`, keeps its cause (no patient data) in `last_error` and is
-- tried again at `next_attempt_at`. Times are unix milliseconds.
CREATE TABLE referral_writes (
    referral_id         TEXT PRIMARY KEY REFERENCES referrals(id),
    -- The physicians' names as their accounts had them when the referral was made.
    requester_name      TEXT NOT NULL,
    performer_name      TEXT NOT NULL,
    version             BIGINT NOT NULL DEFAULT 1,
    state               TEXT NOT NULL,
    attempts            BIGINT NOT NULL DEFAULT 0,
    created_at          BIGINT NOT NULL,
    next_attempt_at     BIGINT NOT NULL,
    -- Since when the current version waits (the referral, or its answer): the age at
    -- which `records.write_max_age_hours` gives up counts from here.
    pending_since       BIGINT NOT NULL,
    lease_owner         TEXT,
    lease_until         BIGINT,
    last_error          TEXT,
    last_attempt_at     BIGINT,
    service_request_ref TEXT,
    written_at          BIGINT
);
CREATE INDEX referral_writes_due ON referral_writes(state, next_attempt_at);

-- Accepted to be seen in the receiving physician's waiting room: the join link made for
-- the patient (its code is derived from the referral id with the server's key, only its
-- hash is in `links`), the room, and when the link expires.
ALTER TABLE referrals ADD COLUMN join_link_id TEXT;
ALTER TABLE referrals ADD COLUMN join_room_id TEXT;
ALTER TABLE referrals ADD COLUMN join_expires_at BIGINT;
