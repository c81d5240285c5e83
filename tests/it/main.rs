//! The integration tests: one binary, one module per area, one kit (`kit/`) they share.
//! `cargo test --test it signalling::` runs one module. See docs/testing.md.

mod kit;

mod admin_api;
mod admin_restart;
mod api_errors_doc;
mod appointments;
mod appointments_mail;
mod appointments_store;
mod architecture;
mod authz_matrix;
mod cluster_nodes;
mod connection_check;
mod durable_contract;
mod fuzz_inputs;
mod identity_idp;
mod identity_links;
mod json_errors;
mod live_contract;
mod load_smoke;
mod media_browser;
mod media_check;
mod media_peer;
mod media_turn;
mod notify_mail;
mod protocol_doc;
mod records_access;
mod records_cache;
mod records_conformance;
mod records_fixtures;
mod records_http;
mod records_identity;
mod records_identity_nodes;
mod records_import;
mod records_refusal_audit;
mod records_sekmet;
mod records_semantics;
mod security_headers;
mod signalling;
mod sockets_security;
mod staff_setup;
mod tls;
mod webrtc_e2e;
