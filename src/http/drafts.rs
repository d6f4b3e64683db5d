//! Drafts and reviews: create, revise, submit, review, read.

use super::auth::SignedIn;
use super::error::ErrorBody;
use super::State;
use crate::app::{
    self,
    views::{DraftSummary, DraftView},
};
use crate::domain::ids::{DraftId, InboundId};
use crate::domain::workflow::{Decision, DraftState};
use crate::error::Error;
use actix_web::{get, post, put, web, HttpResponse};
use serde::Deserialize;
use utoipa::{IntoParams, ToSchema};

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateDraft {
    #[schema(format = Uuid)]
    pub inbound_id: String,
    pub text: String,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ReviseDraft {
    pub text: String,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ReviewRequest {
    pub decision: Decision,
    #[serde(default)]
    pub comment: String,
    /// The revision the reviewer read; an older one is refused (409).
    pub revision: i32,
}

/// Write a draft reply to an open inbound message; the answer carries its check report.
#[utoipa::path(
    tag = "drafts",
    security(("bearer" = [])),
    request_body = CreateDraft,
    responses(
        (status = 201, body = DraftView), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody),
    )
)]
#[post("/drafts")]
pub async fn create(
    state: State,
    user: SignedIn,
    body: web::Json<CreateDraft>,
) -> Result<HttpResponse, Error> {
    let CreateDraft { inbound_id, text } = body.into_inner();
    let inbound_id: InboundId = super::parse_id(&inbound_id)?;
    let ctx = state.ctx.clone();
    let view = state
        .ctx
        .db
        .run(move |conn| app::drafts::create(&ctx, conn, &user.caller, inbound_id, &text))
        .await?;
    Ok(HttpResponse::Created().json(view))
}

/// Revise the text (author only; state draft or changes_requested): a new revision.
#[utoipa::path(
    tag = "drafts",
    security(("bearer" = [])),
    params(("id" = uuid::Uuid, Path, description = "the draft's id (UUID)")),
    request_body = ReviseDraft,
    responses(
        (status = 200, body = DraftView), (status = 400, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody), (status = 409, body = ErrorBody),
    )
)]
#[put("/drafts/{id}")]
pub async fn revise(
    state: State,
    user: SignedIn,
    id: web::Path<String>,
    body: web::Json<ReviseDraft>,
) -> Result<HttpResponse, Error> {
    let id: DraftId = super::parse_id(&id)?;
    let text = body.into_inner().text;
    let ctx = state.ctx.clone();
    let view = state
        .ctx
        .db
        .run(move |conn| app::drafts::revise(&ctx, conn, &user.caller, id, &text))
        .await?;
    Ok(HttpResponse::Ok().json(view))
}

/// Submit for review. The checks run again; a blocking verdict answers 422 with the report.
#[utoipa::path(
    tag = "drafts",
    security(("bearer" = [])),
    params(("id" = uuid::Uuid, Path, description = "the draft's id (UUID)")),
    responses(
        (status = 200, body = DraftView), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody),
        (status = 409, body = ErrorBody), (status = 422, description = "blocked: the body carries the check report", body = ErrorBody),
    )
)]
#[post("/drafts/{id}/submit")]
pub async fn submit(
    state: State,
    user: SignedIn,
    id: web::Path<String>,
) -> Result<HttpResponse, Error> {
    let id: DraftId = super::parse_id(&id)?;
    let ctx = state.ctx.clone();
    let view = state
        .ctx
        .db
        .run(move |conn| app::drafts::submit(&ctx, conn, &user.caller, id))
        .await?;
    Ok(HttpResponse::Ok().json(view))
}

/// Send a `post_failed` draft back to posting (`approved`), once; reviewers only.
#[utoipa::path(
    tag = "drafts",
    security(("bearer" = [])),
    params(("id" = uuid::Uuid, Path, description = "the draft's id (UUID)")),
    responses(
        (status = 200, body = DraftView), (status = 400, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody), (status = 409, description = "not post_failed, or already retried once", body = ErrorBody),
    )
)]
#[post("/drafts/{id}/retry")]
pub async fn retry(
    state: State,
    user: SignedIn,
    id: web::Path<String>,
) -> Result<HttpResponse, Error> {
    let id: DraftId = super::parse_id(&id)?;
    let ctx = state.ctx.clone();
    let view = state
        .ctx
        .db
        .run(move |conn| app::drafts::retry(&ctx, conn, &user.caller, id))
        .await?;
    Ok(HttpResponse::Ok().json(view))
}

/// Approve, reject or ask for changes to the revision read. Four eyes: the draft's writers
/// get 403. An escalated draft needs two different reviewers.
#[utoipa::path(
    tag = "drafts",
    security(("bearer" = [])),
    params(("id" = uuid::Uuid, Path, description = "the draft's id (UUID)")),
    request_body = ReviewRequest,
    responses(
        (status = 200, body = DraftView), (status = 400, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody), (status = 409, body = ErrorBody), (status = 422, body = ErrorBody),
    )
)]
#[post("/drafts/{id}/reviews")]
pub async fn review(
    state: State,
    user: SignedIn,
    id: web::Path<String>,
    body: web::Json<ReviewRequest>,
) -> Result<HttpResponse, Error> {
    let id: DraftId = super::parse_id(&id)?;
    let b = body.into_inner();
    let r = app::drafts::NewReview {
        decision: b.decision,
        comment: b.comment,
        revision: b.revision,
    };
    let ctx = state.ctx.clone();
    let view = state
        .ctx
        .db
        .run(move |conn| app::drafts::review(&ctx, conn, &user.caller, id, &r))
        .await?;
    Ok(HttpResponse::Ok().json(view))
}

/// A draft with its revisions, reviews, latest check and posting result.
#[utoipa::path(
    tag = "drafts",
    security(("bearer" = [])),
    params(("id" = uuid::Uuid, Path, description = "the draft's id (UUID)")),
    responses((status = 200, body = DraftView), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody))
)]
#[get("/drafts/{id}")]
pub async fn get_one(
    state: State,
    user: SignedIn,
    id: web::Path<String>,
) -> Result<HttpResponse, Error> {
    let id: DraftId = super::parse_id(&id)?;
    let view = state
        .ctx
        .db
        .run(move |conn| app::drafts::get(conn, &user.caller, id))
        .await?;
    Ok(HttpResponse::Ok().json(view))
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
pub struct DraftQuery {
    /// Only drafts in this state.
    #[param(inline, value_type = Option<crate::domain::workflow::DraftState>)]
    pub state: Option<String>,
    /// at most this many (default 100, at most 1000)
    #[param(minimum = 1, maximum = 1000)]
    pub limit: Option<i64>,
    /// `me`: only drafts whose current review step the caller may approve now.
    #[serde(rename = "for")]
    #[param(rename = "for", inline, value_type = Option<ForWhom>)]
    pub for_whom: Option<String>,
}

/// Whose drafts `GET /drafts?for=` lists.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum ForWhom {
    Me,
}

/// Drafts, oldest change first, optionally in one state.
#[utoipa::path(
    tag = "drafts",
    security(("bearer" = [])),
    params(DraftQuery),
    responses((status = 200, body = Vec<DraftSummary>), (status = 400, body = ErrorBody))
)]
#[get("/drafts")]
pub async fn list(
    state: State,
    user: SignedIn,
    q: web::Query<DraftQuery>,
) -> Result<HttpResponse, Error> {
    let wanted: Option<DraftState> = q
        .state
        .as_deref()
        .map(|s| {
            s.parse()
                .map_err(|e: crate::domain::workflow::UnknownState| {
                    Error::BadRequest(e.to_string())
                })
        })
        .transpose()?;
    let limit = super::page_limit(q.limit)?;
    let for_me = match q.for_whom.as_deref() {
        None => false,
        Some("me") => true,
        Some(other) => {
            return Err(Error::BadRequest(format!(
                "for must be \"me\", not {:?}",
                other.chars().take(40).collect::<String>()
            )))
        }
    };
    let items = state
        .ctx
        .db
        .run(move |conn| app::drafts::list(conn, &user.caller, wanted, for_me, limit))
        .await?;
    Ok(HttpResponse::Ok().json(items))
}
