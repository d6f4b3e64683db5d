//! Where approved replies go, and where customers' posts come from: one module per network
//! behind the [`Channel`] trait, and one registry ([`Channels`]) that picks the channel of a
//! reply by its inbound message's channel (spec/api.md "Channels").
//!
//! Exactly once: the posting worker may call [`Channel::post`] again for the same reply
//! when an earlier attempt crashed, timed out or lost its connection after the network may
//! have made the post. [`OutgoingReply::is_retry`] says so, and every channel must then
//! find the post it already made and return it instead of posting again. Each channel's
//! documentation says how it does.
//!
//! Adding a network: a module here implementing [`Channel`] (and [`Ingest`] if it reads
//! mentions), a variant of [`Network`], and one line in [`Channels::from_settings`].

pub mod http;
pub mod log;
pub mod mastodon;
pub mod x;

// The service's one clock: rate-limit windows and reset times are read against it.
use crate::app::clock::Clock;
use crate::config::Settings;
use crate::db::Db;
use crate::domain::ids::{DraftId, JobId};
pub use crate::domain::inbound::Channel as Network;
use crate::error::Result;
use chrono::{DateTime, Utc};
use std::sync::Arc;

/// A reply ready to go out.
#[derive(Debug, Clone)]
pub struct OutgoingReply {
    /// The post job's id: the same across attempts, so it is the idempotency key.
    pub job_id: JobId,
    pub draft_id: DraftId,
    /// The network's id of the customer's post being answered (the inbound `external_id`).
    pub in_reply_to: String,
    pub text: String,
    /// Who may see the post being answered (Mastodon's visibility), which the reply keeps.
    pub visibility: Option<String>,
    /// Whether an earlier attempt may have posted it already.
    pub is_retry: bool,
    /// When the job was enqueued: no earlier post can be this reply.
    pub since: DateTime<Utc>,
}

/// What the network says about a posted reply.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PostReceipt {
    pub post_id: String,
    /// The post's address for people, when the network gives one.
    pub url: Option<String>,
}

/// Why a post did not go out.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ChannelError {
    /// Worth trying again later (network, server error, a post that may or may not exist).
    #[error("temporary failure: {0}")]
    Temporary(String),
    /// The network asked us to wait until then (a rate limit); nothing was posted.
    #[error("rate limited until {until}: {message}")]
    RateLimited {
        message: String,
        until: DateTime<Utc>,
    },
    /// Will fail the same way again (refused content, bad credentials, no account).
    #[error("refused: {0}")]
    Refused(String),
}

/// A network a reply can be posted to.
pub trait Channel: Send + Sync {
    /// The network this channel posts to.
    fn network(&self) -> Network;

    /// Posts `reply` as a reply to `reply.in_reply_to`, or, when `reply.is_retry`, returns
    /// the post an earlier attempt already made for it. Blocking (it runs on the worker's
    /// blocking thread); bounded by the channel's own timeouts.
    fn post(&self, reply: &OutgoingReply) -> std::result::Result<PostReceipt, ChannelError>;

    /// Whether this instance may post on the channel now. A worker leaves the replies of a
    /// channel that is not available to another instance, for which it is. Asked before
    /// every look for work, so it must be cheap (one small read at most).
    fn available(&self) -> bool {
        true
    }
}

/// A customer's post as a network hands it over, to become an inbound message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mention {
    pub network: Network,
    /// The network's id of the post (the inbound `external_id`).
    pub post_id: String,
    /// The author's handle as the channel writes it (`name` on X, `user@domain` on Mastodon).
    pub author_handle: String,
    /// The network's id of the author (stable across renames).
    pub author_id: String,
    /// The text the customer wrote, as plain text.
    pub text: String,
    pub created_at: Option<DateTime<Utc>>,
    /// Mastodon's visibility of the post.
    pub visibility: Option<String>,
}

/// A network whose new mentions can be read.
pub trait Ingest: Send + Sync {
    fn network(&self) -> Network;

    /// How long to wait between polls; `None`: polling is off.
    fn poll_every(&self) -> Option<std::time::Duration>;

    /// Reads the mentions after the cursor stored in the database, oldest first, and the
    /// cursor to store once they are all recorded (so a restart neither misses nor repeats
    /// one). Blocking.
    fn mentions_since(&self, cursor: Option<&str>) -> std::result::Result<Batch, ChannelError>;
}

/// One poll's mentions and the cursor after them.
#[derive(Debug, Clone, Default)]
pub struct Batch {
    pub mentions: Vec<Mention>,
    /// `None`: nothing new, keep the old cursor.
    pub cursor: Option<String>,
}

/// The channels of this instance: the log channel, and every network with an account.
#[derive(Clone)]
pub struct Channels {
    log: Arc<dyn Channel>,
    networks: Vec<Arc<dyn Channel>>,
    ingest: Vec<Arc<dyn Ingest>>,
}

/// Where a reply on a network goes.
pub enum Route<'a> {
    Post(&'a dyn Channel),
    /// Fails closed: the message's network has no account here while others do.
    NoAccount(String),
}

impl Channels {
    /// The channels the settings configure. The registry: one line per network.
    ///
    /// Errors: a log file that cannot be opened or recorded, a network client that cannot
    /// be built.
    pub fn from_settings(settings: &Settings, db: &Db, clock: &Clock) -> Result<Channels> {
        let log = log::LogChannel::open(settings.post_log.clone(), db, clock)?;
        let mut channels = Channels::new(Arc::new(log), Vec::new());
        if let Some(x) = x::XChannel::from_settings(settings, db, clock)? {
            let x = Arc::new(x);
            channels.networks.push(x.clone());
            channels.ingest.push(x);
        }
        if let Some(m) = mastodon::MastodonChannel::from_settings(settings, clock)? {
            let m = Arc::new(m);
            channels.networks.push(m.clone());
            channels.ingest.push(m);
        }
        Ok(channels)
    }

    /// A registry with `log` standing in for the log channel and these networks (tests).
    pub fn new(log: Arc<dyn Channel>, networks: Vec<Arc<dyn Channel>>) -> Channels {
        Channels {
            log,
            networks,
            ingest: Vec::new(),
        }
    }

    /// The channel a reply to a message on `network` goes out on (spec/api.md "Channels"):
    /// the network's own when it has an account here; the log channel for `log` messages,
    /// and for every message when no network account is configured at all (the quick
    /// start); otherwise none, which fails closed.
    pub fn route(&self, network: Network) -> Route<'_> {
        if let Some(c) = self.networks.iter().find(|c| c.network() == network) {
            return Route::Post(c.as_ref());
        }
        if network == Network::Log || self.networks.is_empty() {
            return Route::Post(self.log.as_ref());
        }
        Route::NoAccount(format!(
            "no {} account is configured on this service, so a reply to this message cannot be posted",
            network.as_str()
        ))
    }

    /// The networks whose replies this instance must leave to others now: those whose
    /// channel is not [`Channel::available`] here (the log channel's, when this instance's
    /// post log is not the file the database records).
    pub fn unavailable(&self) -> Vec<&'static str> {
        let mut asked: Vec<(Network, bool)> = Vec::new();
        Network::ALL
            .into_iter()
            .filter(|n| match self.route(*n) {
                Route::Post(c) => {
                    // Ask each channel once, however many networks it stands in for.
                    let known = asked.iter().find(|(net, _)| *net == c.network());
                    let up = known.map_or_else(|| c.available(), |(_, up)| *up);
                    if known.is_none() {
                        asked.push((c.network(), up));
                    }
                    !up
                }
                Route::NoAccount(_) => false,
            })
            .map(Network::as_str)
            .collect()
    }

    /// The networks whose replies go to the log channel on this instance: `log`, and every
    /// network when none has an account.
    pub fn routed_to_log(&self) -> Vec<Network> {
        Network::ALL
            .into_iter()
            .filter(|n| matches!(self.route(*n), Route::Post(c) if c.network() == Network::Log))
            .collect()
    }

    /// The networks whose mentions are read.
    pub fn ingest(&self) -> &[Arc<dyn Ingest>] {
        &self.ingest
    }

    /// Whether any network account is configured.
    pub fn has_networks(&self) -> bool {
        !self.networks.is_empty()
    }
}
