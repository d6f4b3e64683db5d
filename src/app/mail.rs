//! Sending one mail, as a job of the job queue ([`SendMail`]): one job per recipient
//! (spec/mail.md), enqueued in the transaction of the change it tells about, so a slow or
//! dead mail server never slows or fails a request and no mail is lost across a restart.
//! Each mail sent is recorded as `mail.sent`, each given up as `mail.failed`, with the
//! recipient and subject but never the body (which may hold a link's token).

use super::jobs::{Attempt, Fate, Job, Outcome};
use super::Context;
use crate::audit::{Actor, AuditAction};
use crate::db::{self, DbConn};
use crate::error::Result;
use crate::mail::{Letter, SendError};
use serde::{Deserialize, Serialize};

/// Attempts before a mail is given up: with the backoff (5 s doubling to 10 minutes) about
/// an hour and a half of trying.
pub const MAIL_ATTEMPTS: i32 = 16;

/// One mail to one recipient.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SendMail {
    /// The recipient's address.
    pub to: String,
    /// The recipient's own name, shown in `To`.
    pub to_name: Option<String>,
    pub letter: Letter,
    /// The letter holds a secret (a set-password link): once the job ends, its payload
    /// keeps only the recipient and subject.
    #[serde(default)]
    pub secret: bool,
    /// At most one mail job with this key (the checkpoint mails).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unique_key: Option<String>,
}

impl Job for SendMail {
    const KIND: &'static str = "mail";
    type Output = ();

    fn max_attempts(_ctx: &Context) -> i32 {
        MAIL_ATTEMPTS
    }

    fn unique_key(&self) -> Option<String> {
        self.unique_key.clone()
    }

    fn run(&self, ctx: &Context, attempt: &Attempt) -> Outcome<()> {
        self.send(ctx, attempt)
    }

    fn record(
        &self,
        ctx: &Context,
        conn: &mut DbConn,
        attempt: &Attempt,
        outcome: &Outcome<()>,
        fate: &Fate,
    ) -> Result<()> {
        self.forget_secret(conn, attempt, fate)?;
        let t = ctx.clock.now().naive_utc();
        let job_id = attempt.job_id;
        let action = match (fate, outcome) {
            (Fate::Done, _) => AuditAction::MailSent {
                job_id,
                to: self.to.clone(),
                subject: self.letter.subject.clone(),
            },
            (Fate::Failed, o) => AuditAction::MailFailed {
                job_id,
                to: self.to.clone(),
                error: o.error().unwrap_or("given up").to_string(),
            },
            _ => return Ok(()),
        };
        db::audit::append(conn, t, &Actor::System, Some(&job_id), &action)?;
        Ok(())
    }
}

impl SendMail {
    fn send(&self, ctx: &Context, attempt: &Attempt) -> Outcome<()> {
        let message = match crate::mail::build(
            attempt.job_id,
            &ctx.settings.mail_from,
            &self.to,
            self.to_name.as_deref(),
            &self.letter,
        ) {
            Ok(m) => m,
            Err(e) => return Outcome::Failed(e.to_string()),
        };
        match ctx.mailer.send(&message) {
            Ok(()) => {
                tracing::info!(job_id = %attempt.job_id, subject = %self.letter.subject, "mail sent");
                Outcome::Done(())
            }
            Err(SendError::Temporary(e)) => {
                tracing::warn!(job_id = %attempt.job_id, error = %e, "mail not sent; will retry");
                Outcome::Retry(e)
            }
            Err(SendError::Permanent(e)) => Outcome::Failed(e),
        }
    }

    /// A secret-bearing letter keeps only its recipient and subject once the job ends.
    fn forget_secret(&self, conn: &mut DbConn, attempt: &Attempt, fate: &Fate) -> Result<()> {
        if !self.secret || matches!(fate, Fate::RetryAt(_)) {
            return Ok(());
        }
        let kept = SendMail {
            letter: Letter {
                subject: self.letter.subject.clone(),
                text: String::new(),
                links: Vec::new(),
            },
            ..self.clone()
        };
        db::jobs::set_payload(conn, attempt.job_id, &serde_json::to_string(&kept)?)
    }
}

/// The latest audit checkpoint mailed to an auditor: a mail like any other, but a kind of
/// its own, because it is not recorded in the audit log (it would grow the log it reports
/// on: spec/audit.md), and the checkpoint task asks when the last one went out.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(transparent)]
pub struct CheckpointMail(pub SendMail);

impl Job for CheckpointMail {
    const KIND: &'static str = "checkpoint_mail";
    type Output = ();

    fn max_attempts(_ctx: &Context) -> i32 {
        MAIL_ATTEMPTS
    }

    fn unique_key(&self) -> Option<String> {
        self.0.unique_key.clone()
    }

    fn run(&self, ctx: &Context, attempt: &Attempt) -> Outcome<()> {
        self.0.send(ctx, attempt)
    }

    fn record(
        &self,
        _ctx: &Context,
        _conn: &mut DbConn,
        _attempt: &Attempt,
        _outcome: &Outcome<()>,
        _fate: &Fate,
    ) -> Result<()> {
        Ok(())
    }
}
