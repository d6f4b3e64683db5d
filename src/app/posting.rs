//! The posting half of the outbox: claim a due job, and record what the channel said. The
//! worker (`workers::posting`) calls the channel between the two, outside any transaction.

use super::now;
use crate::audit::Actor;
use crate::channels::{ChannelError, OutgoingReply, PostReceipt};
use crate::db::outbox::PostJobRow;
use crate::db::{self, write_tx, DbConn};
use crate::domain::workflow::{DraftEvent, DraftState};
use crate::error::{Error, Result};
use chrono::Duration;
use serde_json::json;

/// How long a claimed job is held before another worker may take it over.
pub const LEASE: Duration = Duration::seconds(60);

/// Wait before the n-th retry: 5 s, 10 s, 20 s … capped at 10 minutes.
pub fn retry_delay(attempts: i32) -> Duration {
    let exp = attempts.clamp(1, 8) - 1;
    Duration::seconds((5i64 << exp).min(600))
}

/// A claimed job with what the channel needs.
pub struct ClaimedJob {
    pub job: PostJobRow,
    pub reply: OutgoingReply,
}

/// Claims the next due job, if any.
pub fn claim(conn: &mut DbConn) -> Result<Option<ClaimedJob>> {
    write_tx(conn, |conn| {
        let t = now().naive_utc();
        let Some(job) = db::outbox::claim_next(conn, t, t + LEASE)? else {
            return Ok(None);
        };
        let draft = db::drafts::by_id(conn, &job.draft_id)?
            .ok_or_else(|| Error::Internal(format!("post job {} names no draft", job.id)))?;
        let inbound = db::inbound::by_id(conn, &draft.inbound_id)?.ok_or_else(|| {
            Error::Internal(format!("draft {} names no inbound message", draft.id))
        })?;
        let reply = OutgoingReply {
            idempotency_key: job.id.clone(),
            draft_id: draft.id,
            in_reply_to: inbound.external_id,
            text: draft.text,
            is_retry: job.attempts > 1,
        };
        Ok(Some(ClaimedJob { job, reply }))
    })
}

/// Records the channel's answer: `post.succeeded` moves the draft to `posted` and the
/// inbound message to `answered`; `post.failed` moves it to `post_failed` and schedules a
/// retry. Both with their audit entry, in one transaction.
pub fn record(
    conn: &mut DbConn,
    claimed: &ClaimedJob,
    channel: &str,
    outcome: &Result<PostReceipt, ChannelError>,
) -> Result<()> {
    write_tx(conn, |conn| {
        let t = now().naive_utc();
        let job = &claimed.job;
        let mut draft = db::drafts::by_id(conn, &job.draft_id)?
            .ok_or_else(|| Error::Internal(format!("post job {} names no draft", job.id)))?;
        let state: DraftState = draft
            .state
            .parse()
            .map_err(|e| Error::Internal(format!("stored draft state: {e}")))?;
        let event = if outcome.is_ok() {
            DraftEvent::PostSucceeded
        } else {
            DraftEvent::PostFailed
        };
        let Some(next) = state.apply(event) else {
            // Someone else recorded this job already (its lease ran out mid-post).
            return Ok(());
        };
        draft.state = next.as_str().into();
        draft.updated_at = t;
        match outcome {
            Ok(receipt) => {
                draft.post_id = Some(receipt.post_id.clone());
                draft.posted_at = Some(t);
                draft.post_error = None;
                db::drafts::update(conn, &draft)?;
                db::outbox::mark_done(conn, &job.id, t)?;
                db::inbound::set_state(conn, &draft.inbound_id, "answered")?;
                db::audit::append(
                    conn,
                    &Actor::System,
                    "post.succeeded",
                    Some(&draft.id),
                    &json!({
                        "channel": channel,
                        "post_id": receipt.post_id,
                        "in_reply_to": claimed.reply.in_reply_to,
                        "revision": draft.revision,
                        "attempt": job.attempts,
                    }),
                )?;
            }
            Err(e) => {
                let retry_at = t + retry_delay(job.attempts);
                draft.post_error = Some(e.to_string());
                db::drafts::update(conn, &draft)?;
                db::outbox::mark_failed(conn, &job.id, &e.to_string(), retry_at, t)?;
                db::audit::append(
                    conn,
                    &Actor::System,
                    "post.failed",
                    Some(&draft.id),
                    &json!({
                        "channel": channel,
                        "error": e.to_string(),
                        "attempt": job.attempts,
                        "retry_at": super::views::rfc3339(retry_at),
                    }),
                )?;
            }
        }
        Ok(())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retries_back_off_and_cap() {
        assert_eq!(retry_delay(1), Duration::seconds(5));
        assert_eq!(retry_delay(2), Duration::seconds(10));
        assert_eq!(retry_delay(30), Duration::seconds(600));
    }
}
