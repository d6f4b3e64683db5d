//! The job worker: one loop that runs every kind of job in the queue (`app::jobs`). It
//! leases due jobs in batches (one write for the batch), runs them one after the other on
//! a blocking thread, records the batch's results in one write transaction (each in its
//! own savepoint), and sleeps until it is woken (a job was enqueued in this process) or its
//! next poll (jobs from other instances, retries). Looking for work writes nothing, so an
//! idle worker costs one read per poll.

use crate::app::jobs::{release, run_leased, Job, Recording};
use crate::app::mail::{CheckpointMail, SendMail};
use crate::app::posting::PostReply;
use crate::app::Context;
use crate::db::jobs::JobRow;
use chrono::Duration;
use std::sync::Arc;
use tokio::sync::Notify;

/// How often the worker looks for jobs it was not woken for.
pub const POLL_INTERVAL: std::time::Duration = std::time::Duration::from_secs(1);

/// How long a leased job is held before another worker may take it over. Longer than any
/// one run may take (the channels' and SMTP's timeouts are shorter).
pub const LEASE: Duration = Duration::seconds(120);

/// At most this many jobs are leased, run and recorded together.
pub const BATCH: i64 = 64;

/// A job of a batch is started only this soon after the batch was leased, so that the
/// batch is recorded well inside [`LEASE`] (a run is bounded by the channels' and SMTP's
/// timeouts, 30 s at most); later ones are given back untried.
const START_WITHIN: std::time::Duration = std::time::Duration::from_secs(40);

/// A batch's jobs run on this many threads at once: posting is mostly waiting (a network's
/// answer, the post log's fsync), and several instances may post at once anyway, so the
/// channels are safe to call side by side.
const RUNNERS: usize = 4;

type RunFn = for<'a> fn(&'a Context, &'a JobRow, &'a str) -> Recording<'a>;

/// Every kind of job, and how to run it. A new kind of job is one line here.
const KINDS: &[(&str, RunFn)] = &[
    (PostReply::KIND, run_leased::<PostReply>),
    (SendMail::KIND, run_leased::<SendMail>),
    (CheckpointMail::KIND, run_leased::<CheckpointMail>),
];

fn kinds() -> Vec<&'static str> {
    KINDS.iter().map(|(k, _)| *k).collect()
}

/// A worker's name on the leases it takes: unique per process and worker.
pub fn worker_id() -> String {
    format!("{}-{}", std::process::id(), uuid::Uuid::now_v7().simple())
}

/// Runs every job that is due now, one after the other, and returns how many it ran (each
/// to a fate, or to an error that leaves it for its lease to expire). Tests call this
/// directly instead of waiting for the background loop.
pub fn run_pending_jobs(ctx: &Context) -> usize {
    run_due(ctx, &worker_id())
}

fn run_due(ctx: &Context, owner: &str) -> usize {
    let kinds = kinds();
    let skip = ctx.channels.unavailable();
    let mut ran = 0;
    loop {
        let t = ctx.clock.now().naive_utc();
        let leased = ctx.db.conn().and_then(|mut c| {
            crate::db::jobs::claim_batch(&mut c, &kinds, &skip, owner, t, t + LEASE, BATCH)
        });
        let rows = match leased {
            Ok(rows) if rows.is_empty() => return ran,
            Ok(rows) => rows,
            Err(e) => {
                tracing::warn!(error = %e, "job worker: cannot look for jobs");
                return ran;
            }
        };
        let runs = run_side_by_side(ctx, &rows, owner);
        ran += runs.len();
        let recorded = ctx.db.conn().and_then(|mut c| {
            crate::db::write_tx_concurrent(&mut c, |conn| {
                for (row, record) in runs {
                    // A savepoint each: one job's failure to record leaves the others'.
                    match crate::db::write_tx_concurrent(conn, record) {
                        Ok(fate) => {
                            tracing::debug!(job_id = %row.id, kind = %row.kind, ?fate, "job ran")
                        }
                        // The lease runs out and the job is tried again.
                        Err(e) => tracing::error!(
                            job_id = %row.id, kind = %row.kind, error = %e,
                            "job worker: cannot record the job's result"
                        ),
                    }
                }
                Ok(())
            })
        });
        if let Err(e) = recorded {
            tracing::error!(error = %e, "job worker: cannot record a batch of results");
        }
    }
}

/// Runs each leased job (on up to [`RUNNERS`] threads) and returns what each run found, to
/// be recorded. A runner that panics loses its jobs' results: their leases run out and they
/// are tried again.
fn run_side_by_side<'a>(
    ctx: &'a Context,
    rows: &'a [JobRow],
    owner: &'a str,
) -> Vec<(&'a JobRow, Recording<'a>)> {
    let leased_at = std::time::Instant::now();
    let run_all = |chunk: &'a [JobRow]| -> Vec<(&'a JobRow, Recording<'a>)> {
        chunk
            .iter()
            .filter_map(|row| {
                // claim_batch only leases the kinds above.
                let (_, run) = KINDS.iter().find(|(k, _)| *k == row.kind)?;
                // The batch is recorded under leases taken at once: a job started late
                // (slow networks before it) could outlive its lease, so it is given back.
                if leased_at.elapsed() > START_WITHIN {
                    return Some((row, release(ctx, row, owner)));
                }
                Some((row, run(ctx, row, owner)))
            })
            .collect()
    };
    if rows.len() < 2 {
        return run_all(rows);
    }
    let per_runner = rows.len().div_ceil(RUNNERS);
    std::thread::scope(|s| {
        let runners: Vec<_> = rows
            .chunks(per_runner)
            .map(|chunk| s.spawn(move || run_all(chunk)))
            .collect();
        runners
            .into_iter()
            .flat_map(|r| {
                r.join().unwrap_or_else(|_| {
                    tracing::error!("job worker: a runner panicked; its jobs are tried again");
                    Vec::new()
                })
            })
            .collect()
    })
}

/// Runs until `stop` is notified, finishing the job in hand.
pub async fn run(ctx: Context, stop: Arc<Notify>) {
    let owner = worker_id();
    loop {
        let (c, o) = (ctx.clone(), owner.clone());
        if let Err(e) = tokio::task::spawn_blocking(move || run_due(&c, &o)).await {
            tracing::error!(error = %e, "job worker task failed");
        }
        tokio::select! {
            _ = stop.notified() => return,
            _ = ctx.jobs_wakeup.notified() => {}
            _ = tokio::time::sleep(POLL_INTERVAL) => {}
        }
    }
}
