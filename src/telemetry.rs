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
    !(quiet_target(meta.target()) && *meta.level() > Level::INFO)
}

/// Whether `target` is one of [`QUIET_PREFIXES`] or inside one. Asked for every event and
/// span, so it allocates nothing.
fn quiet_target(target: &str) -> bool {
    QUIET_PREFIXES.iter().any(|p| {
        target
            .strip_prefix(p)
            .is_some_and(|rest| rest.is_empty() || rest.starts_with("::"))
    })
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

#[cfg(test)]
mod tests {
    use super::quiet_target;

    #[test]
    fn the_http_client_and_its_modules_are_quiet_and_nothing_else() {
        for t in [
            "ureq",
            "ureq::run",
            "ureq_proto",
            "ureq_proto::client::flow",
        ] {
            assert!(quiet_target(t), "{t}");
        }
        for t in [
            "ureqx",
            "ureq_protocol",
            "countersign::channels::x",
            "actix_web",
            "",
        ] {
            assert!(!quiet_target(t), "{t}");
        }
    }
}
