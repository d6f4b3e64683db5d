//! `POST /inbound`, `GET /inbound`, `GET /inbound/{id}`, `POST /inbound/{id}/close`.

use super::auth::SignedIn;
use super::error::ErrorBody;
use super::State;
use crate::app::{self, inbound::Received, views::InboundView};
use crate::domain::ids::InboundId;
use crate::domain::inbound::InboundState;
use crate::domain::time::ApiTime;
use crate::error::Error;
use actix_web::{get, post, web, HttpResponse};
use serde::Deserialize;
use utoipa::{IntoParams, ToSchema};

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Author {
    /// The author's handle on the channel, with or without `@`.
    pub handle: String,
    pub external_user_id: Option<String>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct InboundRequest {
    /// The channel, e.g. `x`.
    pub channel: String,
    /// The channel's own id of the post; with `channel`, the idempotency key.
    pub external_id: String,
    pub author: Author,
    pub text: String,
    /// When the customer posted (RFC 3339, not before the channel existed, at most 5 minutes
    /// ahead of the server's clock); defaults to now.
    #[schema(value_type = Option<String>, format = DateTime)]
    pub received_at: Option<ApiTime>,
}

/// Record a customer's post; the author is linked to a customer record by handle.
/// The same channel + external_id again answers 200 with the first record.
#[utoipa::path(
    tag = "inbound",
    security(("bearer" = [])),
    request_body = InboundRequest,
    responses(
        (status = 201, description = "recorded", body = InboundView),
        (status = 200, description = "already recorded: the same message", body = InboundView),
        (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
    )
)]
#[post("/inbound")]
pub async fn create(
    state: State,
    user: SignedIn,
    body: web::Json<InboundRequest>,
) -> Result<HttpResponse, Error> {
    let b = body.into_inner();
    let m = app::inbound::NewInbound {
        channel: b.channel,
        external_id: b.external_id,
        author_handle: b.author.handle,
        author_external_user_id: b.author.external_user_id,
        text: b.text,
        received_at: b.received_at.map(ApiTime::utc),
        visibility: None,
    };
    let ctx = state.ctx.clone();
    let received = state
        .ctx
        .db
        .run(move |conn| app::inbound::receive(&ctx, conn, Some(&user.caller), &m))
        .await?;
    Ok(match received {
        Received::Created(v) => HttpResponse::Created().json(v),
        Received::AlreadyKnown(v) => HttpResponse::Ok().json(v),
    })
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
pub struct InboundQuery {
    /// open (default), answered or closed
    #[param(inline, value_type = Option<crate::domain::inbound::InboundState>)]
    pub state: Option<String>,
    /// at most this many (default 100, at most 1000)
    #[param(minimum = 1, maximum = 1000)]
    pub limit: Option<i64>,
}

/// The queue: messages in a state, soonest due first.
#[utoipa::path(
    tag = "inbound",
    security(("bearer" = [])),
    params(InboundQuery),
    responses((status = 200, body = Vec<InboundView>), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody))
)]
#[get("/inbound")]
pub async fn list(
    state: State,
    user: SignedIn,
    q: web::Query<InboundQuery>,
) -> Result<HttpResponse, Error> {
    let wanted: InboundState = q
        .state
        .as_deref()
        .unwrap_or("open")
        .parse()
        .map_err(Error::BadRequest)?;
    let limit = super::page_limit(q.limit)?;
    let ctx = state.ctx.clone();
    let items = state
        .ctx
        .db
        .run(move |conn| app::inbound::list(&ctx, conn, &user.caller, wanted, limit))
        .await?;
    Ok(HttpResponse::Ok().json(items))
}

/// One inbound message, with its drafts.
#[utoipa::path(
    tag = "inbound",
    security(("bearer" = [])),
    params(("id" = uuid::Uuid, Path, description = "the message's id (UUID)")),
    responses((status = 200, body = crate::app::views::InboundDetail), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody))
)]
#[get("/inbound/{id}")]
pub async fn get_one(
    state: State,
    user: SignedIn,
    id: web::Path<String>,
) -> Result<HttpResponse, Error> {
    let id: InboundId = super::parse_id(&id)?;
    let ctx = state.ctx.clone();
    let item = state
        .ctx
        .db
        .run(move |conn| app::inbound::get(&ctx, conn, &user.caller, id))
        .await?;
    Ok(HttpResponse::Ok().json(item))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CloseRequest {
    /// Why the message gets no reply (spam, answered elsewhere…).
    pub reason: String,
}

/// Close an open message without a reply; its drafts not yet approved are superseded.
#[utoipa::path(
    tag = "inbound",
    security(("bearer" = [])),
    params(("id" = uuid::Uuid, Path, description = "the message's id (UUID)")),
    request_body = CloseRequest,
    responses(
        (status = 200, body = InboundView), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody), (status = 404, body = ErrorBody),
        (status = 409, description = "the message is not open", body = ErrorBody),
    )
)]
#[post("/inbound/{id}/close")]
pub async fn close(
    state: State,
    user: SignedIn,
    id: web::Path<String>,
    body: web::Json<CloseRequest>,
) -> Result<HttpResponse, Error> {
    let id: InboundId = super::parse_id(&id)?;
    let ctx = state.ctx.clone();
    let reason = body.into_inner().reason;
    let view = state
        .ctx
        .db
        .run(move |conn| app::inbound::close(&ctx, conn, &user.caller, id, &reason))
        .await?;
    Ok(HttpResponse::Ok().json(view))
}
