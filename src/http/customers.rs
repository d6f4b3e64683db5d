//! `GET /customers`, `GET /customers/{id}`, `PATCH /customers/{id}`,
//! `POST /customers/{id}/handles`, `POST /customers/{id}/merge`.

use super::auth::SignedIn;
use super::error::ErrorBody;
use super::State;
use crate::app::customers::{NewHandle, Page};
use crate::app::{self, views::CustomerView};
use crate::domain::ids::CustomerId;
use crate::error::Error;
use actix_web::{get, patch, post, web, HttpResponse};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
pub struct FindQuery {
    /// A handle on any channel (`@` optional, any case).
    pub handle: Option<String>,
    /// An external CRM reference.
    pub crm_ref: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct CustomerList {
    pub customers: Vec<CustomerView>,
}

/// Find customers by handle and/or CRM reference.
#[utoipa::path(
    tag = "inbound",
    security(("bearer" = [])),
    params(FindQuery),
    responses((status = 200, body = CustomerList), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody))
)]
#[get("/customers")]
pub async fn find(
    state: State,
    user: SignedIn,
    q: web::Query<FindQuery>,
) -> Result<HttpResponse, Error> {
    let q = q.into_inner();
    let customers = state
        .ctx
        .db
        .run(move |conn| {
            app::customers::find(
                conn,
                &user.caller,
                q.handle.as_deref(),
                q.crm_ref.as_deref(),
            )
        })
        .await?;
    Ok(HttpResponse::Ok().json(CustomerList { customers }))
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
pub struct HistoryQuery {
    /// The `next` cursor of the previous page.
    pub after: Option<String>,
    /// History items per page (default 100, at most 1000).
    #[param(minimum = 1, maximum = 1000)]
    pub limit: Option<i64>,
}

/// A customer: their handles and their whole history, oldest first, paged. A merged-away
/// id answers the surviving record, with `merged_into`.
#[utoipa::path(
    tag = "inbound",
    security(("bearer" = [])),
    params(("id" = uuid::Uuid, Path, description = "the customer's id (UUID)"), HistoryQuery),
    responses((status = 200, body = CustomerView), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody))
)]
#[get("/customers/{id}")]
pub async fn get_one(
    state: State,
    user: SignedIn,
    id: web::Path<String>,
    q: web::Query<HistoryQuery>,
) -> Result<HttpResponse, Error> {
    let id: CustomerId = super::parse_id(&id)?;
    let q = q.into_inner();
    let page = Page {
        after: q.after,
        limit: super::page_limit(q.limit)?,
    };
    let view = state
        .ctx
        .db
        .run(move |conn| app::customers::get(conn, &user.caller, id, &page))
        .await?;
    Ok(HttpResponse::Ok().json(view))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CustomerPatch {
    /// The external CRM reference; null clears it.
    pub crm_ref: Option<String>,
}

/// Set the customer's CRM reference (agents and admins).
#[utoipa::path(
    tag = "inbound",
    security(("bearer" = [])),
    params(("id" = uuid::Uuid, Path, description = "the customer's id (UUID)")),
    request_body = CustomerPatch,
    responses(
        (status = 200, body = CustomerView), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody), (status = 404, body = ErrorBody),
        (status = 409, description = "the customer was merged away", body = ErrorBody),
    )
)]
#[patch("/customers/{id}")]
pub async fn update(
    state: State,
    user: SignedIn,
    id: web::Path<String>,
    body: web::Json<CustomerPatch>,
) -> Result<HttpResponse, Error> {
    let id: CustomerId = super::parse_id(&id)?;
    let ctx = state.ctx.clone();
    let crm_ref = body.into_inner().crm_ref;
    let view = state
        .ctx
        .db
        .run(move |conn| {
            app::customers::set_crm_ref(&ctx, conn, &user.caller, id, crm_ref.as_deref())
        })
        .await?;
    Ok(HttpResponse::Ok().json(view))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct HandleRequest {
    /// `x`, `mastodon` or `log`.
    pub channel: String,
    /// In the channel's syntax (X: letters, digits, `_`; Mastodon: `user@domain`).
    pub handle: String,
    pub external_user_id: Option<String>,
}

/// Link a handle to the customer (agents and admins).
#[utoipa::path(
    tag = "inbound",
    security(("bearer" = [])),
    params(("id" = uuid::Uuid, Path, description = "the customer's id (UUID)")),
    request_body = HandleRequest,
    responses(
        (status = 200, body = CustomerView), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody), (status = 404, body = ErrorBody),
        (status = 409, description = "the handle belongs to another customer (merge instead), or this one was merged away", body = ErrorBody),
    )
)]
#[post("/customers/{id}/handles")]
pub async fn link(
    state: State,
    user: SignedIn,
    id: web::Path<String>,
    body: web::Json<HandleRequest>,
) -> Result<HttpResponse, Error> {
    let id: CustomerId = super::parse_id(&id)?;
    let ctx = state.ctx.clone();
    let b = body.into_inner();
    let h = NewHandle {
        channel: b.channel,
        handle: b.handle,
        external_user_id: b.external_user_id,
    };
    let view = state
        .ctx
        .db
        .run(move |conn| app::customers::link(&ctx, conn, &user.caller, id, &h))
        .await?;
    Ok(HttpResponse::Ok().json(view))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct MergeRequest {
    /// The customer merged into this one (UUID).
    pub from: String,
    /// The CRM reference the survivor keeps, when the two differ.
    pub crm_ref: Option<String>,
}

/// Merge another customer into this one (agents and admins).
#[utoipa::path(
    tag = "inbound",
    security(("bearer" = [])),
    params(("id" = uuid::Uuid, Path, description = "the surviving customer's id (UUID)")),
    request_body = MergeRequest,
    responses(
        (status = 200, body = CustomerView), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody), (status = 404, body = ErrorBody),
        (status = 409, description = "either was merged away, or their CRM references differ and crm_ref names none", body = ErrorBody),
    )
)]
#[post("/customers/{id}/merge")]
pub async fn merge(
    state: State,
    user: SignedIn,
    id: web::Path<String>,
    body: web::Json<MergeRequest>,
) -> Result<HttpResponse, Error> {
    let id: CustomerId = super::parse_id(&id)?;
    let b = body.into_inner();
    let from: CustomerId = super::parse_id(&b.from)?;
    let ctx = state.ctx.clone();
    let view = state
        .ctx
        .db
        .run(move |conn| {
            app::customers::merge(&ctx, conn, &user.caller, id, from, b.crm_ref.as_deref())
        })
        .await?;
    Ok(HttpResponse::Ok().json(view))
}
