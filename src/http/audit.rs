//! `GET /audit` (query) and `GET /audit/verify`, for auditors and admins.

use super::auth::SignedIn;
use super::error::ErrorBody;
use super::State;
use crate::app::{
    self,
    audit::{AuditPage, Verification},
};
use crate::db::audit::AuditFilter;
use crate::domain::time::ApiTime;
use crate::error::Error;
use actix_web::{get, web, HttpResponse};
use serde::Deserialize;
use utoipa::IntoParams;

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
pub struct AuditQuery {
    /// a user id, or `system`
    pub actor: Option<String>,
    /// e.g. `draft.submitted`
    pub action: Option<String>,
    /// the id the action is about
    pub subject: Option<String>,
    /// entries at or after this time (RFC 3339, years 2000 to 9999)
    #[param(value_type = Option<String>, format = DateTime)]
    pub since: Option<ApiTime>,
    /// entries before this time (RFC 3339, years 2000 to 9999)
    #[param(value_type = Option<String>, format = DateTime)]
    pub until: Option<ApiTime>,
    /// the cursor: `next` of the previous page
    pub after: Option<String>,
    /// page size (default 100, at most 1000)
    #[param(minimum = 1, maximum = 1000)]
    pub limit: Option<i64>,
}

/// Query the audit log, oldest first, a page at a time.
#[utoipa::path(
    tag = "audit",
    security(("bearer" = [])),
    params(AuditQuery),
    responses((status = 200, body = AuditPage), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody))
)]
#[get("/audit")]
pub async fn query(
    state: State,
    user: SignedIn,
    q: web::Query<AuditQuery>,
) -> Result<HttpResponse, Error> {
    let q = q.into_inner();
    for (name, value) in [
        ("actor", &q.actor),
        ("action", &q.action),
        ("subject", &q.subject),
    ] {
        if let Some(v) = value {
            crate::domain::text::check_field(name, v, 200, false).map_err(Error::BadRequest)?;
        }
    }
    let after = q
        .after
        .as_deref()
        .map(|a| {
            a.parse::<i64>()
                .map_err(|_| Error::BadRequest(format!("after={a:?} is not a cursor from `next`")))
        })
        .transpose()?;
    let filter = AuditFilter {
        actor: q.actor,
        action: q.action,
        subject: q.subject,
        since: q.since.map(ApiTime::utc),
        until: q.until.map(ApiTime::utc),
        after,
        limit: super::page_limit(q.limit)?,
    };
    let page = state
        .ctx
        .db
        .run(move |conn| app::audit::query(conn, &user.caller, filter))
        .await?;
    Ok(HttpResponse::Ok().json(page))
}

/// Recompute every leaf hash and the tree root; name the first bad seq if any.
#[utoipa::path(
    tag = "audit",
    security(("bearer" = [])),
    responses((status = 200, body = Verification), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody))
)]
#[get("/audit/verify")]
pub async fn verify(state: State, user: SignedIn) -> Result<HttpResponse, Error> {
    let result = state
        .ctx
        .db
        .run(move |conn| app::audit::verify_as(conn, &user.caller))
        .await?;
    Ok(HttpResponse::Ok().json(result))
}
