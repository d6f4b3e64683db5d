//! `POST /check` (live feedback while an agent types) and the policy set endpoints.

use super::auth::SignedIn;
use super::error::ErrorBody;
use super::State;
use crate::domain::roles::Permission;
use crate::error::Error;
use actix_web::{get, post, web, HttpResponse};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CheckRequest {
    pub text: String,
    /// The channel the reply is for (`x`, `mastodon` or `log`): its length rule applies.
    /// Without one, X's.
    #[serde(default)]
    pub channel: Option<String>,
}

/// Check a text against the policies in force; answers the report of spec/checks.md.
#[utoipa::path(
    tag = "checks",
    security(("bearer" = [])),
    request_body = CheckRequest,
    responses((status = 200, description = "the check report", body = crate::policy::CheckReport), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody))
)]
#[post("/check")]
pub async fn check(
    state: State,
    user: SignedIn,
    body: web::Json<CheckRequest>,
) -> Result<HttpResponse, Error> {
    user.caller.require(Permission::Read)?;
    let body = body.into_inner();
    let rule = match &body.channel {
        None => crate::policy::LengthRule::X,
        Some(c) => c
            .parse::<crate::domain::inbound::Channel>()
            .map_err(Error::BadRequest)?
            .into(),
    };
    let text = body.text;
    if text.chars().count() > crate::app::drafts::MAX_TEXT_CHARS {
        return Err(Error::BadRequest(format!(
            "text must be at most {} characters",
            crate::app::drafts::MAX_TEXT_CHARS
        )));
    }
    Ok(HttpResponse::Ok().json(state.ctx.policies.current().check_for(&text, rule)))
}

#[derive(Debug, Serialize, ToSchema)]
pub struct PolicySetView {
    pub policy_version: String,
    pub files: Vec<String>,
    pub rules: usize,
}

fn describe(set: &crate::policy::PolicySet) -> PolicySetView {
    PolicySetView {
        policy_version: set.version().to_string(),
        files: set.files().to_vec(),
        rules: set.rule_count(),
    }
}

/// The policy set in force.
#[utoipa::path(
    tag = "checks",
    security(("bearer" = [])),
    responses((status = 200, body = PolicySetView), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody))
)]
#[get("/policies")]
pub async fn policies(state: State, user: SignedIn) -> Result<HttpResponse, Error> {
    user.caller.require(Permission::ReadPolicies)?;
    Ok(HttpResponse::Ok().json(describe(&state.ctx.policies.current())))
}

/// Load the policies folder again. If it is invalid the set in force stays and the answer
/// (422) names file, line and rule of each error.
#[utoipa::path(
    tag = "checks",
    security(("bearer" = [])),
    responses((status = 200, body = PolicySetView), (status = 403, body = ErrorBody), (status = 422, body = ErrorBody))
)]
#[post("/policies/reload")]
pub async fn reload(state: State, user: SignedIn) -> Result<HttpResponse, Error> {
    user.caller.require(Permission::Administer)?;
    let store = state.ctx.policies.clone();
    let db = state.ctx.db.clone();
    let clock = state.ctx.clock.clone();
    let actor = crate::audit::Actor::User(user.caller.id);
    let set = web::block(move || {
        let old = store.current();
        store.reload(|set| {
            crate::app::policies::record_activation(&mut *db.conn()?, &clock, &actor, &old, set)
        })
    })
    .await
    .map_err(|e| Error::Internal(e.to_string()))??;
    tracing::info!(policy_version = set.version(), by = %user.caller.username, "policies reloaded");
    Ok(HttpResponse::Ok().json(describe(&set)))
}

/// A policy file of a proposed set.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ProposedFile {
    /// Its name in the policies folder, e.g. `promise.toml` (a relative path ending in .toml).
    pub name: String,
    pub text: String,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PreviewRequest {
    /// Every file of the proposed set (the whole set, not only what changes).
    pub files: Vec<ProposedFile>,
    /// How far back: `30d` (the default), `12h`, `90m`, or an RFC 3339 time.
    #[serde(default)]
    pub since: Option<String>,
}

/// Preview a policy change (admins, auditors): every draft revision of the period is
/// checked under the set in force and under the proposed files, and what would change is
/// counted by verdict and by rule, with examples. Nothing is changed or recorded.
#[utoipa::path(
    tag = "checks",
    security(("bearer" = [])),
    request_body = PreviewRequest,
    responses(
        (status = 200, body = crate::policy::preview::Preview), (status = 400, body = ErrorBody),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 422, description = "the proposed files do not load: policy_invalid with errors", body = ErrorBody),
    )
)]
#[post("/policies/preview")]
pub async fn preview(
    state: State,
    user: SignedIn,
    body: web::Json<PreviewRequest>,
) -> Result<HttpResponse, Error> {
    user.caller.require(Permission::ReadPolicies)?;
    let body = body.into_inner();
    let now = state.ctx.clock.now().naive_utc();
    let since = crate::app::policies::parse_since(body.since.as_deref().unwrap_or("30d"), now)?;
    let files = body.files.into_iter().map(|f| (f.name, f.text)).collect();
    let ctx = state.ctx.clone();
    let preview = state
        .ctx
        .db
        .run(move |conn| {
            crate::app::policies::preview_files(&ctx, conn, &user.caller, files, since)
        })
        .await?;
    Ok(HttpResponse::Ok().json(preview))
}
