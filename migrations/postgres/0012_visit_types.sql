-- Visit types and the occupancy grid (issue 21: slot length per visit type).
--
-- A schedule lists its visit types (JSON: [{"key", "name", "length"}], minutes); empty
-- means one implicit type of `visit_mins`, as before. An appointment keeps its type and
-- the end of the time it occupies (its visit and the buffer it was booked with).
--
-- Double booking across lengths: each active appointment claims one row per 5-minute unit
-- of [starts_at, busy_until) under a unique (physician, unit), in the transaction that
-- books or moves it; cancelling or moving releases them in that transaction. The unique
-- index on (physician, starts_at) is replaced by it.
ALTER TABLE schedules ADD COLUMN visit_types TEXT NOT NULL DEFAULT '[]';
ALTER TABLE appointments ADD COLUMN visit_type TEXT NOT NULL DEFAULT 'visit';
ALTER TABLE appointments ADD COLUMN visit_name TEXT NOT NULL DEFAULT '';
ALTER TABLE appointments ADD COLUMN busy_until BIGINT NOT NULL DEFAULT 0;
UPDATE appointments SET busy_until = ends_at + 60000 * COALESCE(
    (SELECT buffer_mins FROM schedules WHERE schedules.staff_id = appointments.physician_id), 0);

CREATE TABLE appointment_units (
    physician_id   TEXT NOT NULL REFERENCES staff(id),
    -- unix ms, a multiple of 300000
    unit_start     BIGINT NOT NULL,
    appointment_id TEXT NOT NULL REFERENCES appointments(id),
    PRIMARY KEY (physician_id, unit_start)
);
CREATE INDEX appointment_units_appointment ON appointment_units(appointment_id);

-- Active appointments claim their units. Two that already overlap (a schedule changed
-- under them) keep the units the first one took.
WITH RECURSIVE u(physician_id, unit_start, stop, appointment_id) AS (
    SELECT physician_id, (starts_at / 300000) * 300000, busy_until, id FROM appointments
        WHERE status IN ('pending', 'confirmed')
    UNION ALL
    SELECT physician_id, unit_start + 300000, stop, appointment_id FROM u
        WHERE unit_start + 300000 < stop
)
INSERT INTO appointment_units (physician_id, unit_start, appointment_id)
    SELECT physician_id, unit_start, appointment_id FROM u WHERE true
    ON CONFLICT DO NOTHING;

DROP INDEX appointments_one_per_slot;
