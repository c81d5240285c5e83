-- The browser a join link is bound to: a hash of the device id the page keeps in
-- localStorage. Another browser is refused while the link's participant is connected.
CREATE TABLE link_devices (
    link_id     TEXT PRIMARY KEY REFERENCES links(id),
    device_hash TEXT NOT NULL,
    bound_at    INTEGER NOT NULL
);
