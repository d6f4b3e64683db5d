//! Drafts, their revisions and reviews.

use super::schema::{draft_revisions, drafts, reviews};
use super::{fixed_update, on_backend, DbConn};
use crate::domain::ids::{DraftId, InboundId, ReviewId, UserId};
use crate::domain::routing::{Approval, Plan};
use crate::domain::workflow::{Decision, DraftState};
use crate::error::Result;
use chrono::NaiveDateTime;
use diesel::prelude::*;

#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = drafts)]
pub struct DraftRow {
    #[diesel(deserialize_as = String)]
    pub id: DraftId,
    #[diesel(deserialize_as = String)]
    pub inbound_id: InboundId,
    #[diesel(deserialize_as = String)]
    pub author_id: UserId,
    #[diesel(deserialize_as = String)]
    pub state: DraftState,
    pub revision: i32,
    pub text: String,
    pub check_report: String,
    pub approvals_needed: i32,
    pub post_id: Option<String>,
    pub posted_at: Option<NaiveDateTime>,
    pub post_error: Option<String>,
    pub created_at: NaiveDateTime,
    pub updated_at: NaiveDateTime,
    /// The posted reply's address on its network, when it has one.
    pub post_url: Option<String>,
    /// When it was last approved (or retried): the start of the approval's time to live.
    pub approved_at: Option<NaiveDateTime>,
    /// The review route it takes, set at submission: a [`Plan`] as JSON (read it with
    /// [`DraftRow::plan`]).
    pub route: Option<String>,
}

impl DraftRow {
    /// The route the draft takes through review. A draft submitted before routes existed
    /// has none stored: it takes the default route its `approvals_needed` implies.
    ///
    /// Errors: a stored plan that does not parse (never read as a laxer route).
    pub fn plan(&self) -> Result<Plan> {
        match &self.route {
            Some(json) => serde_json::from_str(json).map_err(|e| {
                crate::error::Error::Internal(format!("draft {}: stored route: {e}", self.id))
            }),
            None => Ok(Plan::default_for(if self.approvals_needed >= 2 {
                crate::policy::Verdict::Escalate
            } else {
                crate::policy::Verdict::Pass
            })),
        }
    }

    /// Stores `plan` as the draft's route, and its need as `approvals_needed`.
    pub fn set_plan(&mut self, plan: &Plan) -> Result<()> {
        self.route = Some(serde_json::to_string(plan)?);
        self.approvals_needed = plan.approvals_needed() as i32;
        Ok(())
    }
}

#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = draft_revisions)]
pub struct RevisionRow {
    #[diesel(deserialize_as = String)]
    pub draft_id: DraftId,
    pub revision: i32,
    pub text: String,
    #[diesel(deserialize_as = String)]
    pub author_id: UserId,
    pub check_report: String,
    pub created_at: NaiveDateTime,
}

#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = reviews)]
pub struct ReviewRow {
    #[diesel(deserialize_as = String)]
    pub id: ReviewId,
    #[diesel(deserialize_as = String)]
    pub draft_id: DraftId,
    pub revision: i32,
    #[diesel(deserialize_as = String)]
    pub reviewer_id: UserId,
    #[diesel(deserialize_as = String)]
    pub decision: Decision,
    pub comment: String,
    pub created_at: NaiveDateTime,
    /// Set when the approval stopped counting (the text changed behind the log).
    pub voided_at: Option<NaiveDateTime>,
    /// The step of the draft's route an approval counted for (0-based); `None` before
    /// routes existed (the default route's one step).
    pub step: Option<i32>,
}

pub fn insert(conn: &mut DbConn, d: &DraftRow) -> Result<()> {
    on_backend!(conn, c => diesel::insert_into(drafts::table)
        .values((
            drafts::id.eq(d.id.to_string()),
            drafts::inbound_id.eq(d.inbound_id.to_string()),
            drafts::author_id.eq(d.author_id.to_string()),
            drafts::state.eq(d.state.as_str()),
            drafts::revision.eq(d.revision),
            drafts::text.eq(&d.text),
            drafts::check_report.eq(&d.check_report),
            drafts::approvals_needed.eq(d.approvals_needed),
            drafts::created_at.eq(d.created_at),
            drafts::updated_at.eq(d.updated_at),
        ))
        .execute(c))?;
    Ok(())
}

pub fn insert_revision(conn: &mut DbConn, r: &RevisionRow) -> Result<()> {
    on_backend!(conn, c => diesel::insert_into(draft_revisions::table)
        .values((
            draft_revisions::draft_id.eq(r.draft_id.to_string()),
            draft_revisions::revision.eq(r.revision),
            draft_revisions::text.eq(&r.text),
            draft_revisions::author_id.eq(r.author_id.to_string()),
            draft_revisions::check_report.eq(&r.check_report),
            draft_revisions::created_at.eq(r.created_at),
        ))
        .execute(c))?;
    Ok(())
}

pub fn by_id(conn: &mut DbConn, id: DraftId) -> Result<Option<DraftRow>> {
    let id = id.to_string();
    Ok(on_backend!(conn, c => drafts::table
        .select(DraftRow::as_select())
        .filter(drafts::id.eq(&id))
        .get_result(c)
        .optional())?)
}

/// Saves a draft's mutable fields (state, text, revision, check, posting result).
pub fn update(conn: &mut DbConn, d: &DraftRow) -> Result<()> {
    let id = d.id.to_string();
    on_backend!(conn, c => fixed_update(
        drafts::table,
        drafts::id.eq(&id),
        (
            drafts::state.eq(d.state.as_str()),
            drafts::revision.eq(d.revision),
            drafts::text.eq(&d.text),
            drafts::check_report.eq(&d.check_report),
            drafts::approvals_needed.eq(d.approvals_needed),
            drafts::post_id.eq(&d.post_id),
            drafts::posted_at.eq(d.posted_at),
            drafts::post_error.eq(&d.post_error),
            drafts::post_url.eq(&d.post_url),
            drafts::approved_at.eq(d.approved_at),
            drafts::route.eq(&d.route),
            drafts::updated_at.eq(d.updated_at),
        ),
    )
    .execute(c))?;
    Ok(())
}

pub fn revisions(conn: &mut DbConn, draft_id: DraftId) -> Result<Vec<RevisionRow>> {
    Ok(on_backend!(conn, c => draft_revisions::table
        .select(RevisionRow::as_select())
        .filter(draft_revisions::draft_id.eq(draft_id.to_string()))
        .order(draft_revisions::revision.asc())
        .load(c))?)
}

/// Everyone who wrote or revised the draft (for the four-eyes rule). Fails (never drops
/// one) when a stored id does not parse.
pub fn writers(conn: &mut DbConn, draft_id: DraftId) -> Result<Vec<UserId>> {
    user_ids(on_backend!(conn, c => draft_revisions::table
        .select(draft_revisions::author_id)
        .filter(draft_revisions::draft_id.eq(draft_id.to_string()))
        .distinct()
        .load(c))?)
}

fn user_ids(raw: Vec<String>) -> Result<Vec<UserId>> {
    raw.into_iter()
        .map(|w| {
            w.parse()
                .map_err(|e| crate::error::Error::Internal(format!("a stored writer id: {e}")))
        })
        .collect()
}

/// Everyone who wrote or revised a draft for this inbound message.
pub fn writers_for_inbound(conn: &mut DbConn, inbound_id: InboundId) -> Result<Vec<UserId>> {
    user_ids(
        draft_revisions::table
            .inner_join(drafts::table)
            .select(draft_revisions::author_id)
            .filter(drafts::inbound_id.eq(inbound_id.to_string()))
            .distinct()
            .load(conn)?,
    )
}

pub fn reviews_of(conn: &mut DbConn, draft_id: DraftId) -> Result<Vec<ReviewRow>> {
    Ok(on_backend!(conn, c => reviews::table
        .select(ReviewRow::as_select())
        .filter(reviews::draft_id.eq(draft_id.to_string()))
        .order(reviews::id.asc())
        .load(c))?)
}

/// The approvals that count for `d`'s current revision (not voided), each with its step.
pub fn counted_approvals(reviews: &[ReviewRow], d: &DraftRow) -> Vec<Approval> {
    reviews
        .iter()
        .filter(|r| {
            r.revision == d.revision && r.decision == Decision::Approve && r.voided_at.is_none()
        })
        .map(|r| Approval {
            reviewer: r.reviewer_id,
            step: r.step.map_or(0, |s| s.max(0) as usize),
        })
        .collect()
}

/// A revision as a policy preview checks it: its text and the message it answers.
#[derive(Debug, Clone, Queryable)]
pub struct RevisionToCheck {
    pub draft_id: String,
    pub revision: i32,
    pub text: String,
    /// The inbound message's channel and author handle (its length rule and mention).
    pub channel: String,
    pub author_handle: String,
}

/// Every draft revision written at or after `since`, oldest first.
pub fn revisions_since(conn: &mut DbConn, since: NaiveDateTime) -> Result<Vec<RevisionToCheck>> {
    use super::schema::inbound_messages;
    Ok(draft_revisions::table
        .inner_join(drafts::table.inner_join(inbound_messages::table))
        .filter(draft_revisions::created_at.ge(since))
        .select((
            draft_revisions::draft_id,
            draft_revisions::revision,
            draft_revisions::text,
            inbound_messages::channel,
            inbound_messages::author_handle,
        ))
        .order((
            draft_revisions::created_at.asc(),
            draft_revisions::draft_id.asc(),
        ))
        .load(conn)?)
}

/// Voids the approvals of `revision` that still count (see [`ReviewRow::voided_at`]).
pub fn void_approvals(
    conn: &mut DbConn,
    draft_id: DraftId,
    revision: i32,
    at: NaiveDateTime,
) -> Result<usize> {
    Ok(diesel::update(
        reviews::table
            .filter(reviews::draft_id.eq(draft_id.to_string()))
            .filter(reviews::revision.eq(revision))
            .filter(reviews::decision.eq(Decision::Approve.as_str()))
            .filter(reviews::voided_at.is_null()),
    )
    .set(reviews::voided_at.eq(Some(at)))
    .execute(conn)?)
}

pub fn insert_review(conn: &mut DbConn, r: &ReviewRow) -> Result<()> {
    on_backend!(conn, c => diesel::insert_into(reviews::table)
        .values((
            reviews::id.eq(r.id.to_string()),
            reviews::draft_id.eq(r.draft_id.to_string()),
            reviews::revision.eq(r.revision),
            reviews::reviewer_id.eq(r.reviewer_id.to_string()),
            reviews::decision.eq(r.decision.as_str()),
            reviews::comment.eq(&r.comment),
            reviews::created_at.eq(r.created_at),
            reviews::step.eq(r.step),
        ))
        .execute(c))?;
    Ok(())
}

/// Drafts in `state`, oldest change first.
pub fn list_by_state(
    conn: &mut DbConn,
    state: Option<DraftState>,
    limit: i64,
) -> Result<Vec<DraftRow>> {
    let mut q = drafts::table.select(DraftRow::as_select()).into_boxed();
    if let Some(s) = state {
        q = q.filter(drafts::state.eq(s.as_str()));
    }
    Ok(q.order((drafts::updated_at.asc(), drafts::id.asc()))
        .limit(limit)
        .load(conn)?)
}

/// Drafts pending review after `after` (their `updated_at`, id) in that order, at most
/// `limit`: the review queue, a page at a time.
pub fn pending_after(
    conn: &mut DbConn,
    after: Option<(NaiveDateTime, DraftId)>,
    limit: i64,
) -> Result<Vec<DraftRow>> {
    let mut q = drafts::table
        .select(DraftRow::as_select())
        .filter(drafts::state.eq(DraftState::PendingReview.as_str()))
        .into_boxed();
    if let Some((at, id)) = after {
        q = q.filter(
            drafts::updated_at
                .gt(at)
                .or(drafts::updated_at.eq(at).and(drafts::id.gt(id.to_string()))),
        );
    }
    Ok(q.order((drafts::updated_at.asc(), drafts::id.asc()))
        .limit(limit)
        .load(conn)?)
}

/// Every draft for these inbound messages, oldest first.
pub fn for_inbounds(conn: &mut DbConn, inbound_ids: &[InboundId]) -> Result<Vec<DraftRow>> {
    if let [one] = inbound_ids {
        // The write path's case: a statement of one shape, kept prepared (`IN (…)` is not).
        let id = one.to_string();
        return Ok(on_backend!(conn, c => drafts::table
            .select(DraftRow::as_select())
            .filter(drafts::inbound_id.eq(&id))
            .order(drafts::id.asc())
            .load(c))?);
    }
    let ids: Vec<String> = inbound_ids.iter().map(InboundId::to_string).collect();
    Ok(drafts::table
        .select(DraftRow::as_select())
        .filter(drafts::inbound_id.eq_any(ids))
        .order(drafts::id.asc())
        .load(conn)?)
}

/// Every review of these drafts, oldest first.
pub fn reviews_of_drafts(conn: &mut DbConn, draft_ids: &[DraftId]) -> Result<Vec<ReviewRow>> {
    let ids: Vec<String> = draft_ids.iter().map(DraftId::to_string).collect();
    Ok(reviews::table
        .select(ReviewRow::as_select())
        .filter(reviews::draft_id.eq_any(ids))
        .order(reviews::id.asc())
        .load(conn)?)
}

/// Drafts still `approved` since before `cutoff` (their approval's time to live is over),
/// oldest approval first, at most `limit`.
pub fn approved_before(
    conn: &mut DbConn,
    cutoff: NaiveDateTime,
    limit: i64,
) -> Result<Vec<DraftRow>> {
    Ok(drafts::table
        .select(DraftRow::as_select())
        .filter(drafts::state.eq(DraftState::Approved.as_str()))
        .filter(drafts::approved_at.le(cutoff))
        .order((drafts::approved_at.asc(), drafts::id.asc()))
        .limit(limit)
        .load(conn)?)
}
