//! Deadline watch (spec/api.md "Business hours and deadlines"): a message is `at_risk`
//! from `at_risk_minutes` business minutes before its `due_at` and `breached` after it.
//! Each moment is recorded once (`inbound.at_risk`, `inbound.breached`) and mailed to the
//! agents who drafted for the message (every agent if none did) and the reviewers. The
//! background task looks every [`SWEEP_INTERVAL`], well within the contract's 60 s; a look
//! that finds nothing writes nothing.

use super::notify::{self, Deadline};
use super::views::rfc3339;
use super::Context;
use crate::audit::{Actor, AuditAction};
use crate::db::{self, write_tx};
use crate::domain::inbound::InboundState;
use crate::error::Result;

/// How often the background task looks.
pub const SWEEP_INTERVAL: std::time::Duration = std::time::Duration::from_secs(15);

/// Records (and mails) every at-risk and breached moment that has come and is not yet
/// recorded. Returns how many messages it recorded something for.
pub fn sweep(ctx: &Context) -> Result<usize> {
    let mut conn = ctx.db.conn()?;
    let t = ctx.clock.now().naive_utc();
    let mut done = 0;
    loop {
        let due = db::inbound::deadlines_due(&mut conn, t, 100)?;
        if due.is_empty() {
            break;
        }
        for m in due {
            let recorded = write_tx(&mut conn, |conn| {
                // Again under the write lock: another instance may have recorded it.
                let Some(m) = db::inbound::by_id(conn, m.id)? else {
                    return Ok(false);
                };
                let open = m.state == InboundState::Open;
                let at_risk = open && m.at_risk_noted_at.is_none() && m.at_risk_at <= t;
                let breached = open && m.breached_noted_at.is_none() && m.due_at < t;
                if !at_risk && !breached {
                    return Ok(false);
                }
                db::inbound::note_deadline(
                    conn,
                    m.id,
                    at_risk.then_some(t),
                    breached.then_some(t),
                )?;
                let due_at = rfc3339(m.due_at);
                if at_risk {
                    db::audit::append(
                        conn,
                        t,
                        &Actor::System,
                        Some(&m.id),
                        &AuditAction::InboundAtRisk {
                            due_at: due_at.clone(),
                        },
                    )?;
                }
                if breached {
                    db::audit::append(
                        conn,
                        t,
                        &Actor::System,
                        Some(&m.id),
                        &AuditAction::InboundBreached { due_at },
                    )?;
                }
                let drafters = db::drafts::writers_for_inbound(conn, m.id)?;
                // Found late, both at once: one mail, of the worse.
                let which = if breached {
                    Deadline::Breached
                } else {
                    Deadline::AtRisk
                };
                notify::deadline(ctx, conn, m.id, m.due_at, &drafters, which, t)?;
                Ok(true)
            })?;
            done += usize::from(recorded);
        }
    }
    if done > 0 {
        ctx.wake_workers();
    }
    Ok(done)
}

/// The background task of `serve`.
pub async fn run(ctx: Context) {
    let mut tick = tokio::time::interval(SWEEP_INTERVAL);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let c = ctx.clone();
        match tokio::task::spawn_blocking(move || sweep(&c)).await {
            Ok(Ok(0)) => {}
            Ok(Ok(n)) => tracing::info!(messages = n, "deadlines recorded"),
            Ok(Err(e)) => tracing::warn!(error = %e, "deadline watch failed"),
            Err(e) => tracing::error!(error = %e, "deadline watch task failed"),
        }
        // Approvals past their time to live go back to review on the same beat.
        let c = ctx.clone();
        match tokio::task::spawn_blocking(move || super::expiry::sweep(&c)).await {
            Ok(Ok(_)) => {}
            Ok(Err(e)) => tracing::warn!(error = %e, "approval expiry failed"),
            Err(e) => tracing::error!(error = %e, "approval expiry task failed"),
        }
    }
}
