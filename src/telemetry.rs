//! Logging through `tracing`: one line per event on stderr, level from `RUST_LOG`
//! (default `info`). Request lines carry a request id; no password or token is ever logged.

use tracing::{Level, Metadata};
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{filter, EnvFilter, Layer};

/// Libraries whose debug and trace output holds credentials: the HTTP client writes request
/// headers (`Authorization: Bearer …`) and answer bodies (fresh OAuth tokens).
const QUIET_PREFIXES: [&str; 2] = ["ureq", "ureq_proto"];

/// Whether an event may be logged at all: nothing below `info` from [`QUIET_PREFIXES`],
/// whatever `RUST_LOG` asks (a directive for `ureq::run` is more specific than any
/// `ureq=info` we could add to the filter, so this is a filter of its own).
pub fn loggable(meta: &Metadata<'_>) -> bool {
    let quiet = QUIET_PREFIXES
        .iter()
        .any(|p| meta.target() == *p || meta.target().starts_with(&format!("{p}::")));
    !(quiet && *meta.level() > Level::INFO)
}

pub fn init() {
    let env = std::env::var("RUST_LOG")
        .ok()
        .and_then(|v| EnvFilter::try_new(v).ok())
        .unwrap_or_else(|| EnvFilter::new("info"));
    let layer = tracing_subscriber::fmt::layer()
        .with_writer(std::io::stderr)
        .with_target(false)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_filter(env)
        .with_filter(filter::filter_fn(loggable));
    // A second init (tests start several servers in one process) is harmless.
    let _ = tracing_subscriber::registry().with(layer).try_init();
}
