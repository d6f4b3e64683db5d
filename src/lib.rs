//! Countersign: safe public replies to customers on social media. Inbound posts are linked
//! to customer records; agents draft replies; every draft is checked against compliance
//! policies, reviewed under the four-eyes rule, posted exactly once, and every action lands
//! in a tamper-evident audit log. See `docs/architecture.md` for the map of these modules.

pub mod app;
pub mod audit;
pub mod channels;
pub mod cli;
pub mod config;
pub mod db;
pub mod domain;
pub mod error;
pub mod http;
pub mod mail;
pub mod policy;
pub mod replay;
pub mod startup;
pub mod telemetry;
pub mod workers;
