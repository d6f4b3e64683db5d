//! The life of a draft reply (spec/api.md "Drafts and reviews"): its states, the one table of
//! allowed moves, and the four-eyes rule. Any move not in [`DraftState::apply`] is refused,
//! which the API answers with 409.

use crate::domain::ids::UserId;
use crate::policy::Verdict;
use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum DraftState {
    Draft,
    PendingReview,
    ChangesRequested,
    Rejected,
    Approved,
    Posted,
    PostFailed,
    /// Another draft for the message was approved, or the message was closed: final.
    Superseded,
}

/// What can happen to a draft.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DraftEvent {
    /// The author changes the text (a new revision).
    Revise,
    /// The author hands the draft to reviewers.
    Submit,
    /// A reviewer approves; `complete` when this approval is the last one needed.
    Approve {
        complete: bool,
    },
    Reject,
    RequestChanges,
    /// The channel accepted the reply.
    PostSucceeded,
    /// The channel refused for good, or the attempts ran out. (A temporary failure that
    /// will be retried leaves the draft `approved`.)
    PostFailed,
    /// The text about to be posted is not the text approved: back to review, approvals void.
    PostRefused,
    /// The checks re-run before posting now block the reply: back to its author.
    PostBlocked,
    /// A reviewer sends a `post_failed` draft back to posting.
    Retry,
    /// The approval was not posted within its time to live: back to review, approvals void.
    Expire,
    /// … and the checks re-run at that moment block it: back to its author.
    ExpireBlocked,
    /// Another draft for the same message was approved, or the message was closed.
    Supersede,
}

impl DraftState {
    pub const ALL: [DraftState; 8] = [
        DraftState::Draft,
        DraftState::PendingReview,
        DraftState::ChangesRequested,
        DraftState::Rejected,
        DraftState::Approved,
        DraftState::Posted,
        DraftState::PostFailed,
        DraftState::Superseded,
    ];

    /// The table of moves: the state after `event`, or `None` when the move is not allowed.
    pub fn apply(self, event: DraftEvent) -> Option<DraftState> {
        use DraftEvent as E;
        use DraftState as S;
        match (self, event) {
            (S::Draft | S::ChangesRequested, E::Revise) => Some(S::Draft),
            (S::Draft, E::Submit) => Some(S::PendingReview),
            (S::PendingReview, E::Approve { complete: false }) => Some(S::PendingReview),
            (S::PendingReview, E::Approve { complete: true }) => Some(S::Approved),
            (S::PendingReview, E::Reject) => Some(S::Rejected),
            (S::PendingReview, E::RequestChanges) => Some(S::ChangesRequested),
            (S::Approved, E::PostSucceeded) => Some(S::Posted),
            (S::Approved, E::PostFailed) => Some(S::PostFailed),
            (S::Approved, E::PostRefused) => Some(S::PendingReview),
            (S::Approved, E::PostBlocked) => Some(S::ChangesRequested),
            (S::PostFailed, E::Retry) => Some(S::Approved),
            (S::Approved, E::Expire) => Some(S::PendingReview),
            (S::Approved, E::ExpireBlocked) => Some(S::ChangesRequested),
            (S::Draft | S::PendingReview | S::ChangesRequested, E::Supersede) => {
                Some(S::Superseded)
            }
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            DraftState::Draft => "draft",
            DraftState::PendingReview => "pending_review",
            DraftState::ChangesRequested => "changes_requested",
            DraftState::Rejected => "rejected",
            DraftState::Approved => "approved",
            DraftState::Posted => "posted",
            DraftState::PostFailed => "post_failed",
            DraftState::Superseded => "superseded",
        }
    }
}

impl fmt::Display for DraftState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown draft state {0:?} (states: draft, pending_review, changes_requested, rejected, approved, posted, post_failed, superseded)")]
pub struct UnknownState(pub String);

impl TryFrom<String> for DraftState {
    type Error = UnknownState;
    fn try_from(s: String) -> Result<Self, UnknownState> {
        s.parse()
    }
}

impl FromStr for DraftState {
    type Err = UnknownState;
    fn from_str(s: &str) -> Result<Self, UnknownState> {
        DraftState::ALL
            .into_iter()
            .find(|st| st.as_str() == s)
            .ok_or_else(|| UnknownState(s.to_string()))
    }
}

/// A reviewer's decision on one revision.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Decision {
    Approve,
    Reject,
    RequestChanges,
}

impl Decision {
    pub fn as_str(self) -> &'static str {
        match self {
            Decision::Approve => "approve",
            Decision::Reject => "reject",
            Decision::RequestChanges => "request_changes",
        }
    }
}

impl TryFrom<String> for Decision {
    type Error = String;
    fn try_from(s: String) -> Result<Self, String> {
        s.parse()
    }
}

impl FromStr for Decision {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        [
            Decision::Approve,
            Decision::Reject,
            Decision::RequestChanges,
        ]
        .into_iter()
        .find(|d| d.as_str() == s)
        .ok_or_else(|| format!("unknown decision {s:?}"))
    }
}

/// How many different reviewers must approve a draft with this verdict (spec/checks.md:
/// `escalate` needs two, neither of them its author).
pub fn approvals_needed(verdict: Verdict) -> u32 {
    match verdict {
        Verdict::Escalate => 2,
        Verdict::Pass | Verdict::Block => 1,
    }
}

/// The four-eyes rule: nobody reviews a draft they wrote or revised, whatever their roles.
pub fn may_review(reviewer: UserId, writers: &[UserId]) -> bool {
    !writers.contains(&reviewer)
}

#[cfg(test)]
mod tests {
    use super::*;
    use DraftEvent as E;
    use DraftState as S;

    const EVENTS: [DraftEvent; 14] = [
        E::Revise,
        E::Submit,
        E::Approve { complete: false },
        E::Approve { complete: true },
        E::Reject,
        E::RequestChanges,
        E::PostSucceeded,
        E::PostFailed,
        E::PostRefused,
        E::PostBlocked,
        E::Retry,
        E::Expire,
        E::ExpireBlocked,
        E::Supersede,
    ];

    #[test]
    fn the_happy_path() {
        let s = S::Draft.apply(E::Submit).unwrap();
        let s = s.apply(E::Approve { complete: false }).unwrap();
        assert_eq!(s, S::PendingReview);
        let s = s.apply(E::Approve { complete: true }).unwrap();
        assert_eq!(s.apply(E::PostSucceeded), Some(S::Posted));
    }

    #[test]
    fn a_failed_post_goes_back_to_posting_only_by_a_retry() {
        let failed = S::Approved.apply(E::PostFailed).unwrap();
        assert_eq!(failed, S::PostFailed);
        assert_eq!(failed.apply(E::PostSucceeded), None);
        assert_eq!(failed.apply(E::Retry), Some(S::Approved));
        for s in S::ALL {
            assert_eq!(s.apply(E::Retry).is_some(), s == S::PostFailed, "{s}");
        }
    }

    #[test]
    fn a_reply_the_checks_now_block_goes_back_to_its_author() {
        for s in S::ALL {
            let after = s.apply(E::PostBlocked);
            assert_eq!(after.is_some(), s == S::Approved, "{s}");
        }
        assert_eq!(S::Approved.apply(E::PostBlocked), Some(S::ChangesRequested));
    }

    #[test]
    fn only_an_approval_expires() {
        for s in S::ALL {
            assert_eq!(s.apply(E::Expire).is_some(), s == S::Approved, "{s}");
            assert_eq!(s.apply(E::ExpireBlocked).is_some(), s == S::Approved, "{s}");
        }
        assert_eq!(S::Approved.apply(E::Expire), Some(S::PendingReview));
        assert_eq!(
            S::Approved.apply(E::ExpireBlocked),
            Some(S::ChangesRequested)
        );
    }

    #[test]
    fn terminal_states_allow_nothing() {
        for e in EVENTS {
            assert_eq!(S::Posted.apply(e), None);
            assert_eq!(S::Rejected.apply(e), None);
            assert_eq!(S::Superseded.apply(e), None);
        }
    }

    #[test]
    fn only_a_pending_draft_can_be_reviewed_and_only_a_draft_submitted() {
        for s in S::ALL {
            for e in [E::Approve { complete: true }, E::Reject, E::RequestChanges] {
                assert_eq!(s.apply(e).is_some(), s == S::PendingReview, "{s} {e:?}");
            }
            assert_eq!(s.apply(E::Submit).is_some(), s == S::Draft);
        }
    }

    #[test]
    fn changes_requested_goes_back_to_draft_by_revising() {
        assert_eq!(S::ChangesRequested.apply(E::Revise), Some(S::Draft));
        assert_eq!(S::ChangesRequested.apply(E::Submit), None);
        assert_eq!(S::PendingReview.apply(E::Revise), None);
    }

    #[test]
    fn only_an_approved_reply_can_be_refused_at_posting_and_it_goes_back_to_review() {
        for s in S::ALL {
            let after = s.apply(E::PostRefused);
            if s == S::Approved {
                assert_eq!(after, Some(S::PendingReview), "{s}");
            } else {
                assert_eq!(after, None, "{s}");
            }
        }
    }

    #[test]
    fn only_drafts_not_yet_approved_are_superseded() {
        for s in S::ALL {
            let before_approval = matches!(s, S::Draft | S::PendingReview | S::ChangesRequested);
            assert_eq!(s.apply(E::Supersede).is_some(), before_approval, "{s}");
        }
    }

    #[test]
    fn four_eyes() {
        let (a, b) = (UserId::new(), UserId::new());
        assert!(!may_review(a, &[a]));
        assert!(!may_review(a, &[b, a]));
        assert!(may_review(b, &[a]));
    }

    #[test]
    fn states_round_trip_through_their_names() {
        for s in S::ALL {
            assert_eq!(s.as_str().parse::<S>(), Ok(s));
            assert_eq!(
                serde_json::to_value(s).unwrap(),
                serde_json::json!(s.as_str())
            );
        }
    }
}
