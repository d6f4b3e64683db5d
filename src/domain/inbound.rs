//! Inbound messages and the reply deadline (spec/api.md "Inbound messages and customers").

use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};
use std::str::FromStr;

/// How long a customer may wait for an answer. Until business hours are configured the
/// clock always runs, so the deadline is receipt + 2 hours.
pub const REPLY_WITHIN: Duration = Duration::hours(2);

pub fn due_at(received_at: DateTime<Utc>) -> DateTime<Utc> {
    received_at + REPLY_WITHIN
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum InboundState {
    /// Waiting for a reply.
    Open,
    /// A reply to it was posted.
    Answered,
    /// An agent closed it with a reason.
    Closed,
}

impl InboundState {
    pub fn as_str(self) -> &'static str {
        match self {
            InboundState::Open => "open",
            InboundState::Answered => "answered",
            InboundState::Closed => "closed",
        }
    }
}

impl FromStr for InboundState {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "open" => Ok(InboundState::Open),
            "answered" => Ok(InboundState::Answered),
            "closed" => Ok(InboundState::Closed),
            other => Err(format!(
                "unknown inbound state {other:?} (states: open, answered, closed)"
            )),
        }
    }
}

/// A channel's user handle in its canonical form: without the leading `@`, lower case
/// (X handles are case-insensitive), so `@ExampleCare` and `examplecare` are one customer.
pub fn normalize_handle(handle: &str) -> Option<String> {
    let h = handle.trim().trim_start_matches('@').to_lowercase();
    let valid = !h.is_empty()
        && h.chars().count() <= 50
        && h.chars()
            .all(|c| c.is_alphanumeric() || c == '_' || c == '.' || c == '-');
    valid.then_some(h)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn handles_are_case_insensitive_and_at_optional() {
        assert_eq!(
            normalize_handle("@ExampleCare").as_deref(),
            Some("examplecare")
        );
        assert_eq!(
            normalize_handle("examplecare").as_deref(),
            Some("examplecare")
        );
        assert_eq!(normalize_handle("@"), None);
        assert_eq!(normalize_handle("a b"), None);
    }

    #[test]
    fn deadline_is_two_hours_without_business_hours() {
        let t = Utc::now();
        assert_eq!(due_at(t) - t, Duration::hours(2));
    }
}
