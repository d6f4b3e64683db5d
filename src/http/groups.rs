//! `GET/POST /groups` and `PUT /groups/{name}/members`: reviewer groups, which review routes
//! name in their steps (docs/api.md "Review routes").

use super::auth::SignedIn;
use super::error::ErrorBody;
use super::State;
use crate::app::groups::GroupView;
use crate::app::{self};
use crate::domain::ids::UserId;
use crate::error::Error;
use actix_web::{get, post, put, web, HttpResponse};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

#[derive(Debug, Serialize, ToSchema)]
pub struct GroupList {
    pub groups: Vec<GroupView>,
}

/// Every reviewer group, by name, with its members.
#[utoipa::path(
    tag = "groups",
    security(("bearer" = [])),
    responses((status = 200, body = GroupList), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody))
)]
#[get("/groups")]
pub async fn list(state: State, user: SignedIn) -> Result<HttpResponse, Error> {
    let groups = state
        .ctx
        .db
        .run(move |conn| app::groups::list(conn, &user.caller))
        .await?;
    Ok(HttpResponse::Ok().json(GroupList { groups }))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateGroup {
    /// 1 to 64 lower-case letters, digits, `-` or `_`: the name routes.toml uses.
    pub name: String,
}

/// Make an empty reviewer group (admins). Records `group.created`.
#[utoipa::path(
    tag = "groups",
    security(("bearer" = [])),
    request_body = CreateGroup,
    responses(
        (status = 201, body = GroupView), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody), (status = 409, description = "the name is taken", body = ErrorBody),
    )
)]
#[post("/groups")]
pub async fn create(
    state: State,
    user: SignedIn,
    body: web::Json<CreateGroup>,
) -> Result<HttpResponse, Error> {
    let name = body.into_inner().name;
    let ctx = state.ctx.clone();
    let group = state
        .ctx
        .db
        .run(move |conn| app::groups::create(&ctx, conn, &user.caller, &name))
        .await?;
    Ok(HttpResponse::Created().json(group))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SetMembers {
    /// The user ids of every member (reviewers), replacing the members it had.
    #[schema(value_type = Vec<String>, format = Uuid)]
    pub members: Vec<String>,
}

/// Set a group's members (admins). Records `group.updated` with all the members.
#[utoipa::path(
    tag = "groups",
    security(("bearer" = [])),
    params(("name" = String, Path, description = "the group's name")),
    request_body = SetMembers,
    responses(
        (status = 200, body = GroupView), (status = 400, description = "a member is not a reviewer, or an id is not a UUID", body = ErrorBody),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 404, description = "no such group or user", body = ErrorBody),
    )
)]
#[put("/groups/{name}/members")]
pub async fn set_members(
    state: State,
    user: SignedIn,
    name: web::Path<String>,
    body: web::Json<SetMembers>,
) -> Result<HttpResponse, Error> {
    let members = body
        .into_inner()
        .members
        .iter()
        .map(|m| super::parse_id::<UserId>(m))
        .collect::<Result<Vec<_>, _>>()?;
    let name = name.into_inner();
    let ctx = state.ctx.clone();
    let group = state
        .ctx
        .db
        .run(move |conn| app::groups::set_members(&ctx, conn, &user.caller, &name, &members))
        .await?;
    Ok(HttpResponse::Ok().json(group))
}
