//! Server-side WebRTC: a browser-like peer ([`peer`]) and the connection check ([`check`]).
//!
//! Browsers of patients and physicians send media to each other, never through examroom; the
//! only server-side peer is the connection check, which echoes a data channel so a client can
//! measure round-trip time, loss and throughput and learn which ICE path works from where it
//! is. See `docs/media.md`.

pub mod check;
pub mod peer;
