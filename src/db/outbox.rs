//! The posting outbox: a job is written in the transaction that approves a draft; the
//! posting worker claims due jobs with a lease, so a job whose worker died is claimed again
//! once its lease runs out, and a job is never held by two workers at once.

use super::schema::post_jobs;
use super::DbConn;
use crate::error::Result;
use chrono::NaiveDateTime;
use diesel::prelude::*;

#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = post_jobs)]
pub struct PostJobRow {
    pub id: String,
    pub draft_id: String,
    pub channel: String,
    pub state: String,
    pub attempts: i32,
    pub next_attempt_at: NaiveDateTime,
    pub locked_until: Option<NaiveDateTime>,
    pub last_error: Option<String>,
    pub created_at: NaiveDateTime,
    pub updated_at: NaiveDateTime,
}

pub const PENDING: &str = "pending";
pub const DONE: &str = "done";
/// The text found at posting time was not the text approved; nothing was posted. A new
/// approval arms the job again.
pub const REFUSED: &str = "refused";

/// Enqueues the draft's post job, or arms its refused one again (one job per draft).
pub fn enqueue(
    conn: &mut DbConn,
    id: &str,
    draft_id: &str,
    channel: &str,
    now: NaiveDateTime,
) -> Result<()> {
    let rearmed = diesel::update(
        post_jobs::table
            .filter(post_jobs::draft_id.eq(draft_id))
            .filter(post_jobs::state.eq(REFUSED)),
    )
    .set((
        post_jobs::state.eq(PENDING),
        post_jobs::next_attempt_at.eq(now),
        post_jobs::locked_until.eq(None::<NaiveDateTime>),
        post_jobs::updated_at.eq(now),
    ))
    .execute(conn)?;
    if rearmed > 0 {
        return Ok(());
    }
    diesel::insert_into(post_jobs::table)
        .values((
            post_jobs::id.eq(id),
            post_jobs::draft_id.eq(draft_id),
            post_jobs::channel.eq(channel),
            post_jobs::state.eq(PENDING),
            post_jobs::attempts.eq(0),
            post_jobs::next_attempt_at.eq(now),
            post_jobs::created_at.eq(now),
            post_jobs::updated_at.eq(now),
        ))
        .execute(conn)?;
    Ok(())
}

/// Claims the oldest due job not leased by another worker, leasing it until `lease_until`
/// and counting the attempt. Run inside a write transaction.
pub fn claim_next(
    conn: &mut DbConn,
    now: NaiveDateTime,
    lease_until: NaiveDateTime,
) -> Result<Option<PostJobRow>> {
    let job: Option<PostJobRow> = post_jobs::table
        .select(PostJobRow::as_select())
        .filter(post_jobs::state.eq(PENDING))
        .filter(post_jobs::next_attempt_at.le(now))
        .filter(
            post_jobs::locked_until
                .is_null()
                .or(post_jobs::locked_until.le(now)),
        )
        .order((post_jobs::next_attempt_at.asc(), post_jobs::id.asc()))
        .first(conn)
        .optional()?;
    let Some(mut job) = job else { return Ok(None) };
    job.attempts += 1;
    job.locked_until = Some(lease_until);
    diesel::update(post_jobs::table.filter(post_jobs::id.eq(&job.id)))
        .set((
            post_jobs::attempts.eq(job.attempts),
            post_jobs::locked_until.eq(job.locked_until),
            post_jobs::updated_at.eq(now),
        ))
        .execute(conn)?;
    Ok(Some(job))
}

pub fn by_id(conn: &mut DbConn, id: &str) -> Result<Option<PostJobRow>> {
    Ok(post_jobs::table
        .select(PostJobRow::as_select())
        .filter(post_jobs::id.eq(id))
        .first(conn)
        .optional()?)
}

pub fn for_draft(conn: &mut DbConn, draft_id: &str) -> Result<Option<PostJobRow>> {
    Ok(post_jobs::table
        .select(PostJobRow::as_select())
        .filter(post_jobs::draft_id.eq(draft_id))
        .first(conn)
        .optional()?)
}

pub fn mark_done(conn: &mut DbConn, id: &str, now: NaiveDateTime) -> Result<()> {
    finish(conn, id, DONE, None, now)
}

/// Ends the job without posting: the text is not the one approved.
pub fn mark_refused(conn: &mut DbConn, id: &str, reason: &str, now: NaiveDateTime) -> Result<()> {
    finish(conn, id, REFUSED, Some(reason), now)
}

fn finish(
    conn: &mut DbConn,
    id: &str,
    state: &str,
    error: Option<&str>,
    now: NaiveDateTime,
) -> Result<()> {
    diesel::update(post_jobs::table.filter(post_jobs::id.eq(id)))
        .set((
            post_jobs::state.eq(state),
            post_jobs::locked_until.eq(None::<NaiveDateTime>),
            post_jobs::last_error.eq(error),
            post_jobs::updated_at.eq(now),
        ))
        .execute(conn)?;
    Ok(())
}

/// Releases the job for a later attempt at `retry_at`.
pub fn mark_failed(
    conn: &mut DbConn,
    id: &str,
    error: &str,
    retry_at: NaiveDateTime,
    now: NaiveDateTime,
) -> Result<()> {
    diesel::update(post_jobs::table.filter(post_jobs::id.eq(id)))
        .set((
            post_jobs::next_attempt_at.eq(retry_at),
            post_jobs::locked_until.eq(None::<NaiveDateTime>),
            post_jobs::last_error.eq(Some(error)),
            post_jobs::updated_at.eq(now),
        ))
        .execute(conn)?;
    Ok(())
}

/// How many jobs wait to be posted (for metrics and tests).
pub fn pending_count(conn: &mut DbConn) -> Result<i64> {
    Ok(post_jobs::table
        .filter(post_jobs::state.eq(PENDING))
        .count()
        .get_result(conn)?)
}
