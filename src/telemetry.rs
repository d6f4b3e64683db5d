//! Logging through `tracing`: one line per event on stderr, level from `RUST_LOG`
//! (default `info`). Request lines carry a request id; no password or token is ever logged.

use tracing_subscriber::EnvFilter;

/// Libraries whose debug and trace output holds credentials: the HTTP client writes request
/// headers (`Authorization: Bearer …`) and answer bodies (fresh OAuth tokens). They log at
/// `info` at most, whatever `RUST_LOG` asks.
const QUIET: [&str; 2] = ["ureq=info", "ureq_proto=info"];

/// The filter: `RUST_LOG` (default `info`), with [`QUIET`] on top.
pub fn filter(rust_log: Option<&str>) -> EnvFilter {
    let mut filter = rust_log
        .and_then(|v| EnvFilter::try_new(v).ok())
        .unwrap_or_else(|| EnvFilter::new("info"));
    for directive in QUIET {
        if let Ok(d) = directive.parse() {
            filter = filter.add_directive(d);
        }
    }
    filter
}

pub fn init() {
    let rust_log = std::env::var("RUST_LOG").ok();
    // A second init (tests start several servers in one process) is harmless.
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter(rust_log.as_deref()))
        .with_writer(std::io::stderr)
        .with_target(false)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .try_init();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_http_client_never_logs_below_info() {
        for asked in ["trace", "ureq=trace,debug", "ureq_proto=trace"] {
            let shown = filter(Some(asked)).to_string();
            assert!(shown.contains("ureq=info"), "{asked}: {shown}");
            assert!(shown.contains("ureq_proto=info"), "{asked}: {shown}");
            assert!(!shown.contains("ureq=trace"), "{asked}: {shown}");
        }
    }
}
