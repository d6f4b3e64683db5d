//! The integration tests, in one binary so the suite links once. Each module is one part
//! of the product, driven as its users drive it: over HTTP against the real server on a real
//! SQLite file or PostgreSQL database (`common`), or through the `countersign` binary.

#[macro_use]
mod common;

mod api;
mod audit_bundles;
mod audit_identity;
mod audit_log;
mod audit_pg_role;
mod audit_processes;
mod audit_tamper;
mod channels_mastodon;
mod channels_x;
mod cli;
mod customers;
mod expiry;
mod fuzz_properties;
mod hardening;
mod hours;
mod jobs;
mod mail;
mod outbox;
mod policies_reload;
mod policy_evasion;
mod policy_load_errors;
mod policy_preview;
mod policy_properties;
mod policy_real_replies;
mod policy_samples;
mod policy_twitter_text;
mod replay;
mod roles;
mod routes;
mod users;
mod write_path;
