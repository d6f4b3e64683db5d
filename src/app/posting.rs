//! Posting an approved reply, as a job of the job queue ([`PostReply`]): exactly once, and
//! only the text that was approved.
//!
//! Before each attempt the run reads the draft and its own audit entries: the text must be
//! the one submitted and approved as the log holds it (spec/audit.md "Subjects and the text
//! hash"), and the checks are run again against the policies in force (spec/api.md "Drafts
//! and reviews"). Only then is the channel called, outside any transaction; the channel is
//! idempotent on the job's id, so a retry after a crash finds the post already made.
//! What the run found is recorded with the job's fate in one transaction:
//!
//! | run found | job | draft | entry |
//! | --- | --- | --- | --- |
//! | posted | done | `posted`, message `answered` | `post.succeeded` |
//! | a temporary failure | retried later | stays `approved` | `post.failed` with `retry_at` |
//! | a permanent failure, or the attempts ran out | failed | `post_failed` | `post.failed`, `retry_at` null |
//! | not the approved text | cancelled | `pending_review`, approvals void | `post.refused` |
//! | the checks now block it | cancelled | `changes_requested`, approvals void | `post.refused` with the report |
//! | the draft is no longer approved | cancelled | unchanged | none |

use super::jobs::{Attempt, Fate, Job, Outcome};
use super::Context;
use crate::audit::{text_sha256, ActionName, Actor, AuditAction, EntryBody};
use crate::channels::{ChannelError, Network, OutgoingReply, PostReceipt, Route};
use crate::db::drafts::DraftRow;
use crate::db::{self, DbConn};
use crate::domain::ids::DraftId;
use crate::domain::inbound::InboundState;
use crate::domain::workflow::{DraftEvent, DraftState};
use crate::error::{Error, Result};
use crate::policy::{CheckReport, Verdict};
use serde::{Deserialize, Serialize};

/// The job that posts one approved draft. One per draft (re-armed, with the same id, when
/// the draft is approved again after a refusal or retried after `post_failed`).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PostReply {
    pub draft_id: DraftId,
    /// The channel of the inbound message it answers; the worker routes it from there
    /// (`channels::Channels::route`).
    pub channel: Network,
}

impl PostReply {
    /// The post job of `draft`, on its inbound message's channel.
    ///
    /// Errors: 409 when the message's stored channel is not one Countersign posts to (a
    /// row from before channels were checked).
    pub fn of(conn: &mut DbConn, draft: &DraftRow) -> Result<PostReply> {
        let inbound = db::inbound::by_id(conn, draft.inbound_id)?
            .ok_or_else(|| Error::not_found("inbound message", draft.inbound_id))?;
        let channel = inbound
            .channel
            .parse()
            .map_err(|e| Error::Conflict(format!("this reply cannot be posted: {e}")))?;
        Ok(PostReply {
            draft_id: draft.id,
            channel,
        })
    }
}

/// What a posting run found.
#[derive(Debug)]
pub enum Posting {
    Posted {
        receipt: PostReceipt,
        revision: i32,
        in_reply_to: String,
        text_sha256: String,
    },
    /// Nothing was posted, and the draft leaves `approved` for `to`.
    Refused {
        revision: i32,
        text_sha256: String,
        refusal: Refusal,
        to: DraftState,
        check: Option<CheckReport>,
    },
    /// The draft is not `approved` (any more): nothing to do.
    Stale(DraftState),
}

impl Job for PostReply {
    const KIND: &'static str = "post";
    type Output = Posting;

    fn max_attempts(ctx: &Context) -> i32 {
        ctx.settings.post_attempts as i32
    }

    fn unique_key(&self) -> Option<String> {
        Some(format!("post:{}", self.draft_id))
    }

    fn channel(&self) -> Option<Network> {
        Some(self.channel)
    }

    fn run(&self, ctx: &Context, attempt: &Attempt) -> Outcome<Posting> {
        let prepared = ctx.db.conn().and_then(|mut conn| {
            db::read_snapshot(&mut conn, |conn| prepare(ctx, conn, self.draft_id))
        });
        let (reply_to, text, revision, hash, visibility) = match prepared {
            Ok(Prepared::Post {
                in_reply_to,
                text,
                revision,
                text_sha256,
                visibility,
            }) => (in_reply_to, text, revision, text_sha256, visibility),
            Ok(Prepared::Skip(posting)) => return Outcome::Cancelled(posting),
            Err(e) => return Outcome::Retry(format!("cannot read the draft: {e}")),
        };
        let channel = match ctx.channels.route(self.channel) {
            Route::Post(channel) => channel,
            Route::NoAccount(why) => {
                tracing::error!(draft_id = %self.draft_id, channel = %self.channel, "{why}");
                return Outcome::Failed(why);
            }
        };
        let reply = OutgoingReply {
            job_id: attempt.job_id,
            draft_id: self.draft_id,
            in_reply_to: reply_to.clone(),
            text,
            visibility,
            is_retry: attempt.is_retry(),
            since: attempt.created_at.and_utc(),
        };
        match channel.post(&reply) {
            Ok(receipt) => {
                tracing::info!(draft_id = %self.draft_id, post_id = %receipt.post_id, "reply posted");
                Outcome::Done(Posting::Posted {
                    receipt,
                    revision,
                    in_reply_to: reply_to,
                    text_sha256: hash,
                })
            }
            Err(ChannelError::Temporary(e)) => {
                tracing::warn!(draft_id = %self.draft_id, error = %e, "posting failed; will retry");
                Outcome::Retry(e)
            }
            Err(ChannelError::RateLimited { message, until }) => {
                tracing::warn!(draft_id = %self.draft_id, %until, error = %message, "rate limited; waiting");
                Outcome::Wait(
                    format!(
                        "rate limited until {}: {message}",
                        super::views::rfc3339(until.naive_utc())
                    ),
                    until.naive_utc(),
                )
            }
            Err(ChannelError::Refused(e)) => {
                tracing::warn!(draft_id = %self.draft_id, error = %e, "the channel refused the reply");
                Outcome::Failed(format!("refused by the channel: {e}"))
            }
        }
    }

    fn lock(&self, conn: &mut DbConn) -> Result<()> {
        db::lock_draft(conn, self.draft_id)
    }

    fn record(
        &self,
        ctx: &Context,
        conn: &mut DbConn,
        attempt: &Attempt,
        outcome: &Outcome<Posting>,
        fate: &Fate,
    ) -> Result<()> {
        let t = ctx.clock.now().naive_utc();
        let mut draft = db::drafts::by_id(conn, self.draft_id)?
            .ok_or_else(|| Error::not_found("draft", self.draft_id))?;
        let state = draft.state;
        // The channel that posts (or would have): the log channel stands in for a network
        // without an account in the quick start, and the log says so.
        let channel = match ctx.channels.route(self.channel) {
            Route::Post(c) => c.network().as_str().to_string(),
            Route::NoAccount(_) => self.channel.as_str().to_string(),
        };
        match outcome {
            Outcome::Cancelled(Posting::Stale(_)) | Outcome::Done(Posting::Stale(_)) => Ok(()),
            Outcome::Cancelled(Posting::Posted { .. }) => Err(Error::Internal(
                "a posted reply reported as cancelled".into(),
            )),
            Outcome::Done(Posting::Posted {
                receipt,
                revision,
                in_reply_to,
                text_sha256,
            }) => {
                let next = moved(state, DraftEvent::PostSucceeded)?;
                draft.state = next;
                draft.updated_at = t;
                draft.post_id = Some(receipt.post_id.clone());
                draft.post_url = receipt.url.clone();
                draft.posted_at = Some(t);
                draft.post_error = None;
                db::drafts::update(conn, &draft)?;
                db::inbound::settle(conn, draft.inbound_id, InboundState::Answered, t)?;
                db::audit::append(
                    conn,
                    t,
                    &Actor::System,
                    Some(&self.draft_id),
                    &AuditAction::PostSucceeded {
                        channel,
                        post_id: receipt.post_id.clone(),
                        url: receipt.url.clone(),
                        in_reply_to: in_reply_to.clone(),
                        revision: *revision,
                        text_sha256: text_sha256.clone(),
                        attempt: attempt.number,
                    },
                )?;
                Ok(())
            }
            Outcome::Done(Posting::Refused {
                revision,
                text_sha256,
                refusal,
                to,
                check,
            })
            | Outcome::Cancelled(Posting::Refused {
                revision,
                text_sha256,
                refusal,
                to,
                check,
            }) => {
                let event = if *to == DraftState::ChangesRequested {
                    DraftEvent::PostBlocked
                } else {
                    DraftEvent::PostRefused
                };
                let next = moved(state, event)?;
                draft.state = next;
                draft.updated_at = t;
                draft.post_error = Some(refusal.reason.clone());
                if let Some(report) = check {
                    draft.check_report = serde_json::to_string(report)?;
                }
                if next == DraftState::PendingReview {
                    // The approvals are void: the route starts again from its first step.
                    let writers = db::drafts::writers(conn, draft.id)?;
                    super::review_route::restart(conn, &mut draft, &writers)?;
                }
                db::drafts::update(conn, &draft)?;
                db::drafts::void_approvals(conn, self.draft_id, draft.revision, t)?;
                db::audit::append(
                    conn,
                    t,
                    &Actor::System,
                    Some(&self.draft_id),
                    &AuditAction::PostRefused {
                        revision: *revision,
                        text_sha256: text_sha256.clone(),
                        approved_text_sha256: refusal.approved.clone(),
                        reason: refusal.reason.clone(),
                        state: next,
                        check: check.clone(),
                    },
                )?;
                tracing::error!(draft_id = %self.draft_id, reason = %refusal.reason, state = %next, "not posted");
                super::notify::not_posted(ctx, conn, &draft, &refusal.reason, t)?;
                Ok(())
            }
            Outcome::Retry(error) | Outcome::Failed(error) | Outcome::Wait(error, _) => {
                let retry_at = match fate {
                    Fate::RetryAt(at) | Fate::WaitUntil(at) => Some(*at),
                    _ => None,
                };
                if retry_at.is_none() {
                    let next = moved(state, DraftEvent::PostFailed)?;
                    draft.state = next;
                }
                draft.post_error = Some(error.clone());
                draft.updated_at = t;
                db::drafts::update(conn, &draft)?;
                db::audit::append(
                    conn,
                    t,
                    &Actor::System,
                    Some(&self.draft_id),
                    &AuditAction::PostFailed {
                        channel,
                        error: error.clone(),
                        attempt: attempt.number,
                        retry_at: retry_at.map(super::views::rfc3339),
                    },
                )?;
                if retry_at.is_none() {
                    super::notify::post_failed(ctx, conn, &draft, self.channel.as_str(), error, t)?;
                }
                Ok(())
            }
        }
    }
}

/// The state after a posting event, or an internal error: only the posting job moves an
/// `approved` draft, and it read the draft as `approved`.
fn moved(state: DraftState, event: DraftEvent) -> Result<DraftState> {
    state
        .apply(event)
        .ok_or_else(|| Error::Internal(format!("a posting result for a draft in state {state}")))
}

enum Prepared {
    Post {
        in_reply_to: String,
        text: String,
        revision: i32,
        text_sha256: String,
        visibility: Option<String>,
    },
    Skip(Posting),
}

/// Reads what an attempt needs and decides whether it may post.
fn prepare(ctx: &Context, conn: &mut DbConn, draft_id: DraftId) -> Result<Prepared> {
    let draft =
        db::drafts::by_id(conn, draft_id)?.ok_or_else(|| Error::not_found("draft", draft_id))?;
    if draft.state != DraftState::Approved {
        return Ok(Prepared::Skip(Posting::Stale(draft.state)));
    }
    let inbound = db::inbound::by_id(conn, draft.inbound_id)?
        .ok_or_else(|| Error::Internal(format!("draft {draft_id} names no inbound message")))?;
    let hash = text_sha256(&draft.text);
    let entries = db::audit::about(conn, &draft_id)?;
    if let Err(refusal) = approved_text(&entries, draft.revision, &hash) {
        return Ok(Prepared::Skip(Posting::Refused {
            revision: draft.revision,
            text_sha256: hash,
            refusal,
            to: DraftState::PendingReview,
            check: None,
        }));
    }
    let report = super::drafts::check_reply(ctx, &draft.text, &inbound);
    if report.verdict == Verdict::Block {
        return Ok(Prepared::Skip(Posting::Refused {
            revision: draft.revision,
            text_sha256: hash.clone(),
            refusal: Refusal {
                reason: format!(
                    "the checks of policy version {} now block this reply",
                    report.policy_version
                ),
                approved: Some(hash),
            },
            to: DraftState::ChangesRequested,
            check: Some(report),
        }));
    }
    Ok(Prepared::Post {
        in_reply_to: inbound.external_id,
        text: draft.text,
        revision: draft.revision,
        text_sha256: hash,
        visibility: inbound.visibility,
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
        // A refusal or an expiry voided the approvals before it.
        .rposition(|e| is(e, ActionName::PostRefused) || is(e, ActionName::ReviewExpired))
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

#[cfg(test)]
mod tests {
    use super::*;

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
