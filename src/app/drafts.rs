//! Drafts and reviews (spec/api.md "Drafts and reviews"). Every move is decided by
//! `domain::workflow`'s table, inside the write transaction that makes it, so two
//! concurrent requests can never both move the same draft.

use super::jobs::enqueue;
use super::notify;
use super::posting::PostReply;
use super::review_route;
use super::views::{DraftSummary, DraftView};
use super::{Caller, Context};
use crate::audit::action::SupersededBecause;
use crate::audit::{text_sha256, ActionName, Actor, AuditAction};
use crate::db::drafts::{DraftRow, ReviewRow, RevisionRow};
use crate::db::inbound::InboundRow;
use crate::db::{self, write_tx, write_tx_concurrent, DbConn};
use crate::domain::ids::{DraftId, InboundId, ReviewId};
use crate::domain::inbound::InboundState;
use crate::domain::roles::Permission;
use crate::domain::routing::{Approval, Refusal, DEFAULT_ROUTE};
use crate::domain::text::check_field;
use crate::domain::workflow::{approvals_needed, may_review, Decision, DraftEvent, DraftState};
use crate::error::{Error, Result};
use crate::policy::{CheckReport, LengthRule, Verdict};

pub const MAX_TEXT_CHARS: usize = 10_000;

fn validate_text(text: &str) -> Result<()> {
    check_field("text", text, MAX_TEXT_CHARS, true).map_err(Error::BadRequest)
}

/// The `text_sha256` of the draft's last `draft.submitted` entry: the text reviewers are
/// asked to approve, as the log holds it.
pub fn submitted_text_sha256(conn: &mut DbConn, draft_id: DraftId) -> Result<Option<String>> {
    Ok(
        db::audit::last_about(conn, &draft_id, ActionName::DraftSubmitted)?
            .and_then(|b| b.data.get("text_sha256")?.as_str().map(str::to_string)),
    )
}

/// Checks `text` as a reply to `inbound`: under its channel's length rule, and on Mastodon
/// with the customer's own `@user@domain` allowed (it is how a reply names them there).
pub fn check_reply(ctx: &Context, text: &str, inbound: &InboundRow) -> CheckReport {
    let (rule, mention) = reply_context(&inbound.channel, &inbound.author_handle);
    ctx.policies.current().check_reply(text, rule, mention)
}

/// How a reply to a message on `channel` by `author_handle` is checked: the channel's length
/// rule (X's for a stored channel that is not one of ours), and on Mastodon the customer's
/// own handle, allowed as a mention.
pub fn reply_context<'a>(channel: &str, author_handle: &'a str) -> (LengthRule, Option<&'a str>) {
    let channel = channel.parse::<crate::domain::inbound::Channel>().ok();
    (
        channel.map_or(LengthRule::X, LengthRule::from),
        (channel == Some(crate::domain::inbound::Channel::Mastodon)).then_some(author_handle),
    )
}

/// The length rule a reply to `inbound` is checked under.
pub fn length_rule(inbound: &InboundRow) -> LengthRule {
    reply_context(&inbound.channel, &inbound.author_handle).0
}

/// The message that draft `id` answers.
fn inbound_of_draft(conn: &mut DbConn, id: DraftId) -> Result<InboundRow> {
    let d = load(conn, id)?;
    db::inbound::by_id(conn, d.inbound_id)?
        .ok_or_else(|| Error::not_found("inbound message", d.inbound_id))
}

/// Mastodon, unlike X, does not put the customer's handle in front of a reply, and the
/// reply goes out exactly as approved: one that does not mention its customer would reach
/// nobody (a direct one) or reach them unnoticed. Errors: 400 naming the handle.
fn refuse_unaddressed_mastodon_reply(text: &str, inbound: &InboundRow) -> Result<()> {
    if inbound.channel != crate::domain::inbound::Channel::Mastodon.as_str() {
        return Ok(());
    }
    let handle = format!("@{}", inbound.author_handle);
    if text.to_lowercase().contains(&handle) {
        return Ok(());
    }
    Err(Error::BadRequest(format!(
        "a reply on Mastodon must mention its customer: write {handle} in it (Mastodon does \
         not add it, and the reply is posted exactly as approved)"
    )))
}

fn load(conn: &mut DbConn, id: DraftId) -> Result<DraftRow> {
    db::drafts::by_id(conn, id)?.ok_or_else(|| Error::not_found("draft", id))
}

/// The state after `event`, or 409 naming the state the draft is in.
fn next_state(d: &DraftRow, event: DraftEvent) -> Result<DraftState> {
    let state = d.state;
    state.apply(event).ok_or_else(|| {
        let what = match event {
            DraftEvent::Revise => "revised",
            DraftEvent::Submit => "submitted",
            DraftEvent::Approve { .. } | DraftEvent::Reject | DraftEvent::RequestChanges => {
                "reviewed"
            }
            DraftEvent::PostSucceeded
            | DraftEvent::PostFailed
            | DraftEvent::PostRefused
            | DraftEvent::PostBlocked => "posted",
            DraftEvent::Retry => "retried",
            DraftEvent::Expire | DraftEvent::ExpireBlocked => "expired",
            DraftEvent::Supersede => "superseded",
        };
        Error::Conflict(format!("a draft in state {state} cannot be {what}"))
    })
}

fn report_json(report: &CheckReport) -> Result<String> {
    Ok(serde_json::to_string(report)?)
}

/// The draft as `GET /drafts/{id}` shows it.
pub fn view(conn: &mut DbConn, id: DraftId) -> Result<DraftView> {
    let d = load(conn, id)?;
    let revisions = db::drafts::revisions(conn, id)?;
    let reviews = db::drafts::reviews_of(conn, id)?;
    let job = db::jobs::by_unique_key(conn, &format!("post:{id}"))?;
    let route = review_route::view(conn, &d, &reviews)?;
    DraftView::build(d, revisions, reviews, job, route)
}

/// Writes a new draft reply to an open inbound message, with its check report.
/// Records `draft.created`. Errors: 403 without the agent role, 404 unknown message,
/// 409 when the message is no longer open.
pub fn create(
    ctx: &Context,
    conn: &mut DbConn,
    caller: &Caller,
    inbound_id: InboundId,
    text: &str,
) -> Result<DraftView> {
    caller.require(Permission::WriteDrafts)?;
    validate_text(text)?;
    // The channel of a message never changes: read outside the write.
    let message = db::inbound::by_id(conn, inbound_id)?
        .ok_or_else(|| Error::not_found("inbound message", inbound_id))?;
    let report = check_reply(ctx, text, &message);
    let id = DraftId::new();
    write_tx_concurrent(conn, |conn| {
        db::lock_inbound(conn, inbound_id)?;
        let inbound = db::inbound::by_id(conn, inbound_id)?
            .ok_or_else(|| Error::not_found("inbound message", inbound_id))?;
        if inbound.state != InboundState::Open {
            return Err(Error::Conflict(format!(
                "the inbound message is {}; replies go to open messages",
                inbound.state
            )));
        }
        refuse_if_answer_on_its_way(conn, inbound.id, None)?;
        let t = ctx.clock.now().naive_utc();
        let draft = DraftRow {
            id,
            inbound_id: inbound.id,
            author_id: caller.id,
            state: DraftState::Draft,
            revision: 1,
            text: text.to_string(),
            check_report: report_json(&report)?,
            approvals_needed: approvals_needed(report.verdict) as i32,
            post_id: None,
            posted_at: None,
            post_error: None,
            created_at: t,
            updated_at: t,
            post_url: None,
            approved_at: None,
            route: None,
        };
        db::drafts::insert(conn, &draft)?;
        db::drafts::insert_revision(conn, &current_revision(&draft, caller))?;
        db::audit::append(
            conn,
            t,
            &Actor::User(caller.id),
            Some(&id),
            &AuditAction::DraftCreated {
                inbound_id: inbound.id,
                revision: 1,
                text: text.to_string(),
                text_sha256: text_sha256(text),
                check: report.clone(),
            },
        )?;
        Ok(id)
    })?;
    // Read back after the commit, outside the write (the answer as GET shows it).
    view(conn, id)
}

/// 409 while the message has an approved draft other than `except` (its answer is being
/// posted): a customer never gets two answers.
fn refuse_if_answer_on_its_way(
    conn: &mut DbConn,
    inbound_id: InboundId,
    except: Option<DraftId>,
) -> Result<()> {
    let approved = db::drafts::for_inbounds(conn, &[inbound_id])?
        .into_iter()
        .find(|o| Some(o.id) != except && o.state == DraftState::Approved);
    match approved {
        Some(o) => Err(Error::Conflict(format!(
            "draft {} for this message is approved and being posted; a customer gets one answer",
            o.id
        ))),
        None => Ok(()),
    }
}

/// Supersedes every draft for the message that is not yet approved (except `except`), with
/// a `draft.superseded` entry each. Run in the caller's transaction.
pub fn supersede_others(
    conn: &mut DbConn,
    inbound_id: InboundId,
    except: Option<DraftId>,
    because: SupersededBecause,
    actor: &Actor,
    t: chrono::NaiveDateTime,
) -> Result<usize> {
    let mut n = 0;
    for mut o in db::drafts::for_inbounds(conn, &[inbound_id])? {
        if Some(o.id) == except {
            continue;
        }
        let Some(next) = o.state.apply(DraftEvent::Supersede) else {
            continue;
        };
        o.state = next;
        o.updated_at = t;
        db::drafts::update(conn, &o)?;
        db::audit::append(
            conn,
            t,
            actor,
            Some(&o.id),
            &AuditAction::DraftSuperseded {
                reason: because,
                by: except,
            },
        )?;
        n += 1;
    }
    Ok(n)
}

/// The revision row for the draft's current text and check, written by `author`.
fn current_revision(d: &DraftRow, author: &Caller) -> RevisionRow {
    RevisionRow {
        draft_id: d.id,
        revision: d.revision,
        text: d.text.clone(),
        author_id: author.id,
        check_report: d.check_report.clone(),
        created_at: d.updated_at,
    }
}

fn require_author(d: &DraftRow, caller: &Caller) -> Result<()> {
    if d.author_id != caller.id {
        return Err(Error::Forbidden(
            "only the draft's author may change or submit it".into(),
        ));
    }
    Ok(())
}

/// A new revision of the text, by the author, in state `draft` or `changes_requested`
/// (which goes back to `draft`). Records `draft.revised`.
pub fn revise(
    ctx: &Context,
    conn: &mut DbConn,
    caller: &Caller,
    id: DraftId,
    text: &str,
) -> Result<DraftView> {
    caller.require(Permission::WriteDrafts)?;
    validate_text(text)?;
    let report = check_reply(ctx, text, &inbound_of_draft(conn, id)?);
    write_tx_concurrent(conn, |conn| {
        db::lock_draft(conn, id)?;
        let mut d = load(conn, id)?;
        require_author(&d, caller)?;
        let state = next_state(&d, DraftEvent::Revise)?;
        let t = ctx.clock.now().naive_utc();
        d.state = state;
        d.revision += 1;
        d.text = text.to_string();
        d.check_report = report_json(&report)?;
        d.approvals_needed = approvals_needed(report.verdict) as i32;
        d.updated_at = t;
        db::drafts::update(conn, &d)?;
        db::drafts::insert_revision(conn, &current_revision(&d, caller))?;
        db::audit::append(
            conn,
            t,
            &Actor::User(caller.id),
            Some(&d.id),
            &AuditAction::DraftRevised {
                revision: d.revision,
                text: text.to_string(),
                text_sha256: text_sha256(text),
                check: report.clone(),
            },
        )?;
        Ok(d.id)
    })?;
    view(conn, id)
}

/// Hands the draft to reviewers. The checks run again against the policies in force; a
/// blocking verdict refuses the submission (422 with the report) and changes nothing.
/// Records `draft.submitted` with the report.
pub fn submit(ctx: &Context, conn: &mut DbConn, caller: &Caller, id: DraftId) -> Result<DraftView> {
    caller.require(Permission::WriteDrafts)?;
    let submitted = write_tx_concurrent(conn, |conn| {
        db::lock_draft(conn, id)?;
        let mut d = load(conn, id)?;
        require_author(&d, caller)?;
        let state = next_state(&d, DraftEvent::Submit)?;
        refuse_if_answer_on_its_way(conn, d.inbound_id, Some(d.id))?;
        let message = inbound_of_draft(conn, d.id)?;
        let report = check_reply(ctx, &d.text, &message);
        if report.verdict == Verdict::Block {
            return Err(Error::Blocked(Box::new(report)));
        }
        refuse_unaddressed_mastodon_reply(&d.text, &message)?;
        let writers = db::drafts::writers(conn, d.id)?;
        let (plan, may_act) = review_route::start(ctx, conn, &report, &message, &writers)?;
        d.state = state;
        d.check_report = report_json(&report)?;
        d.set_plan(&plan)?;
        let t = ctx.clock.now().naive_utc();
        d.updated_at = t;
        db::drafts::update(conn, &d)?;
        db::audit::append(
            conn,
            t,
            &Actor::User(caller.id),
            Some(&d.id),
            &AuditAction::DraftSubmitted {
                revision: d.revision,
                text_sha256: text_sha256(&d.text),
                check: report.clone(),
                route: plan,
            },
        )?;
        notify::review_needed(ctx, conn, &d, message.due_at, report.verdict, &may_act, t)?;
        Ok(d.id)
    });
    // Read before the workers are woken, so the answer shows the state this call made.
    let answer = submitted.and_then(|id| view(conn, id));
    ctx.wake_workers();
    answer
}

/// A route's refusal as the API answers it: 403 for who may not approve, 409 for a
/// second approval or a complete route.
fn refusal_error(r: Refusal) -> Error {
    match r {
        Refusal::FourEyes | Refusal::NotEligible { .. } => Error::Forbidden(r.to_string()),
        Refusal::AlreadyApproved | Refusal::Complete => Error::Conflict(r.to_string()),
    }
}

/// A reviewer's decision on the revision they read.
#[derive(Debug, Clone)]
pub struct NewReview {
    pub decision: Decision,
    pub comment: String,
    pub revision: i32,
}

/// Records a review (spec/api.md): four eyes (403 for anyone who wrote or revised the
/// draft), 409 for a stale revision, a draft not pending review, or a second approval by
/// the same reviewer. An approval re-runs the checks (422 if the draft now blocks); the
/// last approval needed moves the draft to `approved` and writes its post job in the same
/// transaction (the outbox).
pub fn review(
    ctx: &Context,
    conn: &mut DbConn,
    caller: &Caller,
    id: DraftId,
    r: &NewReview,
) -> Result<DraftView> {
    caller.require(Permission::Review)?;
    check_field("comment", &r.comment, MAX_TEXT_CHARS, false).map_err(Error::BadRequest)?;
    let result = write_tx_concurrent(conn, |conn| {
        db::lock_draft(conn, id)?;
        let mut d = load(conn, id)?;
        let writers = db::drafts::writers(conn, d.id)?;
        if !may_review(caller.id, &writers) {
            return Err(Error::Forbidden(
                "four eyes: nobody reviews a draft they wrote or revised".into(),
            ));
        }
        // The state first: a review of a draft that is not pending is a conflict whatever
        // revision it names.
        let current = d.state;
        if current != DraftState::PendingReview {
            return Err(Error::Conflict(format!(
                "a draft in state {current} cannot be reviewed"
            )));
        }
        if r.revision != d.revision {
            return Err(Error::Conflict(format!(
                "this review is of revision {} but the draft is at revision {}; read it again",
                r.revision, d.revision
            )));
        }
        let mut plan = d.plan()?;
        let earlier = db::drafts::reviews_of(conn, d.id)?;
        let approvals = db::drafts::counted_approvals(&earlier, &d);
        let me = caller.id;
        let t = ctx.clock.now().naive_utc();
        let mut step_of_review = None;
        let mut next_step_may_act = None;
        let (event, action) = match r.decision {
            Decision::Approve => {
                // What is approved is what was submitted: a text changed in the table
                // behind the log is never approved.
                let hash = text_sha256(&d.text);
                if submitted_text_sha256(conn, d.id)?.as_deref() != Some(hash.as_str()) {
                    return Err(Error::Conflict(
                        "the draft's text is not the text that was submitted; it cannot be \
                         approved (ask for changes instead)"
                            .into(),
                    ));
                }
                refuse_if_answer_on_its_way(conn, d.inbound_id, Some(d.id))?;
                let message = inbound_of_draft(conn, d.id)?;
                let report = check_reply(ctx, &d.text, &message);
                if report.verdict == Verdict::Block {
                    return Err(Error::Blocked(Box::new(report)));
                }
                // The policies in force may route the draft otherwise than at submission.
                let fresh = ctx
                    .policies
                    .current()
                    .routes()
                    .plan_for(&report, review_route::channel_of(&message)?);
                if let Some(stricter) = review_route::reconcile(&plan, &fresh)? {
                    plan = stricter;
                }
                let step = plan
                    .current_step(&approvals)
                    .map(|i| review_route::eligible(conn, &plan.steps[i]))
                    .transpose()?
                    .unwrap_or_default();
                let outcome = plan
                    .approve(&approvals, me, &writers, &step)
                    .map_err(refusal_error)?;
                let mut after = approvals.clone();
                after.push(Approval {
                    reviewer: me,
                    step: outcome.step,
                });
                if !outcome.completes_route && plan.route != DEFAULT_ROUTE {
                    // Nobody approves twice: this approval must leave the later steps
                    // people who may still complete them.
                    let members = plan
                        .steps
                        .iter()
                        .map(|s| review_route::eligible(conn, s))
                        .collect::<Result<Vec<_>>>()?;
                    plan.feasible_after(&after, &writers, &members)
                        .map_err(|why| {
                            Error::Conflict(format!(
                                "your approval would leave the route unfinishable ({why}); let \
                             another member of {} approve this step",
                                plan.steps[outcome.step].group_label()
                            ))
                        })?;
                }
                if outcome.completes_step && !outcome.completes_route {
                    let next = outcome.step + 1;
                    let members = review_route::eligible(conn, &plan.steps[next])?;
                    plan.start_step(next, &after, &writers, &members);
                    next_step_may_act = Some(plan.may_act(&after, &writers, &members));
                }
                d.set_plan(&plan)?;
                d.check_report = report_json(&report)?;
                step_of_review = Some(outcome.step as i32);
                let action = AuditAction::ReviewApproved {
                    revision: d.revision,
                    comment: r.comment.clone(),
                    text_sha256: hash,
                    check: report,
                    approvals: after.len() as i32,
                    approvals_needed: d.approvals_needed,
                    route: plan.route.clone(),
                    step: outcome.step + 1,
                    group: plan.steps[outcome.step].group.clone(),
                };
                let event = DraftEvent::Approve {
                    complete: outcome.completes_route,
                };
                (event, action)
            }
            Decision::Reject | Decision::RequestChanges => {
                // Any reviewer who did not write it may stop a draft (spec/api.md), whatever
                // its route.
                if r.decision == Decision::Reject {
                    (
                        DraftEvent::Reject,
                        AuditAction::ReviewRejected {
                            revision: d.revision,
                            comment: r.comment.clone(),
                        },
                    )
                } else {
                    (
                        DraftEvent::RequestChanges,
                        AuditAction::ReviewChangesRequested {
                            revision: d.revision,
                            comment: r.comment.clone(),
                        },
                    )
                }
            }
        };
        let state = next_state(&d, event)?;
        db::drafts::insert_review(
            conn,
            &ReviewRow {
                id: ReviewId::new(),
                draft_id: d.id,
                revision: d.revision,
                reviewer_id: me,
                decision: r.decision,
                comment: r.comment.clone(),
                created_at: t,
                voided_at: None,
                step: step_of_review,
            },
        )?;
        d.state = state;
        d.updated_at = t;
        if state == DraftState::Approved {
            d.approved_at = Some(t);
        }
        db::drafts::update(conn, &d)?;
        db::audit::append(conn, t, &Actor::User(caller.id), Some(&d.id), &action)?;
        // The author hears of a decision: not of the first of two approvals.
        let decided = match state {
            DraftState::Approved => Some(Decision::Approve),
            DraftState::ChangesRequested => Some(Decision::RequestChanges),
            DraftState::Rejected => Some(Decision::Reject),
            _ => None,
        };
        if let Some(decision) = decided {
            notify::decision(ctx, conn, &d, decision, &caller.username, t)?;
        }
        if let Some(next) = next_step_may_act {
            // The next step's group hears that the draft waits for it.
            let due_at = inbound_of_draft(conn, d.id)?.due_at;
            let verdict = super::views::parse_report(&d.check_report)?.verdict;
            notify::review_needed(ctx, conn, &d, due_at, verdict, &next, t)?;
        }
        if state == DraftState::Approved {
            // One answer per message: the others will never go out.
            supersede_others(
                conn,
                d.inbound_id,
                Some(d.id),
                SupersededBecause::AnotherApproved,
                &Actor::System,
                t,
            )?;
            let job = PostReply::of(conn, &d)?;
            enqueue(ctx, conn, &job, t)?;
        }
        Ok(d.id)
    });
    let answer = result.and_then(|id| view(conn, id));
    ctx.wake_workers();
    answer
}

/// Sends a `post_failed` draft back to posting: `approved` again, its post job re-armed
/// with the same id (so the channel still recognises a post an earlier attempt may have
/// made). Once per draft (spec/api.md). Records `post.retried`.
///
/// Errors: 403 without the reviewer role; 404 unknown draft; 409 when the draft is not
/// `post_failed` or was retried before.
pub fn retry(ctx: &Context, conn: &mut DbConn, caller: &Caller, id: DraftId) -> Result<DraftView> {
    caller.require(Permission::Review)?;
    let result = write_tx(conn, |conn| {
        let mut d = load(conn, id)?;
        let state = next_state(&d, DraftEvent::Retry)?;
        if db::audit::last_about(conn, &d.id, ActionName::PostRetried)?.is_some() {
            return Err(Error::Conflict(
                "this reply was retried once already; write a new draft instead".into(),
            ));
        }
        let t = ctx.clock.now().naive_utc();
        d.state = state;
        d.updated_at = t;
        // A retry is a new decision to post: the approval's time to live starts again.
        d.approved_at = Some(t);
        db::drafts::update(conn, &d)?;
        db::audit::append(
            conn,
            t,
            &Actor::User(caller.id),
            Some(&d.id),
            &AuditAction::PostRetried {
                revision: d.revision,
            },
        )?;
        let job = PostReply::of(conn, &d)?;
        enqueue(ctx, conn, &job, t)?;
        view(conn, d.id)
    });
    ctx.wake_workers();
    result
}

pub fn get(conn: &mut DbConn, caller: &Caller, id: DraftId) -> Result<DraftView> {
    caller.require(Permission::Read)?;
    view(conn, id)
}

/// Drafts, oldest change first, optionally in one `state`; with `for_me`, only those
/// pending review whose current step the caller may approve now.
pub fn list(
    conn: &mut DbConn,
    caller: &Caller,
    state: Option<DraftState>,
    for_me: bool,
    limit: i64,
) -> Result<Vec<DraftSummary>> {
    caller.require(Permission::Read)?;
    if !for_me {
        return db::drafts::list_by_state(conn, state, limit)?
            .into_iter()
            .map(DraftSummary::build)
            .collect();
    }
    if state.is_some_and(|s| s != DraftState::PendingReview) {
        // Only drafts in review have a step to act on.
        return Ok(Vec::new());
    }
    let mut mine = Vec::new();
    // Pages of the review queue, until `limit` of them are the caller's.
    let mut after: Option<(chrono::NaiveDateTime, DraftId)> = None;
    loop {
        let page = db::drafts::pending_after(conn, after, FOR_ME_PAGE)?;
        let Some(last) = page.last() else { break };
        after = Some((last.updated_at, last.id));
        let last_page = page.len() < FOR_ME_PAGE as usize;
        for d in page {
            let plan = d.plan()?;
            let reviews = db::drafts::reviews_of(conn, d.id)?;
            let approvals = db::drafts::counted_approvals(&reviews, &d);
            let writers = db::drafts::writers(conn, d.id)?;
            if review_route::may_act(conn, &d, &plan, &approvals, &writers)?.contains(&caller.id) {
                mine.push(DraftSummary::build(d)?);
                if mine.len() as i64 >= limit {
                    return Ok(mine);
                }
            }
        }
        if last_page {
            break;
        }
    }
    Ok(mine)
}

/// How many drafts in review `list(for_me)` reads at a time.
const FOR_ME_PAGE: i64 = 200;
