//! Customers' posts from the networks become inbound messages (spec/api.md "Inbound
//! messages and customers"), by polling a network's mentions or from its webhook, the same
//! way an agent posts one by hand: idempotent on the network's post id, linked to a
//! customer by the author's network id and handle.
//!
//! A poll reads the mentions after the cursor kept in `channel_state` and moves the cursor
//! only once every one of them is recorded, so a restart neither misses nor repeats one.

use super::inbound::{receive, NewInbound, Received};
use super::Context;
use crate::channels::{ChannelError, Ingest, Mention};
use crate::db;
use crate::error::{Error, Result};

/// Where a network's mention cursor is kept in `channel_state`.
const CURSOR_KEY: &str = "mentions_cursor";

/// What one poll did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Polled {
    /// Mentions that became new inbound messages.
    pub created: usize,
    /// Mentions already known (a webhook or an earlier poll brought them).
    pub known: usize,
    /// Mentions refused as input (logged; they do not hold the cursor back).
    pub refused: usize,
}

/// Why a poll did not complete.
#[derive(Debug, thiserror::Error)]
pub enum PollError {
    #[error(transparent)]
    Network(#[from] ChannelError),
    #[error(transparent)]
    Service(#[from] Error),
}

/// Reads `source`'s new mentions once and records them.
pub fn poll_once(ctx: &Context, source: &dyn Ingest) -> std::result::Result<Polled, PollError> {
    let network = source.network().as_str();
    let cursor = db::channels::get(&mut *ctx.db.conn()?, network, CURSOR_KEY)?;
    let batch = source.mentions_since(cursor.as_deref())?;
    let polled = record_mentions(ctx, &batch.mentions)?;
    if let Some(next) = batch.cursor {
        db::channels::put(
            &mut *ctx.db.conn()?,
            network,
            CURSOR_KEY,
            &next,
            ctx.clock.now().naive_utc(),
        )?;
    }
    if polled.created > 0 {
        tracing::info!(network, created = polled.created, "mentions received");
    }
    Ok(polled)
}

/// Records each mention as an inbound message (by the system). A mention that is not valid
/// input (a handle the network should never send, a text beyond the limit) is logged and
/// skipped; any other failure stops, so the caller does not move past it.
pub fn record_mentions(ctx: &Context, mentions: &[Mention]) -> Result<Polled> {
    let mut polled = Polled::default();
    let mut conn = ctx.db.conn()?;
    for m in mentions {
        // A post time the API would refuse (clocks apart) is replaced by the time of receipt.
        let received_at = m.created_at.filter(|t| {
            crate::domain::inbound::check_received_at(m.network.as_str(), *t, ctx.clock.now())
                .is_ok()
        });
        let message = NewInbound {
            channel: m.network.as_str().to_string(),
            external_id: m.post_id.clone(),
            author_handle: m.author_handle.clone(),
            author_external_user_id: Some(m.author_id.clone()),
            text: m.text.clone(),
            received_at,
            visibility: m.visibility.clone(),
        };
        match receive(ctx, &mut conn, None, &message) {
            Ok(Received::Created(_)) => polled.created += 1,
            Ok(Received::AlreadyKnown(_)) => polled.known += 1,
            Err(Error::BadRequest(why)) => {
                tracing::warn!(network = m.network.as_str(), post_id = %m.post_id, %why, "a mention was not taken");
                polled.refused += 1;
            }
            Err(e) => return Err(e),
        }
    }
    if polled.created > 0 {
        ctx.wake_workers();
    }
    Ok(polled)
}

/// Polls every network that has polling on, each at its own interval, until aborted. A
/// rate-limited poll waits for the reset; a failed one is logged and tried at the next tick.
pub async fn run(ctx: Context) {
    let mut polls = tokio::task::JoinSet::new();
    for source in ctx.channels.ingest().to_vec() {
        let Some(every) = source.poll_every() else {
            continue;
        };
        let ctx = ctx.clone();
        polls.spawn(async move {
            loop {
                let (c, s) = (ctx.clone(), source.clone());
                let network = s.network().as_str();
                let wait = match tokio::task::spawn_blocking(move || poll_once(&c, s.as_ref()))
                    .await
                {
                    Ok(Ok(_)) => every,
                    Ok(Err(PollError::Network(ChannelError::RateLimited { message, until }))) => {
                        tracing::warn!(network, %until, %message, "mentions: rate limited");
                        (until - chrono::Utc::now())
                            .to_std()
                            .unwrap_or(every)
                            .max(every)
                    }
                    Ok(Err(e)) => {
                        tracing::warn!(network, error = %e, "mentions: the poll failed");
                        every
                    }
                    Err(e) => {
                        tracing::error!(network, error = %e, "mentions: the poll task failed");
                        every
                    }
                };
                tokio::time::sleep(wait).await;
            }
        });
    }
    while polls.join_next().await.is_some() {}
}
