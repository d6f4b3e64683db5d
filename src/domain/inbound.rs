//! Inbound messages and the reply deadline (spec/api.md "Inbound messages and customers").

use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};
use std::str::FromStr;

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

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum InboundState {
    /// Waiting for a reply (where every message starts).
    #[default]
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

impl std::fmt::Display for InboundState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl TryFrom<String> for InboundState {
    type Error = String;
    fn try_from(s: String) -> Result<Self, String> {
        s.parse()
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

/// The networks a message can come from (spec/api.md: `x`, `mastodon` or `log`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Channel {
    X,
    Mastodon,
    /// Messages entered by hand or from an integration; replies go to the post log.
    Log,
}

impl Channel {
    pub const ALL: [Channel; 3] = [Channel::X, Channel::Mastodon, Channel::Log];

    pub fn as_str(self) -> &'static str {
        match self {
            Channel::X => "x",
            Channel::Mastodon => "mastodon",
            Channel::Log => "log",
        }
    }

    /// A handle in its canonical form on this channel, or `None` if it does not follow the
    /// channel's syntax. Compared case-insensitively, so stored lower case, without the
    /// leading `@`:
    /// - X: 1 to 15 letters, digits or `_`;
    /// - Mastodon: `user@domain`, the user part letters, digits or `_` with `.` or `-`
    ///   inside (1 to 30), the domain a host name;
    /// - log: up to 50 letters, digits, `_`, `.`, `-` or `@`.
    pub fn normalize_handle(self, handle: &str) -> Option<String> {
        let h = handle.trim();
        let h = h.strip_prefix('@').unwrap_or(h).to_lowercase();
        let word = |s: &str, max: usize| {
            !s.is_empty()
                && s.chars().count() <= max
                && s.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
        };
        let valid = match self {
            Channel::X => word(&h, 15),
            // Mastodon: letters, digits and `_`, with `.` or `-` inside (`jean-luc`, `a.b`).
            Channel::Mastodon => h.split_once('@').is_some_and(|(user, domain)| {
                !user.is_empty()
                    && user.chars().count() <= 30
                    && user
                        .chars()
                        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'))
                    && !user.starts_with(['.', '-'])
                    && !user.ends_with(['.', '-'])
                    && domain.len() <= 253
                    && domain.contains('.')
                    && domain.split('.').all(|label| {
                        !label.is_empty()
                            && label.len() <= 63
                            && !label.starts_with('-')
                            && !label.ends_with('-')
                            && label.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
                    })
            }),
            Channel::Log => {
                !h.is_empty()
                    && h.chars().count() <= 50
                    && h.chars()
                        .all(|c| c.is_alphanumeric() || matches!(c, '_' | '.' | '-' | '@'))
            }
        };
        valid.then_some(h)
    }

    /// What a handle on this channel looks like, for error messages.
    pub fn handle_syntax(self) -> &'static str {
        match self {
            Channel::X => "an X handle is 1 to 15 letters, digits or _",
            Channel::Mastodon => "a Mastodon handle is user@domain",
            Channel::Log => "a handle is up to 50 letters, digits, _, ., - or @",
        }
    }
}

impl FromStr for Channel {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "x" => Ok(Channel::X),
            "mastodon" => Ok(Channel::Mastodon),
            "log" => Ok(Channel::Log),
            other => Err(format!(
                "unknown channel {:?} (channels: x, mastodon, log)",
                other.chars().take(32).collect::<String>()
            )),
        }
    }
}

impl std::fmt::Display for Channel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A handle typed without a channel (a search): without `@`, lower case.
pub fn search_form(handle: &str) -> String {
    let h = handle.trim();
    h.strip_prefix('@').unwrap_or(h).to_lowercase()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn handles_follow_each_channels_syntax_case_insensitively() {
        let x = |h| Channel::X.normalize_handle(h);
        assert_eq!(x("@ExampleCare").as_deref(), Some("examplecare"));
        assert_eq!(x("examplecare").as_deref(), Some("examplecare"));
        assert_eq!(x("@"), None);
        assert_eq!(x("a b"), None);
        assert_eq!(x("a.b"), None);
        assert_eq!(x("sixteen_letters_"), None);
        let m = |h| Channel::Mastodon.normalize_handle(h);
        assert_eq!(
            m("@Ana@Mastodon.Social").as_deref(),
            Some("ana@mastodon.social")
        );
        assert_eq!(m("ana"), None);
        assert_eq!(m("ana@localhost"), None);
        // Mastodon allows `.` and `-` inside a user part, not at its ends.
        assert_eq!(
            m("jean-luc@mastodon.social").as_deref(),
            Some("jean-luc@mastodon.social")
        );
        assert_eq!(
            m("a.b@mastodon.social").as_deref(),
            Some("a.b@mastodon.social")
        );
        assert_eq!(m("-ana@mastodon.social"), None);
        assert_eq!(m("ana.@mastodon.social"), None);
        assert_eq!(m("ana@-bad.social"), None);
        assert_eq!(
            Channel::Log.normalize_handle("@Some.One").as_deref(),
            Some("some.one")
        );
        assert!("twitter".parse::<Channel>().is_err());
        assert_eq!("mastodon".parse::<Channel>(), Ok(Channel::Mastodon));
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
}
