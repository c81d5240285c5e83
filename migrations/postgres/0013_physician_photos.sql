-- Physicians' directory photos (issue 22): one small image each (JPEG, PNG or WebP, at most
-- 256 KiB, checked before it is stored). Public only while the profile is listed and its
-- `publish.photo` is on (decided in `directory`, not here).
CREATE TABLE physician_photos (
    staff_id     TEXT PRIMARY KEY REFERENCES staff(id),
    content_type TEXT NOT NULL,
    bytes        BYTEA NOT NULL,
    updated_at   BIGINT NOT NULL
);
