//! One durable job queue for every background job (posting a reply, sending a mail).
//!
//! A job is a serialisable value of a type that implements [`Job`]. It is enqueued with
//! [`enqueue`] inside the write transaction of the change that causes it, so there is no
//! change without its job and no job without its change. The worker (`workers`) leases due
//! jobs, calls [`Job::run`] outside any transaction (it may take seconds on the network),
//! and then, in one write transaction, ends or reschedules the job and calls
//! [`Job::record`] to write what the run found, with its audit entries. If the lease ran
//! out meanwhile (the worker was too slow, or it died), that transaction is rolled back and
//! the job runs again under its new lease: a job's effect must therefore be idempotent on
//! its id, which is the same across attempts (a channel recognises a post it already made).
//!
//! Temporary failures are retried with exponential backoff and jitter
//! ([`crate::domain::jobs::jittered_backoff`]) until the job's attempts run out; then, or at
//! once on a permanent failure, the job ends as `failed`.

use super::Context;
use crate::db::jobs::{Finish, NewJob};
use crate::db::{self, DbConn};
use crate::domain::ids::JobId;
use crate::error::{Error, Result};
use chrono::NaiveDateTime;
use serde::de::DeserializeOwned;
use serde::Serialize;

/// A kind of background job. Its value is the job's payload (stored as JSON).
pub trait Job: Serialize + DeserializeOwned + Send + 'static {
    /// Stored in `jobs.kind`; never rename a kind once jobs of it may be stored.
    const KIND: &'static str;

    /// What a successful run hands to [`Job::record`].
    type Output: Send;

    /// Attempts before a job that keeps failing temporarily ends as `failed`.
    fn max_attempts(ctx: &Context) -> i32;

    /// At most one job with this key exists; enqueueing again re-arms a failed or
    /// cancelled one (keeping its id). `None`: every enqueue is a new job.
    fn unique_key(&self) -> Option<String> {
        None
    }

    /// The channel this job posts on, if it does. A worker that cannot post there (see
    /// `channels::Channels::unavailable`) leaves the job to one that can.
    fn channel(&self) -> Option<crate::domain::inbound::Channel> {
        None
    }

    /// Does the work, outside any transaction. Reads may use the database; every write
    /// belongs in [`Job::record`].
    fn run(&self, ctx: &Context, attempt: &Attempt) -> Outcome<Self::Output>;

    /// Locks the rows that [`Job::record`] decides on, before anything else in its
    /// transaction (see `db::write_tx_concurrent`: records run beside other writes).
    fn lock(&self, _conn: &mut DbConn) -> Result<()> {
        Ok(())
    }

    /// Writes what the run found (and its audit entries), in the transaction that also
    /// ends or reschedules the job as `fate` says. It runs beside other writes: whatever
    /// it decides on must be locked by [`Job::lock`].
    fn record(
        &self,
        ctx: &Context,
        conn: &mut DbConn,
        attempt: &Attempt,
        outcome: &Outcome<Self::Output>,
        fate: &Fate,
    ) -> Result<()>;
}

/// One attempt at a job.
#[derive(Debug, Clone)]
pub struct Attempt {
    pub job_id: JobId,
    /// 1 for the first attempt.
    pub number: i32,
    pub max_attempts: i32,
    /// When the job was enqueued.
    pub created_at: NaiveDateTime,
}

impl Attempt {
    /// Whether an earlier attempt may have done the work already (and crashed before
    /// recording it).
    pub fn is_retry(&self) -> bool {
        self.number > 1
    }
}

/// What a run found.
#[derive(Debug)]
pub enum Outcome<T> {
    /// The work is done.
    Done(T),
    /// The work no longer applies (nothing was done; no retry).
    Cancelled(T),
    /// Failed, worth trying again later (network, rate limit, server error).
    Retry(String),
    /// Failed, and would fail the same way again (refused, bad address, bad credentials).
    Failed(String),
    /// Not tried: the far end asked us to wait until then (a rate limit's reset). The
    /// attempt is not counted against the job's attempts.
    Wait(String, NaiveDateTime),
}

impl<T> Outcome<T> {
    pub fn error(&self) -> Option<&str> {
        match self {
            Outcome::Retry(e) | Outcome::Failed(e) | Outcome::Wait(e, _) => Some(e),
            Outcome::Done(_) | Outcome::Cancelled(_) => None,
        }
    }
}

/// What becomes of the job after a run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fate {
    Done,
    Cancelled,
    /// Another attempt at this time.
    RetryAt(NaiveDateTime),
    /// Waiting until this time, the attempt not counted.
    WaitUntil(NaiveDateTime),
    /// No more attempts: the error was permanent or the attempts ran out.
    Failed,
}

impl Fate {
    /// The fate of `attempt` after `outcome`, with `jitter` in [0, 1) for the backoff.
    pub fn of<T>(outcome: &Outcome<T>, attempt: &Attempt, now: NaiveDateTime, jitter: f64) -> Fate {
        match outcome {
            Outcome::Done(_) => Fate::Done,
            Outcome::Cancelled(_) => Fate::Cancelled,
            Outcome::Failed(_) => Fate::Failed,
            // Never sooner than the backoff would have waited: a reset time in the past
            // (clocks differ) must not turn into a busy loop.
            Outcome::Wait(_, until) => Fate::WaitUntil(
                (*until).max(now + crate::domain::jobs::jittered_backoff(1, jitter)),
            ),
            Outcome::Retry(_) if attempt.number >= attempt.max_attempts => Fate::Failed,
            Outcome::Retry(_) => {
                Fate::RetryAt(now + crate::domain::jobs::jittered_backoff(attempt.number, jitter))
            }
        }
    }

    fn finish(&self) -> Finish {
        match self {
            Fate::Done => Finish::Done,
            Fate::Cancelled => Finish::Cancelled,
            Fate::RetryAt(at) => Finish::RetryAt(*at),
            Fate::WaitUntil(at) => Finish::WaitUntil(*at),
            Fate::Failed => Finish::Failed,
        }
    }
}

/// Enqueues `job` to run at `run_at`, inside the caller's write transaction. Returns the
/// job's id (an existing one when [`Job::unique_key`] re-armed it). Call
/// [`Context::wake_workers`] once the transaction has committed.
pub fn enqueue<J: Job>(
    ctx: &Context,
    conn: &mut DbConn,
    job: &J,
    run_at: NaiveDateTime,
) -> Result<JobId> {
    let payload = serde_json::to_string(job)
        .map_err(|e| Error::Internal(format!("{} job payload: {e}", J::KIND)))?;
    let key = job.unique_key();
    let id = db::jobs::insert(
        conn,
        &NewJob {
            id: JobId::new(),
            kind: J::KIND,
            unique_key: key.as_deref(),
            payload: &payload,
            channel: job.channel().map(|c| c.as_str()),
            max_attempts: J::max_attempts(ctx),
            run_at,
        },
        ctx.clock.now().naive_utc(),
    )?;
    Ok(id)
}

/// What a job's run found, waiting to be written: the write of its result and the end
/// (or rescheduling) of the job, for the worker to run in a write transaction.
pub type Recording<'a> = Box<dyn FnOnce(&mut DbConn) -> Result<Fate> + Send + 'a>;

/// A recording that only ends the job as `how` (no run to record), with `reason`.
fn end_only<'a>(
    ctx: &'a Context,
    row: &'a db::jobs::JobRow,
    owner: &'a str,
    how: impl Fn(chrono::NaiveDateTime) -> (Finish, Fate) + Send + 'a,
    reason: Option<String>,
) -> Recording<'a> {
    Box::new(move |conn: &mut DbConn| {
        let t = ctx.clock.now().naive_utc();
        let (finish, fate) = how(t);
        db::jobs::finish(
            conn,
            row.id,
            owner,
            row.attempts,
            &finish,
            reason.as_deref(),
            t,
        )?;
        Ok(fate)
    })
}

/// Gives a leased job back untried (due now, the attempt not counted), for a batch that
/// ran out of time before it could start the job.
pub fn release<'a>(ctx: &'a Context, row: &'a db::jobs::JobRow, owner: &'a str) -> Recording<'a> {
    end_only(
        ctx,
        row,
        owner,
        |t| (Finish::WaitUntil(t), Fate::WaitUntil(t)),
        None,
    )
}

/// Runs one leased job of kind `J` (decode and run, outside any transaction) and returns
/// the write that records its fate. The worker records a batch of runs in one transaction,
/// each in its own savepoint; a recording that fails (a lease lost, say) leaves its job
/// for the lease to run out, and it is tried again.
pub fn run_leased<'a, J: Job>(
    ctx: &'a Context,
    row: &'a db::jobs::JobRow,
    owner: &'a str,
) -> Recording<'a> {
    let attempt = Attempt {
        job_id: row.id,
        number: row.attempts,
        max_attempts: row.max_attempts,
        created_at: row.created_at,
    };
    let job: J = match serde_json::from_str(&row.payload) {
        Ok(job) => job,
        Err(e) => {
            // Not ours to retry: no attempt can read it.
            let reason = format!("the {} job's payload cannot be read: {e}", J::KIND);
            tracing::error!(job_id = %row.id, "{reason}");
            return end_only(
                ctx,
                row,
                owner,
                |_| (Finish::Failed, Fate::Failed),
                Some(reason),
            );
        }
    };
    let outcome = job.run(ctx, &attempt);
    Box::new(move |conn: &mut DbConn| {
        job.lock(conn)?;
        let t = ctx.clock.now().naive_utc();
        let fate = Fate::of(&outcome, &attempt, t, rand::random::<f64>());
        db::jobs::finish(
            conn,
            row.id,
            owner,
            row.attempts,
            &fate.finish(),
            outcome.error(),
            t,
        )?;
        job.record(ctx, conn, &attempt, &outcome, &fate)?;
        Ok(fate)
    })
}
