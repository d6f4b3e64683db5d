//! The shapes the API returns (spec/api.md), built from stored rows. Times are RFC 3339 UTC.

use crate::db::customers::HandleRow;
use crate::db::drafts::{DraftRow, ReviewRow, RevisionRow};
use crate::db::inbound::InboundRow;
use crate::db::jobs::JobRow;
use crate::domain::hours::Deadline;
use crate::domain::ids::{CustomerId, DraftId, InboundId, ReviewId, UserId};
use crate::domain::inbound::InboundState;
use crate::domain::jobs::JobState;
use crate::domain::workflow::{Decision, DraftState};
use crate::error::{Error, Result};
use crate::policy::CheckReport;
use chrono::NaiveDateTime;
use serde::Serialize;
use utoipa::ToSchema;

pub fn rfc3339(t: NaiveDateTime) -> String {
    crate::domain::time::format_utc(t.and_utc())
}

pub fn parse_report(stored: &str) -> Result<CheckReport> {
    serde_json::from_str(stored).map_err(|e| Error::Internal(format!("stored check report: {e}")))
}

#[derive(Debug, Serialize, ToSchema)]
pub struct InboundView {
    pub id: InboundId,
    pub channel: String,
    pub external_id: String,
    pub customer_id: CustomerId,
    pub author_handle: String,
    pub text: String,
    pub received_at: String,
    /// The reply deadline (business time after receipt).
    pub due_at: String,
    /// Where the message stands against `due_at`; frozen once it is answered or closed.
    pub deadline: Deadline,
    pub state: InboundState,
    pub closed_reason: Option<String>,
}

impl InboundView {
    /// The message as shown at `now`.
    pub fn build(r: InboundRow, now: NaiveDateTime) -> Self {
        let at = r.settled_at.map_or(now, |s| s.min(now));
        let deadline = Deadline::at(at.and_utc(), r.at_risk_at.and_utc(), r.due_at.and_utc());
        InboundView {
            deadline,
            id: r.id,
            channel: r.channel,
            external_id: r.external_id,
            customer_id: r.customer_id,
            author_handle: r.author_handle,
            text: r.text,
            received_at: rfc3339(r.received_at),
            due_at: rfc3339(r.due_at),
            state: r.state,
            closed_reason: r.closed_reason,
        }
    }
}

/// One inbound message with its drafts (`GET /inbound/{id}`).
#[derive(Debug, Serialize, ToSchema)]
pub struct InboundDetail {
    #[serde(flatten)]
    pub message: InboundView,
    /// Every draft reply to it, oldest first.
    pub drafts: Vec<DraftSummary>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct HandleView {
    pub channel: String,
    pub handle: String,
    pub external_user_id: Option<String>,
}

impl From<HandleRow> for HandleView {
    fn from(h: HandleRow) -> Self {
        HandleView {
            channel: h.channel,
            handle: h.handle,
            external_user_id: h.external_user_id,
        }
    }
}

/// A customer record (spec/api.md "Inbound messages and customers").
#[derive(Debug, Serialize, ToSchema)]
pub struct CustomerView {
    pub id: CustomerId,
    /// The customer's reference in an external CRM, when linked.
    pub crm_ref: Option<String>,
    pub created_at: String,
    pub handles: Vec<HandleView>,
    /// Everything that happened with this customer, oldest first, one page of it.
    pub history: Vec<HistoryItem>,
    /// The cursor of the next page of `history` (pass it as `after`), or null at the end.
    pub next: Option<String>,
    /// Present when the id asked for was merged away: the survivor, whose record this is.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub merged_into: Option<CustomerId>,
}

/// What a history item records.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum HistoryKind {
    /// A message from the customer (`at`: received).
    #[default]
    Inbound,
    /// A draft reply to one of their messages (`at`: created).
    Draft,
    /// A review of such a draft.
    Review,
    /// A reply posted to them (`id`: the draft; `at`: posted).
    Post,
}

impl HistoryKind {
    fn as_str(self) -> &'static str {
        match self {
            HistoryKind::Inbound => "inbound",
            HistoryKind::Draft => "draft",
            HistoryKind::Review => "review",
            HistoryKind::Post => "post",
        }
    }
}

/// One event of a customer's history.
#[derive(Debug, Clone, Default, Serialize, ToSchema)]
pub struct HistoryItem {
    pub kind: HistoryKind,
    /// The id of the item of this kind (for `post`, the draft's).
    pub id: uuid::Uuid,
    /// RFC 3339.
    pub at: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub channel: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub text: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub state: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub inbound_id: Option<InboundId>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub draft_id: Option<DraftId>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub revision: Option<i32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub decision: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub post_id: Option<String>,
}

impl HistoryItem {
    /// The order of a history: time, then kind, then id. (`at` is fixed-width RFC 3339
    /// UTC, so its text sorts as time.)
    pub fn sort_key(&self) -> (String, HistoryKind, uuid::Uuid) {
        (self.at.clone(), self.kind, self.id)
    }

    /// The `next` cursor after this item: `AT~KIND~ID`.
    pub fn cursor(&self) -> String {
        format!("{}~{}~{}", self.at, self.kind.as_str(), self.id)
    }

    /// The sort key a cursor names, if it is one.
    pub fn parse_cursor(cursor: &str) -> Option<(String, HistoryKind, uuid::Uuid)> {
        let mut parts = cursor.splitn(3, '~');
        let (at, kind, id) = (parts.next()?, parts.next()?, parts.next()?);
        crate::domain::time::ApiTime::parse(at).ok()?;
        let kind = [
            HistoryKind::Inbound,
            HistoryKind::Draft,
            HistoryKind::Review,
            HistoryKind::Post,
        ]
        .into_iter()
        .find(|k| k.as_str() == kind)?;
        let id = uuid::Uuid::parse_str(id).ok()?;
        Some((at.to_string(), kind, id))
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct RevisionView {
    pub revision: i32,
    pub text: String,
    pub author_id: UserId,
    pub created_at: String,
    pub check: CheckReport,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ReviewView {
    pub id: ReviewId,
    pub revision: i32,
    pub reviewer_id: UserId,
    pub decision: Decision,
    pub comment: String,
    pub created_at: String,
    /// For an approval: the step of the route it counted for (1-based).
    pub step: Option<i32>,
}

impl From<ReviewRow> for ReviewView {
    fn from(r: ReviewRow) -> Self {
        ReviewView {
            id: r.id,
            revision: r.revision,
            reviewer_id: r.reviewer_id,
            decision: r.decision,
            comment: r.comment,
            created_at: rfc3339(r.created_at),
            step: r
                .step
                .map(|s| s + 1)
                .or((r.decision == Decision::Approve).then_some(1)),
        }
    }
}

/// The posting result of an approved draft.
#[derive(Debug, Serialize, ToSchema)]
pub struct PostingView {
    /// The inbound message's channel. The reply goes out there, or on the `log` channel
    /// when no network account is configured; `post.succeeded` names the one that posted.
    pub channel: crate::domain::inbound::Channel,
    /// The post job's state: `pending` while attempts remain.
    pub job_state: JobState,
    pub attempts: i32,
    pub post_id: Option<String>,
    /// The post's address on its network, when it has one.
    pub post_url: Option<String>,
    pub posted_at: Option<String>,
    pub last_error: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct DraftView {
    pub id: DraftId,
    pub inbound_id: InboundId,
    pub author_id: UserId,
    pub state: DraftState,
    pub revision: i32,
    pub text: String,
    /// The latest check report (spec/checks.md).
    pub check: CheckReport,
    /// How many different reviewers must approve the current revision.
    pub approvals_needed: i32,
    pub created_at: String,
    pub updated_at: String,
    pub revisions: Vec<RevisionView>,
    pub reviews: Vec<ReviewView>,
    pub posting: Option<PostingView>,
    /// The review route it takes (set when it is submitted): its steps, the current one,
    /// who may act on it and who did.
    pub route: Option<super::review_route::RouteView>,
}

impl DraftView {
    pub fn build(
        d: DraftRow,
        revisions: Vec<RevisionRow>,
        reviews: Vec<ReviewRow>,
        job: Option<JobRow>,
        route: Option<super::review_route::RouteView>,
    ) -> Result<Self> {
        let revisions = revisions
            .into_iter()
            .map(|r| {
                Ok(RevisionView {
                    revision: r.revision,
                    check: parse_report(&r.check_report)?,
                    text: r.text,
                    author_id: r.author_id,
                    created_at: rfc3339(r.created_at),
                })
            })
            .collect::<Result<Vec<_>>>()?;
        let posting = job
            .map(|j| {
                let job: crate::app::posting::PostReply = serde_json::from_str(&j.payload)
                    .map_err(|e| Error::Internal(format!("post job {}: {e}", j.id)))?;
                Ok::<_, Error>((j, job.channel))
            })
            .transpose()?
            .map(|(j, channel)| PostingView {
                channel,
                job_state: j.state,
                attempts: j.attempts,
                post_id: d.post_id.clone(),
                post_url: d.post_url.clone(),
                posted_at: d.posted_at.map(rfc3339),
                last_error: j.last_error,
            });
        Ok(DraftView {
            check: parse_report(&d.check_report)?,
            id: d.id,
            inbound_id: d.inbound_id,
            author_id: d.author_id,
            state: d.state,
            revision: d.revision,
            text: d.text,
            approvals_needed: d.approvals_needed,
            created_at: rfc3339(d.created_at),
            updated_at: rfc3339(d.updated_at),
            revisions,
            reviews: reviews.into_iter().map(Into::into).collect(),
            posting,
            route,
        })
    }
}

/// A draft in a list: without its history.
#[derive(Debug, Serialize, ToSchema)]
pub struct DraftSummary {
    pub id: DraftId,
    pub inbound_id: InboundId,
    pub author_id: UserId,
    pub state: DraftState,
    pub revision: i32,
    pub text: String,
    pub verdict: crate::policy::Verdict,
    pub approvals_needed: i32,
    pub updated_at: String,
}

impl DraftSummary {
    pub fn build(d: DraftRow) -> Result<Self> {
        let verdict = parse_report(&d.check_report)?.verdict;
        Ok(DraftSummary {
            id: d.id,
            inbound_id: d.inbound_id,
            author_id: d.author_id,
            state: d.state,
            revision: d.revision,
            text: d.text,
            verdict,
            approvals_needed: d.approvals_needed,
            updated_at: rfc3339(d.updated_at),
        })
    }
}

/// One audit entry as auditors see it: the stored body's fields, plus the body verbatim
/// and its leaf hash so a client can check the hash itself.
#[derive(Debug, Serialize, ToSchema)]
pub struct AuditEntryView {
    pub seq: i64,
    pub at: String,
    pub actor: String,
    pub action: String,
    pub subject: Option<String>,
    #[schema(value_type = Object)]
    pub data: serde_json::Value,
    /// The canonical JSON that is hashed (RFC 8785).
    pub body: String,
    /// SHA-256(0x00 || body), hex.
    pub leaf_hash: String,
}
