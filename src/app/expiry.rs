//! Approval expiry (spec/api.md "Running", `COUNTERSIGN_APPROVAL_TTL_HOURS`): an approval
//! not posted within its time to live (a channel was down, say) goes back to review. Its
//! approvals are voided, the post job cancelled, the checks run again against the policies
//! in force (and route it again: the route they choose now, from its first step), and
//! `review.expired` recorded; the first step's reviewers are told it waits again. A post
//! job that a worker holds at that moment is left to finish: expiry never races a post.

use super::drafts::check_reply;
use super::notify;
use super::review_route;
use super::views::rfc3339;
use super::Context;
use crate::audit::{Actor, AuditAction};
use crate::db::{self, write_tx};
use crate::domain::workflow::{DraftEvent, DraftState};
use crate::error::{Error, Result};
use crate::policy::Verdict;

/// Expires every approval whose time to live is over; returns how many it expired.
pub fn sweep(ctx: &Context) -> Result<usize> {
    let mut conn = ctx.db.conn()?;
    let t = ctx.clock.now().naive_utc();
    let ttl = chrono::Duration::hours(i64::from(ctx.settings.approval_ttl_hours));
    let cutoff = t - ttl;
    let mut expired = 0;
    let mut woke = false;
    for candidate in db::drafts::approved_before(&mut conn, cutoff, 100)? {
        let done = write_tx(&mut conn, |conn| {
            // Again under the write lock: it may have been posted or expired meanwhile.
            let Some(mut d) = db::drafts::by_id(conn, candidate.id)? else {
                return Ok(false);
            };
            let Some(approved_at) = d.approved_at.filter(|a| *a <= cutoff) else {
                return Ok(false);
            };
            if d.state != DraftState::Approved {
                return Ok(false);
            }
            if let Some(job) = db::jobs::by_unique_key(conn, &format!("post:{}", d.id))? {
                if !db::jobs::cancel_unless_leased(conn, job.id, t)?
                    && job.state == crate::domain::jobs::JobState::Pending
                {
                    // A worker is posting it right now.
                    return Ok(false);
                }
            }
            let inbound = db::inbound::by_id(conn, d.inbound_id)?
                .ok_or_else(|| Error::not_found("inbound message", d.inbound_id))?;
            let report = check_reply(ctx, &d.text, &inbound);
            let event = if report.verdict == Verdict::Block {
                DraftEvent::ExpireBlocked
            } else {
                DraftEvent::Expire
            };
            let next = d.state.apply(event).ok_or_else(|| {
                Error::Internal(format!("draft {}: an approved draft cannot expire", d.id))
            })?;
            d.state = next;
            d.updated_at = t;
            d.approved_at = None;
            d.check_report = serde_json::to_string(&report)?;
            let writers = db::drafts::writers(conn, d.id)?;
            let may_act = if next == DraftState::PendingReview {
                review_route::reroute(ctx, conn, &mut d, &report, &inbound, &writers)?
            } else {
                Vec::new()
            };
            db::drafts::update(conn, &d)?;
            db::drafts::void_approvals(conn, d.id, d.revision, t)?;
            db::audit::append(
                conn,
                t,
                &Actor::System,
                Some(&d.id),
                &AuditAction::ReviewExpired {
                    revision: d.revision,
                    approved_at: rfc3339(approved_at),
                    ttl_hours: ctx.settings.approval_ttl_hours,
                    state: next,
                    check: report.clone(),
                    route: (next == DraftState::PendingReview)
                        .then(|| d.plan())
                        .transpose()?,
                },
            )?;
            if next == DraftState::PendingReview {
                notify::review_needed(ctx, conn, &d, inbound.due_at, report.verdict, &may_act, t)?;
            }
            tracing::info!(draft_id = %d.id, state = %next, "an approval expired unposted");
            Ok(true)
        })?;
        if done {
            expired += 1;
            woke = true;
        }
    }
    if woke {
        ctx.wake_workers();
    }
    Ok(expired)
}
