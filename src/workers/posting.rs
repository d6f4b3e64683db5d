//! The posting worker: takes approved replies from the outbox and posts them through the
//! channel, exactly once (see `channels` for the idempotency each channel keeps). It wakes
//! when a job is enqueued in this process and polls for jobs from other instances and for
//! retries.

use crate::app::posting::{claim, record, Claim};
use crate::channels::Channel;
use crate::db::Db;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::Notify;

pub const POLL_INTERVAL: Duration = Duration::from_secs(1);

/// Posts every due job, then returns how many it handled.
pub fn drain(db: &Db, channel: &dyn Channel) -> usize {
    let mut handled = 0;
    loop {
        let claimed = match db.conn().and_then(|mut c| claim(&mut c)) {
            Ok(Some(Claim::Post(job))) => job,
            Ok(Some(Claim::Refused { draft_id, reason })) => {
                tracing::error!(%draft_id, %reason, "not posted: the text is not the approved one; back to review");
                handled += 1;
                continue;
            }
            Ok(None) => return handled,
            Err(e) => {
                tracing::warn!(error = %e, "posting worker: cannot claim a job");
                return handled;
            }
        };
        let outcome = channel.post(&claimed.reply);
        match &outcome {
            Ok(r) => {
                tracing::info!(draft_id = %claimed.reply.draft_id, post_id = %r.post_id, "reply posted")
            }
            Err(e) => {
                tracing::warn!(draft_id = %claimed.reply.draft_id, error = %e, "posting failed; will retry")
            }
        }
        // If this fails the lease runs out and the job is claimed again as a retry, which
        // the channel recognises: no post is lost or repeated.
        if let Err(e) = db
            .conn()
            .and_then(|mut c| record(&mut c, &claimed, channel.name(), &outcome))
        {
            tracing::error!(error = %e, job_id = %claimed.job.id, "posting worker: cannot record the result");
        }
        handled += 1;
    }
}

/// Runs until `stop` is notified, finishing the job in hand.
pub async fn run(db: Db, channel: Arc<dyn Channel>, wakeup: Arc<Notify>, stop: Arc<Notify>) {
    loop {
        let (db2, ch) = (db.clone(), channel.clone());
        if let Err(e) = tokio::task::spawn_blocking(move || drain(&db2, ch.as_ref())).await {
            tracing::error!(error = %e, "posting worker task failed");
        }
        tokio::select! {
            _ = stop.notified() => return,
            _ = wakeup.notified() => {}
            _ = tokio::time::sleep(POLL_INTERVAL) => {}
        }
    }
}
