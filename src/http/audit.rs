//! `GET /audit` (query) and `GET /audit/verify`, for auditors and admins.

use super::auth::SignedIn;
use super::error::ErrorBody;
use super::State;
use crate::app::{
    self,
    audit::{AuditPage, ConsistencyProof, InclusionProof, Verification},
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

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
pub struct VerifyQuery {
    /// also compare the service's tables with the log
    pub state: Option<bool>,
}

/// Check the whole log against its stored checkpoints; name the first bad seq if any. With
/// `state=true`, also list the table rows the log does not explain.
#[utoipa::path(
    tag = "audit",
    security(("bearer" = [])),
    params(VerifyQuery),
    responses((status = 200, body = Verification), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody))
)]
#[get("/audit/verify")]
pub async fn verify(
    state: State,
    user: SignedIn,
    q: web::Query<VerifyQuery>,
) -> Result<HttpResponse, Error> {
    let verifier = state.ctx.log.verifier();
    let with_state = q.state.unwrap_or(false);
    let result = state
        .ctx
        .db
        .run(move |conn| {
            if with_state {
                app::audit::verify_with_state_as(conn, &user.caller, &verifier)
            } else {
                app::audit::verify_as(conn, &user.caller, &verifier)
            }
        })
        .await?;
    Ok(HttpResponse::Ok().json(result))
}

/// The verifier key of the log's checkpoints: `<origin>+<key id>+<base64(0x01 || key)>`.
#[utoipa::path(
    tag = "audit",
    security(("bearer" = [])),
    responses((status = 200, content_type = "text/plain", body = String), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody))
)]
#[get("/audit/key")]
pub async fn key(state: State, user: SignedIn) -> Result<HttpResponse, Error> {
    user.caller
        .require(crate::domain::roles::Permission::ReadAudit)?;
    Ok(HttpResponse::Ok()
        .content_type("text/plain; charset=utf-8")
        .body(format!("{}\n", state.ctx.log.verifier_key())))
}

/// The latest checkpoint: a C2SP tlog-checkpoint signed note (Ed25519).
#[utoipa::path(
    tag = "audit",
    security(("bearer" = [])),
    responses((status = 200, content_type = "text/plain", body = String), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody))
)]
#[get("/audit/checkpoint")]
pub async fn checkpoint(state: State, user: SignedIn) -> Result<HttpResponse, Error> {
    let note = state
        .ctx
        .db
        .run(move |conn| app::audit::latest_checkpoint(conn, &user.caller))
        .await?;
    Ok(HttpResponse::Ok()
        .content_type("text/plain; charset=utf-8")
        .body(note))
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
pub struct InclusionQuery {
    /// the entry (1 to size)
    #[param(minimum = 1)]
    pub seq: i64,
    /// the tree size (1 to the log's size)
    #[param(minimum = 1)]
    pub size: i64,
}

/// The RFC 9162 inclusion proof of entry `seq` (leaf `seq - 1`) in the tree of `size`.
#[utoipa::path(
    tag = "audit",
    security(("bearer" = [])),
    params(InclusionQuery),
    responses((status = 200, body = InclusionProof), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody))
)]
#[get("/audit/proof/inclusion")]
pub async fn inclusion(
    state: State,
    user: SignedIn,
    q: web::Query<InclusionQuery>,
) -> Result<HttpResponse, Error> {
    let InclusionQuery { seq, size } = q.into_inner();
    let proof = state
        .ctx
        .db
        .run(move |conn| app::audit::inclusion_proof(conn, &user.caller, seq, size))
        .await?;
    Ok(HttpResponse::Ok().json(proof))
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
pub struct ConsistencyQuery {
    /// the older tree size (1 to `to`)
    #[param(minimum = 1)]
    pub from: i64,
    /// the newer tree size (up to the log's size)
    #[param(minimum = 1)]
    pub to: i64,
}

/// The RFC 9162 consistency proof between the trees of sizes `from` and `to`.
#[utoipa::path(
    tag = "audit",
    security(("bearer" = [])),
    params(ConsistencyQuery),
    responses((status = 200, body = ConsistencyProof), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody))
)]
#[get("/audit/proof/consistency")]
pub async fn consistency(
    state: State,
    user: SignedIn,
    q: web::Query<ConsistencyQuery>,
) -> Result<HttpResponse, Error> {
    let ConsistencyQuery { from, to } = q.into_inner();
    let proof = state
        .ctx
        .db
        .run(move |conn| app::audit::consistency_proof(conn, &user.caller, from, to))
        .await?;
    Ok(HttpResponse::Ok().json(proof))
}

/// The evidence bundle of one reply (spec/audit.md "Bundles"): JSON lines, verifiable
/// offline with `countersign audit verify-bundle`.
#[utoipa::path(
    tag = "audit",
    security(("bearer" = [])),
    params(("draft_id" = String, Path, description = "the draft's id")),
    responses((status = 200, content_type = "application/x-ndjson", body = String), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody))
)]
#[get("/audit/evidence/{draft_id}")]
pub async fn evidence(
    state: State,
    user: SignedIn,
    path: web::Path<String>,
) -> Result<HttpResponse, Error> {
    let draft_id: crate::domain::ids::DraftId = super::parse_id(&path)?;
    let log = state.ctx.log.clone();
    let bundle = state
        .ctx
        .db
        .run(move |conn| app::bundles::evidence_as(conn, &user.caller, &log, draft_id))
        .await?;
    Ok(HttpResponse::Ok()
        .content_type("application/x-ndjson")
        .body(bundle))
}
