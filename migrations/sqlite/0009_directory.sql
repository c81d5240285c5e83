-- The physician directory (issue 22): what each physician shows the public. Languages and
-- gender stay on `staff` (walk-in pairing reads them there); `publish` says which of the
-- optional fields (gender, languages, sites, bio) leave the server. JSON in TEXT columns.
CREATE TABLE physician_profiles (
    staff_id      TEXT PRIMARY KEY REFERENCES staff(id),
    display_name  TEXT NOT NULL,
    specialties   TEXT NOT NULL,
    bio           TEXT,
    sites         TEXT NOT NULL,
    visit_types   TEXT NOT NULL,
    accepting_new BOOLEAN NOT NULL,
    listed        BOOLEAN NOT NULL,
    publish       TEXT NOT NULL,
    updated_at    INTEGER NOT NULL
);
