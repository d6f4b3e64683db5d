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

/// How far ahead of our clock a `received_at` may be (clocks differ a little).
pub const CLOCK_SKEW: Duration = Duration::minutes(5);

/// The first day a post can have been made on `channel`: X (then Twitter) opened on
/// 2006-03-21, Mastodon's first release was on 2016-03-16; any other channel, the first day
/// the API accepts (2000-01-01).
pub fn channel_opened(channel: &str) -> DateTime<Utc> {
    let day = match channel {
        "x" => chrono::NaiveDate::from_ymd_opt(2006, 3, 21),
        "mastodon" => chrono::NaiveDate::from_ymd_opt(2016, 3, 16),
        _ => None,
    };
    day.and_then(|d| d.and_hms_opt(0, 0, 0))
        .map(|t| t.and_utc())
        .unwrap_or_else(super::time::earliest)
}

/// Whether a post on `channel` can have been received at `received_at`, given that it is
/// `now`: not before the channel opened, not more than [`CLOCK_SKEW`] in the future.
///
/// Errors: a message for a person saying which bound was crossed.
pub fn check_received_at(
    channel: &str,
    received_at: DateTime<Utc>,
    now: DateTime<Utc>,
) -> Result<(), String> {
    let opened = channel_opened(channel);
    if received_at < opened {
        return Err(format!(
            "received_at {} is before the {channel} channel existed ({})",
            super::time::format_utc(received_at),
            opened.date_naive()
        ));
    }
    if received_at > now + CLOCK_SKEW {
        return Err(format!(
            "received_at {} is in the future (more than 5 minutes ahead of {})",
            super::time::format_utc(received_at),
            super::time::format_utc(now)
        ));
    }
    Ok(())
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
    fn received_at_lies_between_the_channel_opening_and_five_minutes_ahead() {
        let now = Utc::now();
        assert!(check_received_at("x", now, now).is_ok());
        assert!(check_received_at("x", now + Duration::minutes(5), now).is_ok());
        assert!(check_received_at("x", now + Duration::minutes(6), now).is_err());
        let before_x = channel_opened("x") - Duration::seconds(1);
        assert!(check_received_at("x", before_x, now)
            .unwrap_err()
            .contains("before the x channel existed"));
        assert!(check_received_at("log", before_x, now).is_ok());
        assert!(check_received_at("mastodon", channel_opened("x"), now).is_err());
    }

    #[test]
    fn deadline_is_two_hours_without_business_hours() {
        let t = Utc::now();
        assert_eq!(due_at(t) - t, Duration::hours(2));
    }
}
