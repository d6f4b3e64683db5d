//! The posting half of the outbox: claim a due job, and record what the channel said. The
//! worker (`workers::posting`) calls the channel between the two, outside any transaction.

use super::now;
use crate::audit::{text_sha256, ActionName, Actor, AuditAction, EntryBody};
use crate::channels::{ChannelError, OutgoingReply, PostReceipt};
use crate::db::outbox::PostJobRow;
use crate::db::{self, write_tx, DbConn};
use crate::domain::workflow::{DraftEvent, DraftState};
use crate::error::{Error, Result};
use chrono::Duration;

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
    /// `text_sha256` of `reply.text`: the hash every counted approval carries.
    pub text_sha256: String,
}

/// What claiming found.
pub enum Claim {
    /// A job to post.
    Post(Box<ClaimedJob>),
    /// A job whose text was not the approved one: `post.refused` is recorded, the draft is
    /// back in review, nothing is to be posted.
    Refused { draft_id: String, reason: String },
}

/// Claims the next due job, if any. Before anything is handed to a channel, the text in the
/// draft must be the text that was submitted and approved, as the log records it (spec/
/// audit.md "Subjects and the text hash"); otherwise the job ends as refused.
pub fn claim(conn: &mut DbConn) -> Result<Option<Claim>> {
    write_tx(conn, |conn| {
        let t = now().naive_utc();
        let Some(job) = db::outbox::claim_next(conn, t, t + LEASE)? else {
            return Ok(None);
        };
        let mut draft = db::drafts::by_id(conn, &job.draft_id)?
            .ok_or_else(|| Error::Internal(format!("post job {} names no draft", job.id)))?;
        let inbound = db::inbound::by_id(conn, &draft.inbound_id)?.ok_or_else(|| {
            Error::Internal(format!("draft {} names no inbound message", draft.id))
        })?;
        let hash = text_sha256(&draft.text);
        let entries = db::audit::about(conn, &draft.id)?;
        if let Err(refusal) = approved_text(&entries, draft.revision, &hash) {
            let state: DraftState = draft
                .state
                .parse()
                .map_err(|e| Error::Internal(format!("stored draft state: {e}")))?;
            let next = state
                .apply(DraftEvent::PostRefused)
                .ok_or_else(|| Error::Internal(format!("a claimed draft is in state {state}")))?;
            draft.state = next.as_str().into();
            draft.updated_at = t;
            draft.post_error = Some(refusal.reason.clone());
            db::drafts::update(conn, &draft)?;
            db::drafts::void_approvals(conn, &draft.id, draft.revision, t)?;
            db::outbox::mark_refused(conn, &job.id, &refusal.reason, t)?;
            db::audit::append(
                conn,
                t,
                &Actor::System,
                Some(&draft.id),
                &AuditAction::PostRefused {
                    revision: draft.revision,
                    text_sha256: hash,
                    approved_text_sha256: refusal.approved,
                    reason: refusal.reason.clone(),
                },
            )?;
            return Ok(Some(Claim::Refused {
                draft_id: draft.id,
                reason: refusal.reason,
            }));
        }
        let reply = OutgoingReply {
            idempotency_key: job.id.clone(),
            draft_id: draft.id,
            in_reply_to: inbound.external_id,
            text: draft.text,
            is_retry: job.attempts > 1,
        };
        Ok(Some(Claim::Post(Box::new(ClaimedJob {
            job,
            reply,
            text_sha256: hash,
        }))))
    })
}

/// Why a text may not be posted, and the hash that was approved (if any was).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    pub reason: String,
    pub approved: Option<String>,
}

/// Checks, from the draft's own entries, that `hash` is the hash of the text submitted last
/// and of every approval of `revision` counted since (those after the last submission or
/// refusal), and that enough were counted.
pub fn approved_text(
    entries: &[EntryBody],
    revision: i32,
    hash: &str,
) -> std::result::Result<(), Refusal> {
    let text_hash = |e: &EntryBody| {
        e.data
            .get("text_sha256")
            .and_then(|h| h.as_str())
            .map(str::to_string)
    };
    let is = |e: &EntryBody, a: ActionName| e.action == a.as_str();
    let start = entries
        .iter()
        .rposition(|e| is(e, ActionName::DraftSubmitted))
        .ok_or_else(|| Refusal {
            reason: "the log holds no submission of this draft".into(),
            approved: None,
        })?;
    let submitted = text_hash(&entries[start]);
    if submitted.as_deref() != Some(hash) {
        return Err(Refusal {
            reason: "the draft's text is not the text that was submitted".into(),
            approved: submitted,
        });
    }
    let since = entries
        .iter()
        .rposition(|e| is(e, ActionName::PostRefused))
        .filter(|&r| r > start)
        .unwrap_or(start);
    let approvals: Vec<&EntryBody> = entries[since..]
        .iter()
        .filter(|e| is(e, ActionName::ReviewApproved))
        .filter(|e| e.data.get("revision").and_then(|r| r.as_i64()) == Some(revision.into()))
        .collect();
    let Some(last) = approvals.last() else {
        return Err(Refusal {
            reason: "the log holds no approval of this revision".into(),
            approved: submitted,
        });
    };
    if let Some(other) = approvals
        .iter()
        .find(|a| text_hash(a).as_deref() != Some(hash))
    {
        return Err(Refusal {
            reason: format!(
                "the approval at seq {} is of another text than the one to be posted",
                other.seq
            ),
            approved: text_hash(other),
        });
    }
    // Four eyes again, from the log alone (the tables behind it may have been edited):
    // distinct approvers, none of whom wrote or revised the draft.
    let writers: std::collections::HashSet<&str> = entries
        .iter()
        .filter(|e| is(e, ActionName::DraftCreated) || is(e, ActionName::DraftRevised))
        .map(|e| e.actor.as_str())
        .collect();
    if let Some(a) = approvals
        .iter()
        .find(|a| writers.contains(a.actor.as_str()))
    {
        return Err(Refusal {
            reason: format!(
                "four eyes: the approval at seq {} is by a writer of the draft",
                a.seq
            ),
            approved: submitted,
        });
    }
    let approvers: std::collections::HashSet<&str> =
        approvals.iter().map(|a| a.actor.as_str()).collect();
    let needed = last
        .data
        .get("approvals_needed")
        .and_then(|n| n.as_i64())
        .unwrap_or(i64::MAX);
    if (approvers.len() as i64) < needed {
        return Err(Refusal {
            reason: format!(
                "the log holds approvals of this text by {} reviewers; {needed} are needed",
                approvers.len()
            ),
            approved: submitted,
        });
    }
    Ok(())
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
                    t,
                    &Actor::System,
                    Some(&draft.id),
                    &AuditAction::PostSucceeded {
                        channel: channel.to_string(),
                        post_id: receipt.post_id.clone(),
                        in_reply_to: claimed.reply.in_reply_to.clone(),
                        revision: draft.revision,
                        text_sha256: claimed.text_sha256.clone(),
                        attempt: job.attempts,
                    },
                )?;
            }
            Err(e) => {
                let retry_at = t + retry_delay(job.attempts);
                draft.post_error = Some(e.to_string());
                db::drafts::update(conn, &draft)?;
                db::outbox::mark_failed(conn, &job.id, &e.to_string(), retry_at, t)?;
                db::audit::append(
                    conn,
                    t,
                    &Actor::System,
                    Some(&draft.id),
                    &AuditAction::PostFailed {
                        channel: channel.to_string(),
                        error: e.to_string(),
                        attempt: job.attempts,
                        retry_at: super::views::rfc3339(retry_at),
                    },
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

    fn entry(seq: i64, actor: &str, action: &str, data: serde_json::Value) -> EntryBody {
        EntryBody {
            seq,
            at: String::new(),
            actor: actor.into(),
            action: action.into(),
            subject: Some("d".into()),
            data,
        }
    }

    /// A draft by ana, submitted, approved by `approvers` (two needed when there are two).
    fn log(approvers: &[&str], hash: &str) -> Vec<EntryBody> {
        let needed = approvers.len().max(1) as i64;
        let mut out = vec![
            entry(
                1,
                "ana",
                "draft.created",
                serde_json::json!({"revision": 1, "text_sha256": "h"}),
            ),
            entry(
                2,
                "ana",
                "draft.submitted",
                serde_json::json!({"revision": 1, "text_sha256": "h"}),
            ),
        ];
        for (i, a) in approvers.iter().enumerate() {
            out.push(entry(
                3 + i as i64,
                a,
                "review.approved",
                serde_json::json!({"revision": 1, "text_sha256": hash, "approvals": i + 1, "approvals_needed": needed}),
            ));
        }
        out
    }

    #[test]
    fn only_the_submitted_and_approved_text_may_be_posted() {
        assert_eq!(approved_text(&log(&["rui"], "h"), 1, "h"), Ok(()));
        assert_eq!(approved_text(&log(&["rui", "eva"], "h"), 1, "h"), Ok(()));
        let refused =
            |entries: &[EntryBody], hash: &str| approved_text(entries, 1, hash).unwrap_err().reason;
        assert!(refused(&log(&["rui"], "h"), "x").contains("not the text that was submitted"));
        assert!(refused(&log(&["rui"], "x"), "h").contains("another text"));
        assert!(refused(&log(&[], "h"), "h").contains("no approval"));
        assert!(refused(&log(&["ana"], "h"), "h").contains("four eyes"));
        assert!(refused(&log(&["rui", "rui"], "h"), "h").contains("2 are needed"));
        assert!(refused(&log(&["rui"], "h")[..1], "h").contains("no submission"));
        // An approval before a refusal no longer counts.
        let mut l = log(&["rui"], "h");
        l.push(entry(
            9,
            "system",
            "post.refused",
            serde_json::json!({"revision": 1}),
        ));
        assert!(refused(&l, "h").contains("no approval"));
    }
}
