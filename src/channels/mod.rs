//! Where approved replies go. A channel posts one reply and returns the channel's post id.
//!
//! Exactly once: the posting worker may call [`Channel::post`] again for the same reply if
//! it crashed after posting but before recording the result. So every channel must be
//! idempotent on [`OutgoingReply::idempotency_key`] when `is_retry` is set: find the post it
//! already made and return its id instead of posting again.

pub mod log;

/// A reply ready to go out.
#[derive(Debug, Clone)]
pub struct OutgoingReply {
    /// Stable across attempts (the post job's id).
    pub idempotency_key: String,
    pub draft_id: String,
    /// The channel's id of the customer's post being answered (the inbound `external_id`).
    pub in_reply_to: String,
    pub text: String,
    /// Whether an earlier attempt may have posted it already.
    pub is_retry: bool,
}

/// What the channel says about a posted reply.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PostReceipt {
    pub post_id: String,
}

#[derive(Debug, thiserror::Error)]
pub enum ChannelError {
    /// Worth trying again later (network, rate limit, server error).
    #[error("temporary failure: {0}")]
    Temporary(String),
    /// Will fail the same way again (refused content, bad credentials).
    #[error("refused: {0}")]
    Refused(String),
}

pub trait Channel: Send + Sync {
    /// The name recorded with each post (`log`, `x`).
    fn name(&self) -> &'static str;
    fn post(&self, reply: &OutgoingReply) -> Result<PostReceipt, ChannelError>;
}
