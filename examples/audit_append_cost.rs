//! What one request's append costs: COUNT write transactions, each `write_tx` with one
//! `append` in it (an ~200-byte `inbound.received`, as a request would write), on an
//! existing log (docs/perf-audit-draft.md). The log grows by COUNT.
//!
//! ```text
//! audit_append_cost URL [COUNT]
//! ```
//! Prints the log size before, appends/s, and p50 / p99 / max per transaction in ms.

use countersign::audit::{Actor, AuditAction};
use std::time::Instant;

fn pct(sorted: &[f64], p: f64) -> f64 {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

const TEXT: &str = "Hello, my order still hasn't arrived and the tracking page says delivered \
since Tuesday. Please help, I have been waiting three weeks now and nobody answers the \
phone. Can someone call me back today?";

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let url = args
        .get(1)
        .ok_or_else(|| anyhow::anyhow!("usage: audit_append_cost URL [COUNT]"))?;
    let count: usize = args
        .get(2)
        .map(|s| s.parse())
        .transpose()?
        .unwrap_or(10_000);
    let db = countersign::db::Db::connect(url, 1)?;
    let mut conn = db.conn()?;
    let before = countersign::db::audit::head_size(&mut conn)?;
    let mut ms = Vec::with_capacity(count);
    let t0 = Instant::now();
    for i in 0..count {
        let subject = uuid::Uuid::now_v7().hyphenated().to_string();
        let now = countersign::app::now();
        let action = AuditAction::InboundReceived {
            channel: "x".into(),
            external_id: format!("{}", 1_700_000_000_000_000_000u64 + i as u64),
            customer_id: countersign::domain::ids::CustomerId::new(),
            author_handle: format!("@customer{i}"),
            text: TEXT.into(),
            received_at: now.to_rfc3339_opts(chrono::SecondsFormat::Micros, true),
            due_at: now.to_rfc3339_opts(chrono::SecondsFormat::Micros, true),
        };
        let t = Instant::now();
        countersign::db::write_tx(&mut conn, |conn| {
            countersign::db::audit::append(
                conn,
                countersign::app::now().naive_utc(),
                &Actor::System,
                Some(&subject),
                &action,
            )
        })?;
        ms.push(t.elapsed().as_secs_f64() * 1e3);
    }
    let total = t0.elapsed().as_secs_f64();
    let after = countersign::db::audit::head_size(&mut conn)?;
    ms.sort_by(|a, b| a.partial_cmp(b).unwrap());
    println!(
        "log size {before} -> {after}: {count} single-append write transactions in {total:.2} s, \
         {:.0} appends/s; per transaction p50 {:.3} ms, p99 {:.3} ms, max {:.3} ms",
        count as f64 / total,
        pct(&ms, 0.5),
        pct(&ms, 0.99),
        ms[ms.len() - 1]
    );
    Ok(())
}
