//! Who is told what by e-mail, and when (spec/mail.md's table). Each function runs inside
//! the write transaction of the change it tells about and enqueues one mail job per
//! recipient ([`super::mail::SendMail`]). Mail never holds the customer's text, the draft's
//! text or personal data beyond the recipient's own name: a subject says what waits, the
//! body says when and links to it (`COUNTERSIGN_PUBLIC_URL`).

use super::jobs::enqueue;
use super::mail::{CheckpointMail, SendMail};
use super::views::rfc3339;
use super::Context;
use crate::db::drafts::DraftRow;
use crate::db::users::UserRow;
use crate::db::{self, DbConn};
use crate::domain::ids::{InboundId, UserId};
use crate::domain::roles::Role;
use crate::domain::workflow::Decision;
use crate::error::Result;
use crate::mail::Letter;
use crate::policy::Verdict;
use chrono::NaiveDateTime;
use std::collections::BTreeSet;

/// Someone mail can reach.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Recipient {
    pub address: String,
    pub name: Option<String>,
}

impl Recipient {
    fn of(user: &UserRow) -> Option<Recipient> {
        let address = user.email.clone().filter(|e| !e.is_empty())?;
        Some(Recipient {
            address,
            name: Some(user.username.clone()),
        })
    }
}

/// The users mail can reach (an address, not disabled), with their roles.
fn reachable(conn: &mut DbConn) -> Result<Vec<(UserId, Vec<Role>, Recipient)>> {
    let mut out = Vec::new();
    for u in db::users::with_email(conn)? {
        if let Some(r) = Recipient::of(&u) {
            out.push((u.id, u.roles.to_vec(), r));
        }
    }
    Ok(out)
}

/// Users holding `role` that mail can reach, except `except`.
fn with_role(conn: &mut DbConn, role: Role, except: &[UserId]) -> Result<Vec<Recipient>> {
    Ok(reachable(conn)?
        .into_iter()
        .filter(|(id, roles, _)| roles.contains(&role) && !except.contains(id))
        .map(|(_, _, r)| r)
        .collect())
}

/// These users, where mail can reach them.
fn users(conn: &mut DbConn, ids: &[UserId]) -> Result<Vec<Recipient>> {
    Ok(reachable(conn)?
        .into_iter()
        .filter(|(id, _, _)| ids.contains(id))
        .map(|(_, _, r)| r)
        .collect())
}

/// Enqueues one mail per distinct address.
fn send_each(
    ctx: &Context,
    conn: &mut DbConn,
    to: Vec<Recipient>,
    letter: &Letter,
    t: NaiveDateTime,
) -> Result<usize> {
    let mut seen = BTreeSet::new();
    for r in to {
        if !seen.insert(r.address.to_lowercase()) {
            continue;
        }
        let job = SendMail {
            to: r.address,
            to_name: r.name,
            letter: letter.clone(),
            secret: false,
            unique_key: None,
        };
        enqueue(ctx, conn, &job, t)?;
    }
    Ok(seen.len())
}

fn link(ctx: &Context, path: &str) -> String {
    format!("{}{path}", ctx.settings.public_url)
}

fn signed() -> &'static str {
    "\n\n-- \nCountersign. You get this mail because of your role; it holds no customer data."
}

/// The draft's author and the reviewers who approved its current revision, where mail
/// can reach them (who hears that an approved reply did not go out).
fn author_and_approvers(conn: &mut DbConn, d: &DraftRow) -> Result<Vec<Recipient>> {
    let mut ids: Vec<UserId> = db::drafts::reviews_of(conn, d.id)?
        .into_iter()
        .filter(|r| r.revision == d.revision && r.decision == Decision::Approve)
        .map(|r| r.reviewer_id)
        .collect();
    ids.push(d.author_id);
    users(conn, &ids)
}

/// A draft waits for review: `to`, who may act on its route's current step (the step's
/// group less the draft's writers and earlier approvers), where mail reaches them.
pub fn review_needed(
    ctx: &Context,
    conn: &mut DbConn,
    d: &DraftRow,
    due_at: NaiveDateTime,
    verdict: Verdict,
    to: &[UserId],
    t: NaiveDateTime,
) -> Result<usize> {
    let url = link(ctx, &format!("/drafts/{}", d.id));
    let letter = Letter {
        subject: format!("Review needed: a reply due {}", rfc3339(due_at)),
        text: format!(
            "A reply draft waits for your review.\n\nVerdict of the checks: {}\nThe customer's message is due for an answer at {} (due_at).\n\nReview it: {url}{}",
            verdict.as_str(),
            rfc3339(due_at),
            signed()
        ),
        links: vec![url],
    };
    let to = users(conn, to)?;
    send_each(ctx, conn, to, &letter, t)
}

/// A decision on the author's draft: it is `approved` (the last approval needed),
/// `changes_requested` or `rejected`. Never the comment, which may quote the draft.
pub fn decision(
    ctx: &Context,
    conn: &mut DbConn,
    d: &DraftRow,
    decision: Decision,
    reviewer: &str,
    t: NaiveDateTime,
) -> Result<usize> {
    let url = link(ctx, &format!("/drafts/{}", d.id));
    let (prefix, what) = match decision {
        Decision::Approve => ("Approved", "approved your reply; it goes out now"),
        Decision::RequestChanges => ("Changes requested", "asked for changes to your reply"),
        Decision::Reject => ("Rejected", "rejected your reply"),
    };
    let letter = Letter {
        subject: format!("{prefix}: your reply draft"),
        text: format!("{reviewer} {what}.\n\nOpen it: {url}{}", signed()),
        links: vec![url],
    };
    let to = users(conn, &[d.author_id])?;
    send_each(ctx, conn, to, &letter, t)
}

/// A post failed for good: the author and the reviewers who approved it.
pub fn post_failed(
    ctx: &Context,
    conn: &mut DbConn,
    d: &DraftRow,
    channel: &str,
    error: &str,
    t: NaiveDateTime,
) -> Result<usize> {
    let url = link(ctx, &format!("/drafts/{}", d.id));
    let letter = Letter {
        subject: "Post failed: an approved reply was not posted".into(),
        text: format!(
            "An approved reply could not be posted on {channel}, and no more attempts will be made.\n\nThe channel's error: {error}\n\nA reviewer may retry it once: {url}{}",
            signed()
        ),
        links: vec![url],
    };
    let to = author_and_approvers(conn, d)?;
    send_each(ctx, conn, to, &letter, t)
}

/// A reply was refused at posting time (`post.refused`): the author and the approvers.
pub fn not_posted(
    ctx: &Context,
    conn: &mut DbConn,
    d: &DraftRow,
    reason: &str,
    t: NaiveDateTime,
) -> Result<usize> {
    let url = link(ctx, &format!("/drafts/{}", d.id));
    let letter = Letter {
        subject: "Not posted: an approved reply was held back".into(),
        text: format!(
            "An approved reply was not posted: {reason}.\n\nIt is back with its author or its reviewers: {url}{}",
            signed()
        ),
        links: vec![url],
    };
    let to = author_and_approvers(conn, d)?;
    send_each(ctx, conn, to, &letter, t)
}

/// Which deadline mail.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Deadline {
    AtRisk,
    Breached,
}

/// A message became `at_risk` or `breached`: the agents who drafted for it (every agent if
/// none did) and the reviewers.
pub fn deadline(
    ctx: &Context,
    conn: &mut DbConn,
    inbound_id: InboundId,
    due_at: NaiveDateTime,
    drafters: &[UserId],
    which: Deadline,
    t: NaiveDateTime,
) -> Result<usize> {
    let url = link(ctx, &format!("/inbound/{inbound_id}"));
    let (subject, text) = match which {
        Deadline::AtRisk => (
            format!("At risk: a customer message is due at {}", rfc3339(due_at)),
            format!(
                "A customer's message is close to its reply deadline, {} (due_at).",
                rfc3339(due_at)
            ),
        ),
        Deadline::Breached => (
            format!(
                "Breached: a customer message was due at {}",
                rfc3339(due_at)
            ),
            format!(
                "A customer's message passed its reply deadline, {} (due_at), without an answer.",
                rfc3339(due_at)
            ),
        ),
    };
    let letter = Letter {
        subject,
        text: format!("{text}\n\nOpen it: {url}{}", signed()),
        links: vec![url],
    };
    let mut to = if drafters.is_empty() {
        with_role(conn, Role::Agent, &[])?
    } else {
        users(conn, drafters)?
    };
    to.extend(with_role(conn, Role::Reviewer, &[])?);
    send_each(ctx, conn, to, &letter, t)
}

/// Who gets the checkpoint mails: the auditors with an address and
/// `COUNTERSIGN_AUDITOR_EMAILS`.
pub fn checkpoint_recipients(ctx: &Context, conn: &mut DbConn) -> Result<Vec<Recipient>> {
    let mut to = with_role(conn, Role::Auditor, &[])?;
    to.extend(ctx.settings.auditor_emails.iter().map(|a| Recipient {
        address: a.clone(),
        name: None,
    }));
    Ok(to)
}

/// The latest audit checkpoint, verbatim in the plain-text part, to `to`. Not recorded as
/// `mail.sent` (spec/audit.md). Each job's key is `key` + the address, so a checkpoint is
/// mailed to an address once however many instances decide to.
pub fn checkpoint(
    ctx: &Context,
    conn: &mut DbConn,
    to: Vec<Recipient>,
    note: &str,
    size: i64,
    key: &str,
    t: NaiveDateTime,
) -> Result<usize> {
    let letter = Letter {
        subject: format!(
            "Audit checkpoint: the log at {size} {}",
            if size == 1 { "entry" } else { "entries" }
        ),
        text: format!(
            "The latest signed checkpoint of the audit log follows, verbatim between the lines. Keep it: a later log that does not contain this one is not the same log (countersign audit verify-bundle, docs/audit.md).\n\n-----\n{note}-----{}",
            signed()
        ),
        links: Vec::new(),
    };
    let mut seen = BTreeSet::new();
    for r in to {
        let address = r.address.to_lowercase();
        if !seen.insert(address.clone()) {
            continue;
        }
        let job = CheckpointMail(SendMail {
            to: r.address,
            to_name: r.name,
            letter: letter.clone(),
            secret: false,
            unique_key: Some(format!("{key}{address}")),
        });
        enqueue(ctx, conn, &job, t)?;
    }
    Ok(seen.len())
}

/// A set-password link to a user who has an address (and is not disabled), as a secret
/// mail: once sent, its job keeps only the recipient and subject. Returns whether it was
/// mailed (a user without an address is handed the link by the admin instead).
pub fn set_password(
    ctx: &Context,
    conn: &mut DbConn,
    user: &UserRow,
    url: &str,
    t: NaiveDateTime,
) -> Result<bool> {
    let Some(to) = Recipient::of(user).filter(|_| !user.disabled) else {
        return Ok(false);
    };
    let letter = Letter {
        subject: "Set your password for Countersign".into(),
        text: format!(
            "Hello {},\n\nan admin made you an account, or reset your password. Set a password here within 24 hours; the link works once:\n\n{url}\n\nIf you did not expect this, tell your admin.{}",
            user.username,
            signed()
        ),
        links: vec![url.to_string()],
    };
    let job = SendMail {
        to: to.address,
        to_name: to.name,
        letter,
        secret: true,
        unique_key: None,
    };
    enqueue(ctx, conn, &job, t)?;
    Ok(true)
}
