//! The life of a background job (posting a reply, sending a mail): `pending` until a run
//! ends it as `done`, `failed` (attempts ran out, or the work can never succeed) or
//! `cancelled` (the work no longer applies, e.g. the draft is no longer approved).

use chrono::Duration;
use serde::{Deserialize, Serialize};

#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    Hash,
    Serialize,
    Deserialize,
    strum::EnumString,
    strum::IntoStaticStr,
    strum::Display,
    utoipa::ToSchema,
)]
#[serde(rename_all = "snake_case")]
#[strum(serialize_all = "snake_case")]
pub enum JobState {
    Pending,
    Done,
    Failed,
    Cancelled,
}

impl JobState {
    pub fn as_str(self) -> &'static str {
        self.into()
    }
}

/// The wait before retrying after the `attempt`-th failed attempt (1-based), before jitter:
/// 5 s, 10 s, 20 s … doubling up to 10 minutes.
pub fn backoff(attempt: i32) -> Duration {
    let doublings = attempt.clamp(1, 16) - 1;
    Duration::seconds((5i64 << doublings).min(600))
}

/// `backoff` with "equal jitter": a uniformly random wait between half of it and all of it,
/// so jobs that failed together (an SMTP server down) do not all retry in the same second.
/// `unit` is a random number in [0, 1).
pub fn jittered_backoff(attempt: i32, unit: f64) -> Duration {
    let full = backoff(attempt).num_milliseconds();
    let half = full / 2;
    let extra = (half as f64 * unit.clamp(0.0, 1.0)) as i64;
    Duration::milliseconds(half + extra)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_and_caps_at_ten_minutes() {
        assert_eq!(backoff(1), Duration::seconds(5));
        assert_eq!(backoff(2), Duration::seconds(10));
        assert_eq!(backoff(8), Duration::seconds(600));
        assert_eq!(backoff(40), Duration::seconds(600));
    }

    #[test]
    fn jitter_stays_between_half_and_the_whole_wait() {
        assert_eq!(jittered_backoff(3, 0.0), Duration::seconds(10));
        assert!(jittered_backoff(3, 0.999) <= Duration::seconds(20));
        assert!(jittered_backoff(3, 0.5) > Duration::seconds(10));
    }

    #[test]
    fn states_read_back_from_their_stored_names() {
        for s in [
            JobState::Pending,
            JobState::Done,
            JobState::Failed,
            JobState::Cancelled,
        ] {
            assert_eq!(s.as_str().parse::<JobState>(), Ok(s));
        }
        assert!("refused".parse::<JobState>().is_err());
    }
}
