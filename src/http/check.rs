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
        store.reload(|set| {
            crate::app::policies::record_activation(&mut *db.conn()?, &clock, &actor, set)
        })
    })
    .await
    .map_err(|e| Error::Internal(e.to_string()))??;
    tracing::info!(policy_version = set.version(), by = %user.caller.username, "policies reloaded");
    Ok(HttpResponse::Ok().json(describe(&set)))
}
