//! The job queue's table (`jobs`). A job is inserted in the transaction of the change that
//! causes it; a worker leases a due job with one conditional `UPDATE` (so two workers never
//! hold one job, and a worker that died loses its job when the lease expires); the result is
//! written with [`finish`], which succeeds only while the lease is still the caller's.
//!
//! Looking for work writes nothing: [`claim_batch`] reads first and updates only jobs it
//! found, so an idle worker costs one indexed read per poll and no commit or fsync.

use super::schema::jobs;
use super::{fixed_update, on_backend, DbConn};
use crate::domain::ids::JobId;
use crate::domain::jobs::JobState;
use crate::error::{Error, Result};
use chrono::NaiveDateTime;
use diesel::prelude::*;

/// A job as stored, with its columns read into the domain's types.
#[derive(Debug, Clone)]
pub struct JobRow {
    pub id: JobId,
    pub kind: String,
    pub unique_key: Option<String>,
    /// The job's own JSON.
    pub payload: String,
    pub state: JobState,
    /// Attempts started so far, this one included once leased.
    pub attempts: i32,
    pub max_attempts: i32,
    pub next_attempt_at: NaiveDateTime,
    pub lease_owner: Option<String>,
    pub lease_expires_at: Option<NaiveDateTime>,
    pub last_error: Option<String>,
    pub created_at: NaiveDateTime,
    pub updated_at: NaiveDateTime,
    /// The channel a post job posts on (`None` for other kinds).
    pub channel: Option<String>,
}

#[derive(Queryable, Selectable)]
#[diesel(table_name = jobs)]
struct Stored {
    id: String,
    kind: String,
    unique_key: Option<String>,
    payload: String,
    state: String,
    attempts: i32,
    max_attempts: i32,
    next_attempt_at: NaiveDateTime,
    lease_owner: Option<String>,
    lease_expires_at: Option<NaiveDateTime>,
    last_error: Option<String>,
    created_at: NaiveDateTime,
    updated_at: NaiveDateTime,
    channel: Option<String>,
}

impl TryFrom<Stored> for JobRow {
    type Error = Error;
    fn try_from(s: Stored) -> Result<JobRow> {
        Ok(JobRow {
            id: s
                .id
                .parse()
                .map_err(|e| Error::Internal(format!("stored job id: {e}")))?,
            state: s.state.parse().map_err(|_| {
                Error::Internal(format!("job {}: stored state {:?}", s.id, s.state))
            })?,
            kind: s.kind,
            unique_key: s.unique_key,
            payload: s.payload,
            attempts: s.attempts,
            max_attempts: s.max_attempts,
            next_attempt_at: s.next_attempt_at,
            lease_owner: s.lease_owner,
            lease_expires_at: s.lease_expires_at,
            last_error: s.last_error,
            created_at: s.created_at,
            updated_at: s.updated_at,
            channel: s.channel,
        })
    }
}

/// A job to insert.
pub struct NewJob<'a> {
    pub id: JobId,
    pub kind: &'a str,
    pub unique_key: Option<&'a str>,
    pub payload: &'a str,
    /// The channel the job posts on, if it does: a worker that cannot post there leaves it.
    pub channel: Option<&'a str>,
    pub max_attempts: i32,
    pub run_at: NaiveDateTime,
}

/// Inserts a pending job. With a `unique_key` whose job already exists, that job is armed
/// again instead (pending, due at `run_at`, `max_attempts` more attempts) unless it is
/// still pending or done, and its id is returned; the id of a re-armed job stays, so a
/// channel still recognises what an earlier attempt may have posted.
pub fn insert(conn: &mut DbConn, job: &NewJob<'_>, now: NaiveDateTime) -> Result<JobId> {
    if let Some(key) = job.unique_key {
        let existing: Option<Stored> = on_backend!(conn, c => jobs::table
            .select(Stored::as_select())
            .filter(jobs::unique_key.eq(key))
            .get_result(c)
            .optional())?;
        if let Some(existing) = existing {
            let existing = JobRow::try_from(existing)?;
            if matches!(existing.state, JobState::Failed | JobState::Cancelled) {
                diesel::update(jobs::table.filter(jobs::id.eq(existing.id.to_string())))
                    .set((
                        jobs::state.eq(JobState::Pending.as_str()),
                        jobs::payload.eq(job.payload),
                        jobs::channel.eq(job.channel),
                        jobs::max_attempts.eq(existing.attempts + job.max_attempts),
                        jobs::next_attempt_at.eq(job.run_at),
                        jobs::lease_owner.eq(None::<String>),
                        jobs::lease_expires_at.eq(None::<NaiveDateTime>),
                        jobs::updated_at.eq(now),
                    ))
                    .execute(conn)?;
            }
            return Ok(existing.id);
        }
    }
    let id = job.id.to_string();
    on_backend!(conn, c => diesel::insert_into(jobs::table)
        .values((
            jobs::id.eq(&id),
            jobs::kind.eq(job.kind),
            jobs::unique_key.eq(job.unique_key),
            jobs::payload.eq(job.payload),
            jobs::channel.eq(job.channel),
            jobs::state.eq(JobState::Pending.as_str()),
            jobs::attempts.eq(0),
            jobs::max_attempts.eq(job.max_attempts.max(1)),
            jobs::next_attempt_at.eq(job.run_at),
            jobs::created_at.eq(now),
            jobs::updated_at.eq(now),
        ))
        .execute(c))?;
    Ok(job.id)
}

/// Leases the oldest due job of one of `kinds` that no live lease holds and that does not
/// post on one of `skip_channels`; see [`claim_batch`]. `None` when there is none.
pub fn claim_next(
    conn: &mut DbConn,
    kinds: &[&str],
    skip_channels: &[&str],
    owner: &str,
    now: NaiveDateTime,
    lease_until: NaiveDateTime,
) -> Result<Option<JobRow>> {
    Ok(
        claim_batch(conn, kinds, skip_channels, owner, now, lease_until, 1)?
            .into_iter()
            .next(),
    )
}

/// Leases up to `max` due jobs of `kinds` (oldest due first) that no live lease holds and
/// that do not post on one of `skip_channels`, until `lease_until`, counting an attempt of
/// each; empty when there is none, having written nothing: the look is a read on `conn`,
/// and only jobs it found are leased, in one write transaction. Safe against other workers
/// and instances: each lease is one conditional update, and a job another worker took in
/// between is skipped.
pub fn claim_batch(
    conn: &mut DbConn,
    kinds: &[&str],
    skip_channels: &[&str],
    owner: &str,
    now: NaiveDateTime,
    lease_until: NaiveDateTime,
    max: i64,
) -> Result<Vec<JobRow>> {
    let due = || {
        jobs::state
            .eq(JobState::Pending.as_str())
            .and(jobs::next_attempt_at.le(now))
            .and(
                jobs::lease_expires_at
                    .is_null()
                    .or(jobs::lease_expires_at.le(now)),
            )
    };
    loop {
        let mut query = jobs::table
            .select(jobs::id)
            .filter(due())
            .filter(jobs::kind.eq_any(kinds))
            .into_boxed();
        if !skip_channels.is_empty() {
            query = query.filter(
                jobs::channel
                    .is_null()
                    .or(jobs::channel.ne_all(skip_channels)),
            );
        }
        let candidates: Vec<String> = query
            .order((jobs::next_attempt_at.asc(), jobs::id.asc()))
            .limit(max.max(1))
            .load(conn)?;
        if candidates.is_empty() {
            return Ok(Vec::new());
        }
        // A lease decides on the job row alone, which its conditional update locks.
        let leased = super::write_tx_concurrent(conn, |conn| {
            let mut leased = Vec::with_capacity(candidates.len());
            for id in &candidates {
                // Two statements that stay prepared rather than one `UPDATE … RETURNING`
                // that Diesel prepares again on every call.
                let changed = on_backend!(conn, c => fixed_update(
                    jobs::table,
                    jobs::id.eq(id).and(due()),
                    (
                        jobs::attempts.eq(jobs::attempts + 1),
                        jobs::lease_owner.eq(owner),
                        jobs::lease_expires_at.eq(lease_until),
                        jobs::updated_at.eq(now),
                    ),
                )
                .execute(c))?;
                if changed == 1 {
                    let row: Stored = on_backend!(conn, c => jobs::table
                        .select(Stored::as_select())
                        .filter(jobs::id.eq(id))
                        .get_result(c))?;
                    leased.push(JobRow::try_from(row)?);
                }
            }
            Ok(leased)
        })?;
        if !leased.is_empty() {
            return Ok(leased);
        }
        // Every candidate was taken by another worker meanwhile: look again.
    }
}

/// How a run ends its job.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Finish {
    Done,
    /// Pending again, due at this time.
    RetryAt(NaiveDateTime),
    /// Pending again, due at this time, and the attempt not counted (it was not tried).
    WaitUntil(NaiveDateTime),
    Failed,
    Cancelled,
}

/// Ends or reschedules the job `id` that the caller leased for attempt `attempt`, with the
/// attempt's error. Run in the transaction that records the job's result.
///
/// Errors: [`Error::Conflict`] when the lease is no longer the caller's (it expired and
/// another worker took the job): the caller must roll back what it recorded.
pub fn finish(
    conn: &mut DbConn,
    id: JobId,
    owner: &str,
    attempt: i32,
    how: &Finish,
    error: Option<&str>,
    now: NaiveDateTime,
) -> Result<()> {
    let uncount = matches!(how, Finish::WaitUntil(_));
    let (state, next) = match how {
        Finish::Done => (JobState::Done, None),
        Finish::RetryAt(at) | Finish::WaitUntil(at) => (JobState::Pending, Some(*at)),
        Finish::Failed => (JobState::Failed, None),
        Finish::Cancelled => (JobState::Cancelled, None),
    };
    let job_id = id.to_string();
    let target = jobs::id
        .eq(&job_id)
        .and(jobs::lease_owner.eq(owner))
        .and(jobs::attempts.eq(attempt))
        .and(jobs::state.eq(JobState::Pending.as_str()));
    let changed = match next {
        Some(at) => on_backend!(conn, c => fixed_update(
            jobs::table,
            target,
            (
                jobs::next_attempt_at.eq(at),
                jobs::attempts.eq(if uncount { attempt - 1 } else { attempt }),
                jobs::lease_owner.eq(None::<String>),
                jobs::lease_expires_at.eq(None::<NaiveDateTime>),
                jobs::last_error.eq(error),
                jobs::updated_at.eq(now),
            ),
        )
        .execute(c))?,
        None => on_backend!(conn, c => fixed_update(
            jobs::table,
            target,
            (
                jobs::state.eq(state.as_str()),
                jobs::lease_owner.eq(None::<String>),
                jobs::lease_expires_at.eq(None::<NaiveDateTime>),
                jobs::last_error.eq(error),
                jobs::updated_at.eq(now),
            ),
        )
        .execute(c))?,
    };
    if changed == 0 {
        return Err(Error::Conflict(format!(
            "job {id}: the lease of attempt {attempt} is no longer held"
        )));
    }
    Ok(())
}

pub fn by_id(conn: &mut DbConn, id: JobId) -> Result<Option<JobRow>> {
    on_backend!(conn, c => jobs::table
        .select(Stored::as_select())
        .filter(jobs::id.eq(id.to_string()))
        .get_result(c)
        .optional())?
    .map(JobRow::try_from)
    .transpose()
}

pub fn by_unique_key(conn: &mut DbConn, key: &str) -> Result<Option<JobRow>> {
    on_backend!(conn, c => jobs::table
        .select(Stored::as_select())
        .filter(jobs::unique_key.eq(key))
        .get_result(c)
        .optional())?
    .map(JobRow::try_from)
    .transpose()
}

/// Jobs of `kind`, oldest first (for tests and the operator).
pub fn of_kind(conn: &mut DbConn, kind: &str) -> Result<Vec<JobRow>> {
    jobs::table
        .select(Stored::as_select())
        .filter(jobs::kind.eq(kind))
        .order(jobs::id.asc())
        .load(conn)?
        .into_iter()
        .map(JobRow::try_from)
        .collect()
}

/// How many jobs wait, by kind (for metrics and tests).
pub fn pending_count(conn: &mut DbConn, kind: &str) -> Result<i64> {
    Ok(jobs::table
        .filter(jobs::state.eq(JobState::Pending.as_str()))
        .filter(jobs::kind.eq(kind))
        .count()
        .get_result(conn)?)
}

/// The jobs of `kind` on these channels that an attempt has started on and that are not
/// done: pending (leased now, or leased before), and failed or cancelled ones, which a
/// retry or a new approval re-arms with the same id. Each may already have acted.
pub fn started(conn: &mut DbConn, kind: &str, channels: &[&str]) -> Result<Vec<JobRow>> {
    jobs::table
        .select(Stored::as_select())
        .filter(jobs::kind.eq(kind))
        .filter(jobs::state.ne(JobState::Done.as_str()))
        .filter(jobs::attempts.gt(0))
        .filter(jobs::channel.eq_any(channels))
        .order(jobs::id.asc())
        .load(conn)?
        .into_iter()
        .map(JobRow::try_from)
        .collect()
}

/// Replaces a job's payload (to drop a secret it no longer needs).
pub fn set_payload(conn: &mut DbConn, id: JobId, payload: &str) -> Result<()> {
    diesel::update(jobs::table.filter(jobs::id.eq(id.to_string())))
        .set(jobs::payload.eq(payload))
        .execute(conn)?;
    Ok(())
}

/// The newest job of `kind`.
pub fn latest_of_kind(conn: &mut DbConn, kind: &str) -> Result<Option<JobRow>> {
    jobs::table
        .select(Stored::as_select())
        .filter(jobs::kind.eq(kind))
        .order((jobs::created_at.desc(), jobs::id.desc()))
        .limit(1)
        .load(conn)?
        .into_iter()
        .next()
        .map(JobRow::try_from)
        .transpose()
}

/// Cancels the pending job `id` unless a worker holds a live lease on it at `now`; returns
/// whether it did (a job being run is left to its run).
pub fn cancel_unless_leased(conn: &mut DbConn, id: JobId, now: NaiveDateTime) -> Result<bool> {
    let changed = diesel::update(
        jobs::table
            .filter(jobs::id.eq(id.to_string()))
            .filter(jobs::state.eq(JobState::Pending.as_str()))
            .filter(
                jobs::lease_expires_at
                    .is_null()
                    .or(jobs::lease_expires_at.le(now)),
            ),
    )
    .set((
        jobs::state.eq(JobState::Cancelled.as_str()),
        jobs::lease_owner.eq(None::<String>),
        jobs::lease_expires_at.eq(None::<NaiveDateTime>),
        jobs::updated_at.eq(now),
    ))
    .execute(conn)?;
    Ok(changed == 1)
}
